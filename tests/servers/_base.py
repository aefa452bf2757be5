"""In-process loopback HTTP(S) servers for the fakes: port 0, a thread, stopped by the fixture."""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs


class JsonHandler(BaseHTTPRequestHandler):
    """Helpers for fakes that speak JSON; quiet (no request log on stderr)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))

    def read_form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.read_body().decode()).items()}


class ListeningServer(ThreadingHTTPServer):
    """A threading HTTP server with a listen backlog as real servers have (socketserver's default is 5:
    a client opening more connections at once than that had its SYN dropped and retried a second
    later, a stall no real FHIR or DICOM server causes)."""

    daemon_threads = True
    request_queue_size = 128


class LoopbackServer:
    """Runs `handler` on 127.0.0.1:<free port>, over TLS when a cert and key are given."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], *, tls: tuple[Path, Path] | None = None) -> None:
        self.httpd = ListeningServer(("127.0.0.1", 0), handler)
        self.httpd.fake = self  # type: ignore[attr-defined]  # handlers reach their fake through it
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.port = int(self.httpd.server_address[1])
        self.url = f"{self.scheme}://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def fake_of(handler: BaseHTTPRequestHandler) -> Any:
    return handler.server.fake  # type: ignore[attr-defined]
