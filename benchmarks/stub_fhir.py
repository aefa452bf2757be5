"""A FHIR R4 stub that answers at once, for measuring the worker alone.

It keeps what is written (so a study that spans feed pages is found and merged, as with a real
server) and answers identifier searches and reads from memory; every write succeeds with the next
version. No validation, no persistence. It runs in its own process (`python -m benchmarks.stub_fhir`,
which prints its base URL), so its CPU is not the worker's.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.servers._base import ListeningServer

CAPABILITIES = {
    "resourceType": "CapabilityStatement",
    "status": "active",
    "kind": "instance",
    "fhirVersion": "4.0.1",
    "format": ["json"],
    "rest": [{"mode": "server", "interaction": [{"code": "transaction"}, {"code": "batch"}]}],
}
EMPTY_SEARCH = {"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": []}
NOT_FOUND = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-found"}]}


class Memory:
    """Resources by "Type/id", and "Type|system|value" identifier tokens to "Type/id"."""

    def __init__(self) -> None:
        self.resources: dict[str, dict[str, Any]] = {}
        self.by_identifier: dict[str, str] = {}
        self.lock = threading.Lock()

    def put(self, url: str, resource: dict[str, Any] | None) -> str:
        """Store (None: delete) the resource at `url`; returns the new version."""
        with self.lock:
            old = self.resources.pop(url, None)
            version = str(int((old or {}).get("meta", {}).get("versionId", "0")) + 1)
            if resource is not None:
                stored = {**resource, "meta": {**resource.get("meta", {}), "versionId": version}}
                self.resources[url] = stored
                kind = url.split("/")[0]
                for identifier in resource.get("identifier", []):
                    self.by_identifier[f"{kind}|{identifier.get('system', '')}|{identifier.get('value')}"] = url
            return version

    def search(self, kind: str, tokens: list[str]) -> list[dict[str, Any]]:
        with self.lock:
            urls = {self.by_identifier.get(f"{kind}|{token}") for token in tokens}
            return [self.resources[u] for u in urls if u and u in self.resources]


class StubServer(ListeningServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), StubHandler)
        self.memory = Memory()


def transaction_response(memory: Memory, bundle: dict[str, Any]) -> dict[str, Any]:
    entries = []
    for entry in bundle.get("entry", []):
        request = entry.get("request", {})
        deleting = request.get("method") == "DELETE"
        version = memory.put(request.get("url", ""), None if deleting else entry.get("resource"))
        status = "200 OK" if deleting else "201 Created"
        entries.append({"response": {"status": status, "etag": f'W/"{version}"', "location": request.get("url")}})
    return {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}


def search_tokens(query: str) -> list[str]:
    """The `identifier` values of a search (`a|b,c|d`), unescaped; no other parameter is honoured."""
    values = parse_qs(query).get("identifier", [])
    tokens = [t for v in values for t in re.split(r"(?<!\\),", v)]
    return [t.replace("\\,", ",").replace("\\$", "$").replace("\\\\", "\\") for t in tokens]


class StubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    server: StubServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))

    def _send(self, status: int, body: dict[str, Any], version: str | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        if version:
            self.send_header("ETag", f'W/"{version}"')
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/")
        if path.endswith("/metadata"):
            return self._send(200, CAPABILITIES)
        segments = path.split("/")[2:]  # after /fhir
        if len(segments) == 2:  # a read
            found = self.server.memory.resources.get("/".join(segments))
            return self._send(200, found) if found else self._send(404, NOT_FOUND)
        return self._search(segments[0] if segments else "", parts.query)

    def _search(self, resource_type: str, query: str) -> None:
        matches = self.server.memory.search(resource_type, search_tokens(query)) if resource_type else []
        entries = [{"resource": r, "search": {"mode": "match"}} for r in matches]
        return self._send(200, {**EMPTY_SEARCH, "total": len(entries), "entry": entries})

    def do_PUT(self) -> None:
        url = "/".join(urlsplit(self.path).path.split("/")[2:])
        version = self.server.memory.put(url, json.loads(self._body() or b"{}"))
        self._send(201, {"resourceType": "OperationOutcome", "issue": []}, version)

    def do_POST(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        if path.endswith("/_search"):  # POST [type]/_search, a form body
            return self._search(path.split("/")[-2], self._body().decode())
        bundle = json.loads(self._body() or b"{}")
        self._send(200, transaction_response(self.server.memory, bundle))


def make_server() -> StubServer:
    return StubServer()


@contextmanager
def serve_stub() -> Iterator[str]:
    """The stub in a thread of this process (for tests); yields its base URL."""
    server = make_server()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/fhir"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def main() -> None:
    server = make_server()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"http://127.0.0.1:{server.server_address[1]}/fhir", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
