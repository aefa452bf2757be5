"""A loopback proxy that answers like a hostile network or a misbehaving gateway, on a script.

Faults are driven by request counts, never by time: every `every`-th request of a class ("feed",
"metadata", ...: `classify(method, path)` names it) takes the next fault of that class's queue, until
the queue is empty (the proxy has healed). Kinds:
- `redirect`: 302 to a sign-in page on this proxy (`/__signin?code=...`; a request for it is counted);
- `204`: No Content;
- `empty`: 200, `application/json`, no body;
- `html`: 200 with an HTML sign-in page;
- `truncated`: forwarded, then the first half of the upstream body as a complete 200;
- `stall`: forwarded, headers and half the body sent, then nothing, then the connection closes
  (the client sees a body cut short; the pause only keeps the socket open a moment).
`rewrite` may change any forwarded body (links pointing elsewhere), `rewrite_path` the request sent
upstream (a smaller `_count`, so searches page), `answer` may answer a request itself (a FHIR server rejecting a write with an OperationOutcome).
"""

from __future__ import annotations

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

from tests.servers._base import ListeningServer, LoopbackServer, fake_of

KINDS = ("redirect", "204", "empty", "html", "truncated", "stall")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-encoding", "content-length", "host"}
SIGNIN = "/__signin"
HTML = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body><form>Sign in</form></body></html>"

Classify = Callable[[str, str], str | None]
Rewrite = Callable[[str, str, httpx.Response], bytes]
Answer = Callable[[str, str, dict[str, str], bytes], tuple[int, dict[str, str], bytes] | None]


@dataclass
class HostileProxy:
    upstream: str
    classify: Classify = lambda method, path: None
    schedule: dict[str, list[str]] = field(default_factory=dict)  # class -> faults, in order
    every: int = 2  # every n-th request of a class takes its next fault
    rewrite: Rewrite | None = None
    rewrite_path: Callable[[str], str] | None = None  # the path (and query) forwarded upstream
    answer: Answer | None = None
    stall_seconds: float = 0.5
    counts: Counter[str] = field(default_factory=Counter)
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)  # method, path, headers

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._queues = {name: list(faults) for name, faults in self.schedule.items()}
        self._client = httpx.Client(timeout=120, limits=httpx.Limits(max_connections=32))
        self._server = LoopbackServer(_Handler)
        self._server.httpd.fake = self  # type: ignore[attr-defined]
        self.url = self._server.url

    def start(self) -> HostileProxy:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
        self._client.close()

    @property
    def healed(self) -> bool:
        with self._lock:
            return not any(self._queues.values())

    def injected(self) -> dict[str, int]:
        """`class/kind` -> faults injected."""
        with self._lock:
            return {key: n for key, n in self.counts.items() if "/" in key}

    def fault_for(self, method: str, path: str) -> str | None:
        kind = self.classify(method, path)
        with self._lock:
            self.counts["requests"] += 1
            if kind is None:
                return None
            self.counts[f"{kind} requests"] += 1
            queue = self._queues.get(kind)
            if not queue or self.counts[f"{kind} requests"] % self.every:
                return None
            fault = queue.pop(0)
            self.counts[f"{kind}/{fault}"] += 1
            return fault

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> httpx.Response:
        kept = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}
        if self.rewrite_path is not None:
            path = self.rewrite_path(path)
        return self._client.request(method, self.upstream.rstrip("/") + path, headers=kept, content=body)


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
        proxy: HostileProxy = fake_of(self)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
        headers = dict(self.headers.items())
        with proxy._lock:
            proxy.seen.append((self.command, self.path, headers))
        if self.path.startswith(SIGNIN):
            with proxy._lock:
                proxy.counts["sign-in page requested"] += 1
            self._send(200, {"Content-Type": "text/html"}, HTML)
            return
        if proxy.answer is not None and (own := proxy.answer(self.command, self.path, headers, body)) is not None:
            self._send(*own)
            return
        fault = proxy.fault_for(self.command, self.path)
        if fault == "redirect":
            target = f"{proxy.url}{SIGNIN}?code=SECRET-CODE&return={self.path}"
            self._send(302, {"Location": target, "Content-Type": "text/html"}, HTML)
            return
        if fault == "204":
            self._send(204, {}, b"")
            return
        if fault == "empty":
            self._send(200, {"Content-Type": "application/json"}, b"")
            return
        if fault == "html":
            self._send(200, {"Content-Type": "text/html; charset=utf-8"}, HTML)
            return
        try:
            response = proxy.forward(self.command, self.path, headers, body)
        except httpx.HTTPError:
            self._reset()
            return
        content = proxy.rewrite(self.command, self.path, response) if proxy.rewrite else response.content
        kept = {k: v for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP}
        if fault == "truncated":
            self._send(response.status_code, kept, content[: max(1, len(content) // 2)])
            return
        if fault == "stall":
            self._stall(response.status_code, kept, content, proxy.stall_seconds)
            return
        self._send(response.status_code, kept, content)

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _stall(self, status: int, headers: dict[str, str], body: bytes, pause: float) -> None:
        """The full length announced, half the body sent, then silence and a close."""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        time.sleep(pause)
        self._reset()

    def _reset(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass


@dataclass
class Recorder:
    """A listener that records every request (and whether it carried credentials) and answers 404."""

    host: str = "127.0.0.2"
    requests: list[tuple[str, str, bool]] = field(default_factory=list)  # method, path, with credentials

    def __post_init__(self) -> None:
        self._httpd = ListeningServer((self.host, 0), _RecordingHandler)
        self._httpd.fake = self  # type: ignore[attr-defined]
        self.port = int(self._httpd.server_address[1])
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    @property
    def with_credentials(self) -> int:
        return sum(1 for _, _, credentialed in self.requests if credentialed)


class _RecordingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        recorder: Recorder = fake_of(self)
        credentialed = any(self.headers.get(h) for h in ("Authorization", "Cookie", "Proxy-Authorization"))
        recorder.requests.append((self.command, self.path, credentialed))
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()
