"""One active writer per source on a shared PostgreSQL store: the others wait as hot standbys and
take over when the writer dies; a worker that lost its lease stops writing."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from dicomcast.config.settings import Settings
from dicomcast.store import Store, make_engine, migrate
from dicomcast.worker.build import build
from dicomcast.worker.runner import make_workers
from dicomcast.worker.state import WorkerState
from tests import peers
from tests.integration import bulk_data
from tests.integration.pg import fresh_schema
from tests.integration.sync_helpers import json_lines, orthanc_env, snapshot, start_dicomcast

pytestmark = pytest.mark.integration
# Long enough that a busy machine never lets a live writer's lease lapse between two renewals
# (one batch of MaxBatchEntries); the takeover after the kill does not wait for it, since a dead
# process's lease on the same host is taken at once (lease.dead_predecessor).
LEASE = "60s"


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_schema() as url:
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        yield url


def _wait_for(predicate: object, what: str, limit: float = 120) -> None:
    deadline = time.monotonic() + limit  # a bound against hanging, not a timing assertion
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


def _events(log: Path, event: str) -> int:
    return sum(1 for line in json_lines(log.read_text(errors="replace")) if line.get("event") == event)


@pytest.mark.parametrize("replicas", [2, 3])
def test_one_writer_the_others_wait_and_take_over_when_it_dies(
    replicas: int, orthanc: peers.Peer, fhir_server: peers.Peer, pg_url: str, tmp_path: Path
) -> None:
    bulk = bulk_data.make_bulk(f"lease{replicas}", 30, 8)
    bulk_data.upload(orthanc, bulk.instances)
    env = orthanc_env(
        orthanc,
        fhir_server,
        tmp_path / "unused.db",
        Store__ConnectionString=pg_url,
        DicomCastWorker__BatchSize="10",
        DicomCastWorker__MaxBatchEntries="10",  # the lease is renewed every 10 entries
        DicomCastWorker__LeaseDuration=LEASE,
        DicomCastWorker__PollInterval="1s",
    )
    logs = [tmp_path / f"w{n}.log" for n in range(replicas)]
    workers = [start_dicomcast(["run"], env, log) for log in logs]
    try:
        _wait_for(lambda: any(_events(log, "page") for log in logs), "a first page")
        writers = [n for n, log in enumerate(logs) if _events(log, "page")]
        assert len(writers) == 1  # one writes ...
        first = writers[0]
        assert all(
            _events(logs[n], "lease acquired") == 0 for n in range(replicas) if n != first
        )  # ... the others wait

        workers[first].send_signal(signal.SIGKILL)
        workers[first].wait()
        standbys = [n for n in range(replicas) if n != first]
        _wait_for(lambda: any(_events(logs[n], "lease acquired") for n in standbys), "a takeover")
        successors = [n for n in standbys if _events(logs[n], "lease acquired")]
        assert len(successors) == 1
        _wait_for(lambda: bulk_data.exact(snapshot(fhir_server), bulk) == [], "the sync to finish", limit=240)
    finally:
        for process in workers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in workers:
            try:
                process.wait(timeout=120)  # a hang guard: the worker bounds its own stop
            except subprocess.TimeoutExpired:
                process.kill()
    assert bulk_data.exact(snapshot(fhir_server), bulk) == []  # no duplicates, nothing lost
    assert all(workers[n].returncode == 0 for n in standbys)  # SIGTERM: clean exits


def _settings(orthanc: peers.Peer, fhir: peers.Peer, store_url: str) -> Settings:
    return Settings.model_validate(
        {
            "DicomWeb": {
                "Endpoint": orthanc.url,
                "ServerType": "Orthanc",
                "Authentication": {
                    "Enabled": True,
                    "AuthenticationType": "Basic",
                    "BasicCredential": {"Username": orthanc.extra["username"], "Password": orthanc.extra["password"]},
                },
            },
            "Fhir": {"Endpoint": fhir.url},
            "Store": {"ConnectionString": store_url},
            "Patient": {"PatientSystemId": "urn:oid:1.2.3.4.5"},
        }
    )


def test_a_worker_that_lost_its_lease_stops_writing(orthanc: peers.Peer, fhir_server: peers.Peer, pg_url: str) -> None:
    bulk = bulk_data.make_bulk("lost", 3, 2)
    bulk_data.upload(orthanc, bulk.instances)
    parts = build(_settings(orthanc, fhir_server, pg_url), threading.Event())
    try:
        worker = make_workers(parts.contexts, WorkerState(), timedelta(seconds=60), lambda: "host:1:a")[0]
        store = Store(parts.store.engine)
        assert store.acquire_lease(worker.name, "host:1:a", timedelta(seconds=60))
        worker.state.status(worker.name).lease_held = True
        assert store.acquire_lease(worker.name, "other:2:b", timedelta(seconds=60), take_from="host:1:a")  # taken

        lost = worker.run_cycle()
        standby = worker.run_cycle()
    finally:
        parts.close()

    assert not lost.ok and "lease" in (lost.error or "")
    assert snapshot(fhir_server)["ImagingStudy"] == {}  # nothing written after the loss
    assert standby.waiting_for_lease and standby.ok  # then it waits as a standby
