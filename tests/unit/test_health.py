"""The health listener: liveness and readiness verdicts, and the HTTP surface on a loopback port."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from sqlalchemy import create_engine

from dicomcast.config.settings import WorkerSettings
from dicomcast.errors import ConfigError
from dicomcast.store import Store
from dicomcast.worker import metrics
from dicomcast.worker.health import (
    HealthServer,
    Probes,
    liveness,
    readiness,
    start_http_server_if_configured,
    stuck_after,
)
from dicomcast.worker.state import WorkerState

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SOURCE = "orthanc:http://127.0.0.1:8042"


def _state(**fields: object) -> WorkerState:
    state = WorkerState()
    status = state.status(SOURCE)
    status.last_progress_at = NOW - timedelta(minutes=1)
    for name, value in fields.items():
        setattr(status, name, value)
    return state


def test_stuck_after_allows_a_poll_a_lease_and_three_retry_budgets() -> None:
    settings = WorkerSettings(PollInterval="1m", LeaseDuration="60s")
    assert stuck_after(settings, timedelta(minutes=2)) == timedelta(minutes=8)


def test_liveness_is_alive_after_recent_progress_and_stuck_after_the_limit() -> None:
    state = _state()
    assert liveness(state, [SOURCE], NOW, timedelta(minutes=5)).ok
    stuck = liveness(state, [SOURCE], NOW + timedelta(minutes=10), timedelta(minutes=5))
    assert not stuck.ok
    assert stuck.body["status"] == "stuck"
    assert stuck.body["sources"][SOURCE]["stuck"] is True


def test_a_finished_cycle_counts_as_activity() -> None:
    state = _state(last_cycle_at=NOW + timedelta(minutes=9))
    assert liveness(state, [SOURCE], NOW + timedelta(minutes=10), timedelta(minutes=5)).ok


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({}, "no cycle finished yet"),
        ({"last_cycle_ok": False, "last_error": "FHIR server HTTP 503: GET /metadata"}, "last cycle failed: FHIR"),
        ({"last_cycle_ok": True, "lease_held": False}, "lease not held"),
    ],
)
def test_readiness_names_what_is_missing(fields: dict[str, object], problem: str) -> None:
    verdict = readiness(_state(**fields), [SOURCE], None)
    assert not verdict.ok
    assert verdict.body["sources"][SOURCE]["problem"].startswith(problem)


def test_readiness_needs_the_store_too() -> None:
    healthy = _state(last_cycle_ok=True, lease_held=True, checkpoint="42")
    assert readiness(healthy, [SOURCE], None).ok
    assert readiness(healthy, [SOURCE], None).body["sources"][SOURCE]["checkpoint"] == "42"
    down = readiness(healthy, [SOURCE], "store unreachable: OperationalError")
    assert not down.ok
    assert down.body["store"] == "store unreachable: OperationalError"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[HealthServer, WorkerState]]:
    state = WorkerState()
    probes = Probes(state, [SOURCE], Store(create_engine(f"sqlite:///{tmp_path / 'store.db'}")), timedelta(minutes=5))
    health = HealthServer("127.0.0.1", 0, probes).start()
    yield health, state
    health.stop()


def test_http_endpoints_answer_with_status_and_json(server: tuple[HealthServer, WorkerState]) -> None:
    health, state = server
    base = f"http://127.0.0.1:{health.port}"
    assert httpx.get(f"{base}/healthz").status_code == 200
    not_ready = httpx.get(f"{base}/readyz")
    assert not_ready.status_code == 503
    assert not_ready.json()["sources"][SOURCE]["problem"] == "no cycle finished yet"
    status = state.status(SOURCE)
    status.last_cycle_ok, status.lease_held = True, True
    ready = httpx.get(f"{base}/readyz")
    assert ready.status_code == 200
    assert ready.headers["content-type"].startswith("application/json")
    assert json.loads(ready.text)["status"] == "ready"
    assert httpx.get(f"{base}/nothing-here").status_code == 404


def test_metrics_are_the_prometheus_text_of_the_registry(server: tuple[HealthServer, WorkerState]) -> None:
    health, _ = server
    metrics.CHECKPOINT.labels("unit-test-source").set(1234)
    response = httpx.get(f"http://127.0.0.1:{health.port}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'dicomcast_checkpoint_sequence{source="unit-test-source"} 1234.0' in response.text
    assert "# TYPE dicomcast_entries_total counter" in response.text


def test_readiness_reports_an_unreachable_store(tmp_path: Path) -> None:
    state = _state(last_cycle_ok=True, lease_held=True)
    engine = create_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'store.db'}")
    verdict = Probes(state, [SOURCE], Store(engine), timedelta(minutes=5)).readyz()
    assert not verdict.ok
    assert verdict.body["store"] == "store unreachable: OperationalError"


def test_no_listener_without_http_port() -> None:
    assert start_http_server_if_configured(WorkerSettings(), WorkerState(), SimpleNamespace(contexts=[])) is None


def test_a_busy_port_is_an_operator_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        probes = Probes(WorkerState(), [], Store(create_engine("sqlite://")), timedelta(minutes=5))
        with pytest.raises(ConfigError, match=r"DicomCastWorker:HttpPort: cannot listen on 127\.0\.0\.1"):
            HealthServer("127.0.0.1", port, probes)
