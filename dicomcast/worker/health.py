"""The health and metrics listener (DicomCastWorker:HttpHost / :HttpPort; off when HttpPort is unset).

    GET /healthz   200 while the loop is alive: every source finished a cycle or a page recently
    GET /readyz    200 when every source's last cycle succeeded, its lease is held, and the store answers;
                   503 while starting or while a dependency is unavailable, with the reason (service,
                   error class, status code: never text a server sent)
    GET /metrics   Prometheus text exposition of dicomcast.worker.metrics.REGISTRY

A stdlib server in a daemon thread: the probes are tiny and must keep answering while the loop's
threads are busy. Bodies carry source names, checkpoints and error summaries, never PHI or secrets.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client.exposition import choose_encoder

from dicomcast.config.settings import WorkerSettings
from dicomcast.errors import ConfigError
from dicomcast.logs import get_logger
from dicomcast.store import Store
from dicomcast.worker import metrics
from dicomcast.worker.availability import Availability
from dicomcast.worker.lag import LagMonitor
from dicomcast.worker.state import WorkerState

log = get_logger("dicomcast.health")
JSON = "application/json; charset=utf-8"


@dataclass(frozen=True)
class Verdict:
    ok: bool
    body: dict[str, Any]


def stuck_after(settings: WorkerSettings, retry_budget: timedelta) -> timedelta:
    """How long without a finished cycle or page means stuck: a poll, a lease period and a few
    retry budgets (a page may spend one per study lane before it fails or lands)."""
    return settings.poll_interval + settings.lease_duration + 3 * retry_budget


def liveness(state: WorkerState, sources: Sequence[str], now: datetime, limit: timedelta) -> Verdict:
    report: dict[str, Any] = {}
    alive = True
    for name in sources:
        status = state.status(name)
        last = max(t for t in (status.last_progress_at, status.last_cycle_at) if t is not None)
        idle = (now - last).total_seconds()
        stuck = idle > limit.total_seconds()
        alive &= not stuck
        report[name] = {"last_activity": last.isoformat(), "idle_seconds": round(idle, 1), "stuck": stuck}
    return Verdict(alive, {"status": "alive" if alive else "stuck", "sources": report})


def _source_problem(state: WorkerState, name: str) -> str | None:
    status = state.status(name)
    if status.last_cycle_ok is None:
        return "no cycle finished yet"
    if not status.last_cycle_ok:
        return f"last cycle failed: {status.last_error or 'unknown error'}"
    if not status.lease_held:
        return "lease not held (another worker writes this source)"
    return None


def readiness(
    state: WorkerState, sources: Sequence[str], store_problem: str | None, unavailable: dict[str, str] | None = None
) -> Verdict:
    report: dict[str, Any] = {}
    ready = store_problem is None and not unavailable
    for name in sources:
        problem = _source_problem(state, name)
        ready &= problem is None
        status = state.status(name)
        report[name] = {"ready": problem is None, "problem": problem, "checkpoint": status.checkpoint}
    body = {"status": "ready" if ready else "not ready", "store": store_problem or "ok", "sources": report}
    if unavailable:
        body["unavailable"] = dict(unavailable)
    return Verdict(ready, body)


def starting(unavailable: dict[str, str]) -> Verdict:
    """Not ready: `run` is still waiting for its store or FHIR server (or building its parts)."""
    return Verdict(False, {"status": "starting", "unavailable": unavailable, "sources": {}})


@dataclass
class Probes:
    """What the listener answers, bound to the running worker's state. Before the worker's parts are
    built (`store` None: waiting for the store or the FHIR server) /healthz says alive and /readyz
    says starting, with what is unavailable."""

    state: WorkerState
    sources: list[str]
    store: Store | None
    limit: timedelta
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    availability: Availability | None = None

    def healthz(self) -> Verdict:
        return liveness(self.state, self.sources, self.clock(), self.limit)

    def readyz(self) -> Verdict:
        unavailable = self.availability.problems() if self.availability else {}
        if self.store is None:
            return starting(unavailable)
        return readiness(self.state, self.sources, self.store.ping(), unavailable)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            self._send(200, content_type, encoder(metrics.REGISTRY))
        elif path in ("/healthz", "/readyz"):
            verdict = self.server.probes.healthz() if path == "/healthz" else self.server.probes.readyz()
            self._send(200 if verdict.ok else 503, JSON, _json(verdict.body))
        else:
            self._send(404, JSON, _json({"error": "not found", "paths": ["/healthz", "/readyz", "/metrics"]}))

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return  # probes every few seconds would drown the work log


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], probes: Probes) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.probes = probes
        super().__init__(address, _Handler)


class HealthServer:
    """The listener in a daemon thread; `port` is the bound one (HttpPort 0 picks a free port)."""

    def __init__(self, host: str, port: int, probes: Probes) -> None:
        try:
            self.httpd = _Server((host, port), probes)
        except OSError as exc:
            raise ConfigError(
                [
                    f"DicomCastWorker:HttpPort: cannot listen on {host}:{port} ({exc.strerror or exc}); choose a free port"
                ]
            ) from None
        self.host = host
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="health-http", daemon=True)

    def start(self) -> HealthServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def start_http_server_if_configured(
    settings: WorkerSettings, state: WorkerState, parts: Any = None, availability: Availability | None = None
) -> HealthServer | None:
    """Serve /healthz, /readyz and /metrics when DicomCastWorker:HttpPort is set. `run` starts it
    before waiting for its dependencies (parts None) and `attach`es the parts once they are built."""
    if settings.http_port is None:
        return None
    probes = Probes(state=state, sources=[], store=None, limit=timedelta(0), availability=availability)
    server = HealthServer(settings.http_host, settings.http_port, probes).start()
    log.info("http listener", host=server.host, port=server.port, paths=["/healthz", "/readyz", "/metrics"])
    if parts is not None:
        attach(server, settings, parts)
    return server


def attach(server: HealthServer | None, settings: WorkerSettings, parts: Any) -> None:
    """Bind the probes to the built worker (`parts` is worker.build.Parts) and start the feed-lag
    refresher that feeds /metrics."""
    if server is None:
        return
    contexts = list(parts.contexts)
    stop = contexts[0].stop_event if contexts else threading.Event()
    LagMonitor(contexts, settings.poll_interval, stop).start()
    budget = max((ctx.tuning.retry_budget for ctx in contexts), default=timedelta(minutes=2))
    probes = server.httpd.probes
    probes.limit = stuck_after(settings, budget)
    probes.sources = [ctx.source.name for ctx in contexts]
    probes.store = parts.store
