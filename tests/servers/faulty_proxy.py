"""A loopback HTTP proxy that answers a share of requests with faults, in front of a real server.

Faults, chosen at random for `rate` of the requests (seeded, so a run can be repeated):
- `429`: Too Many Requests with `Retry-After: 1`, not forwarded;
- `503`: Service Unavailable, not forwarded;
- `reset`: the connection is reset (RST) before the request is forwarded;
- `lost`: forwarded, the server acts on it, then the connection is reset: the answer is lost, as
  when a response times out after the server did the work (the hardest case for idempotency);
- `stall`: forwarded, then nothing for `stall_seconds`, then a reset: a timeout seen from the client
  (the client's own read timeout is longer than a test should wait, so the proxy ends the wait).
`rules` answer chosen requests with a fixed status whatever the dice say (poison entries: FHIR 422);
`rewrites` change chosen answers of the server on their way back (a malformed Orthanc change).
`latency` adds a round-trip time to every forwarded request (the benchmark's WAN stand-in, never a test's).
"""

from __future__ import annotations

import json
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx

from tests.servers._base import LoopbackServer, fake_of

FAULTS = ("429", "503", "reset", "lost", "stall")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-encoding", "content-length", "host"}


@dataclass
class Rule:
    """Requests for which `matches(method, path, body)` is true get `status` with `body`."""

    matches: Callable[[str, str, bytes], bool]
    status: int
    body: dict[str, Any]


@dataclass
class Rewrite:
    """Answers to requests for which `matches(method, path)` is true get `body(original body)`."""

    matches: Callable[[str, str], bool]
    body: Callable[[bytes], bytes]


@dataclass
class FaultyProxy:
    upstream: str
    rate: float = 0.2
    seed: int = 0
    stall_seconds: float = 1.0
    faults: tuple[str, ...] = FAULTS
    rules: list[Rule] = field(default_factory=list)
    rewrites: list[Rewrite] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    latency: float = 0.0  # seconds added to each forwarded request

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=120, limits=httpx.Limits(max_connections=32))
        self._server = LoopbackServer(_Handler)
        self._server.httpd.fake = self  # type: ignore[attr-defined]
        self.url = self._server.url

    def start(self) -> FaultyProxy:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
        self._client.close()

    def choose(self) -> str | None:
        with self._lock:
            self.counts["requests"] += 1
            if self._random.random() >= self.rate:
                return None
            # Which requests fail is random; the kinds take turns, so every kind is met in a short run.
            fault = self.faults[sum(self.counts[f] for f in self.faults) % len(self.faults)]
            self.counts[fault] += 1
            return fault

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> httpx.Response:
        kept = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}
        return self._client.request(method, self.upstream.rstrip("/") + path, headers=kept, content=body)

    def rule_for(self, method: str, path: str, body: bytes) -> Rule | None:
        for rule in self.rules:
            if rule.matches(method, path, body):
                with self._lock:
                    self.counts[f"rule {rule.status}"] += 1
                return rule
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        proxy: FaultyProxy = fake_of(self)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
        rule = proxy.rule_for(self.command, self.path, body)
        if rule is not None:
            self._answer(rule.status, {"Content-Type": "application/fhir+json"}, json.dumps(rule.body).encode())
            return
        fault = proxy.choose()
        if fault in ("429", "503"):
            self._answer(int(fault or 0), {"Retry-After": "1", "Content-Type": "text/plain"}, b"injected fault")
            return
        if fault == "reset":
            self._reset()
            return
        if proxy.latency:
            time.sleep(proxy.latency)
        try:
            response = proxy.forward(self.command, self.path, dict(self.headers.items()), body)
        except httpx.HTTPError:
            self._reset()
            return
        if fault == "stall":
            time.sleep(proxy.stall_seconds)
        if fault in ("lost", "stall"):
            self._reset()
            return
        headers = {k: v for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP}
        content = response.content
        for rewrite in proxy.rewrites:
            if rewrite.matches(self.command, self.path):
                content = rewrite.body(content)
        self._answer(response.status_code, headers, content)

    def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _reset(self) -> None:
        """Close with RST (SO_LINGER 0), as a crashed or overloaded peer does."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass


def outcome(diagnostics: str) -> dict[str, Any]:
    """An OperationOutcome body for a rule."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "processing", "diagnostics": diagnostics}],
    }
