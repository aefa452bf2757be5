"""A loopback Application Insights ingestion endpoint: accepts what the real Azure Monitor exporter
posts to `<IngestionEndpoint>/v2.1/track` (a JSON array, or JSON lines, maybe gzip-compressed) and
keeps every envelope and raw body for the test to read. Any other path is recorded and answered 404.

    with FakeIngestion() as ingestion:
        env["APPLICATIONINSIGHTS_CONNECTION_STRING"] = ingestion.connection_string
"""

from __future__ import annotations

import gzip
import json
from typing import Any

from tests.servers._base import JsonHandler, LoopbackServer, fake_of

INSTRUMENTATION_KEY = "00000000-0000-4000-8000-00000000c0de"


class _Handler(JsonHandler):
    def do_POST(self) -> None:
        fake: FakeIngestion = fake_of(self)
        body = self.read_body()
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        with fake.lock:
            fake.paths.append(self.path)
            if not self.path.rstrip("/").endswith("/v2.1/track"):
                self.send_json(404, {"error": "not an ingestion path"})
                return
            fake.bodies.append(body.decode("utf-8", "replace"))
            envelopes = _envelopes(body)
            fake.envelopes.extend(envelopes)
        self.send_json(200, {"itemsReceived": len(envelopes), "itemsAccepted": len(envelopes), "errors": []})

    def do_GET(self) -> None:
        fake: FakeIngestion = fake_of(self)
        with fake.lock:
            fake.paths.append(self.path)
        self.send_json(404, {"error": "not found"})


def _envelopes(body: bytes) -> list[dict[str, Any]]:
    text = body.decode("utf-8").strip()
    if text.startswith("["):
        return list(json.loads(text))
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class FakeIngestion(LoopbackServer):
    def __init__(self) -> None:
        super().__init__(_Handler)
        self.paths: list[str] = []
        self.bodies: list[str] = []
        self.envelopes: list[dict[str, Any]] = []

    @property
    def connection_string(self) -> str:
        return f"InstrumentationKey={INSTRUMENTATION_KEY};IngestionEndpoint={self.url}/"

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        """Base data of envelopes whose type ends with `kind` (RemoteDependency, Message, Metric, ...)."""
        return [e["data"]["baseData"] for e in self.envelopes if str(e.get("name", "")).endswith(kind)]
