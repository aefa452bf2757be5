"""Orthanc deletions reach FHIR within the next cycle (reconcile.py): an instance, a series and a
whole study deleted in the real Orthanc are deleted in the real FHIR server by the next `run --once`
and by a running `run`; instances Orthanc holds that were not synced yet cause no delete; and a
poll with nothing deleted costs the same number of Orthanc requests with 2 or 20 studies synced."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import peers
from tests.integration import bulk_data
from tests.integration.sync_helpers import dicomcast, json_lines, orthanc_env, snapshot, start_dicomcast, versions
from tests.servers.faulty_proxy import FaultyProxy

pytestmark = pytest.mark.integration
WAIT = 300.0  # seconds: a bound against hanging, not a timing assertion


def _client(orthanc: peers.Peer) -> httpx.Client:
    return httpx.Client(base_url=orthanc.url, auth=(orthanc.extra["username"], orthanc.extra["password"]), timeout=30)


def _orthanc_id(client: httpx.Client, uid: str, level: str) -> str:
    found = [r["ID"] for r in client.post("/tools/lookup", content=uid).json() if r["Type"] == level]
    assert len(found) == 1, (uid, level)
    return str(found[0])


def _delete_some(orthanc: peers.Peer, bulk: bulk_data.Bulk) -> bulk_data.Bulk:
    """Delete one instance of the first study, one series of the second, the whole third study;
    return what Orthanc still holds."""
    studies = sorted(bulk.studies())
    first_sop = sorted(bulk.studies()[studies[0]])[0]
    series_uid = next(i.series_uid for i in bulk.instances if i.study_uid == studies[1])
    with _client(orthanc) as client:
        client.delete(f"/instances/{_orthanc_id(client, first_sop, 'Instance')}").raise_for_status()
        client.delete(f"/series/{_orthanc_id(client, series_uid, 'Series')}").raise_for_status()
        client.delete(f"/studies/{_orthanc_id(client, studies[2], 'Study')}").raise_for_status()
    kept = [
        i
        for i in bulk.instances
        if i.sop_instance_uid != first_sop and i.series_uid != series_uid and i.study_uid != studies[2]
    ]
    return bulk_data.Bulk(kept)


def _held(fhir: peers.Peer) -> dict[str, set[str]]:
    snap = snapshot(fhir)
    return {bulk_data.study_uid_of(s): set(bulk_data.instances_in(s)) for s in snap["ImagingStudy"].values()}


def test_run_once_applies_deletions_made_before_it_started(
    orthanc: peers.Peer, fhir_server: peers.Peer, tmp_path: Path
) -> None:
    bulk = bulk_data.make_bulk("deleted", 4, 4)
    bulk_data.upload(orthanc, bulk.instances)
    env = orthanc_env(orthanc, fhir_server, tmp_path / "store.db")
    assert dicomcast(["run", "--once"], env).returncode == 0
    assert bulk_data.exact(snapshot(fhir_server), bulk) == []

    kept = _delete_some(orthanc, bulk)
    newcomers = bulk_data.make_bulk("newcomers", 1, 3, patients=1)
    bulk_data.upload(orthanc, newcomers.instances)  # in Orthanc, not synced yet: must not look deleted
    result = dicomcast(["run", "--once"], env)

    assert result.returncode == 0, result.stdout[-3000:]
    expected = bulk_data.Bulk(kept.instances + newcomers.instances)
    snap = snapshot(fhir_server)
    assert bulk_data.exact(snap, expected) == []
    events = [line["event"] for line in json_lines(result.stdout)]
    assert events.count("deletions suspected") == 1 and events.count("reconcile") == 1

    again = dicomcast(["run", "--once"], env)  # nothing deleted since: no reconciliation, no write
    assert again.returncode == 0
    assert versions(snapshot(fhir_server)) == versions(snap)
    assert "reconcile" not in [line["event"] for line in json_lines(again.stdout)]


def test_a_running_run_applies_deletions_in_its_next_cycle(
    orthanc: peers.Peer, fhir_server: peers.Peer, tmp_path: Path
) -> None:
    bulk = bulk_data.make_bulk("running", 4, 4)
    bulk_data.upload(orthanc, bulk.instances)
    env = orthanc_env(orthanc, fhir_server, tmp_path / "store.db", DicomCastWorker__PollInterval="1s")
    log = tmp_path / "run.log"
    process = start_dicomcast(["run"], env, log)
    try:
        _until(lambda: bulk_data.exact(snapshot(fhir_server), bulk) == [], "first sync", process, log)
        kept = _delete_some(orthanc, bulk)
        _until(lambda: bulk_data.exact(snapshot(fhir_server), kept) == [], "deletions in FHIR", process, log)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=120)
    assert code == 0, log.read_text()[-3000:]
    assert _held(fhir_server) == kept.studies()


def _until(check: Any, what: str, process: Any, log: Path) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}: {log.read_text()[-3000:]}")


def _idle_requests(env: dict[str, str], proxy: FaultyProxy) -> int:
    """Orthanc requests of one `run --once` that finds nothing new and nothing deleted."""
    before = proxy.counts["requests"]
    result = dicomcast(["run", "--once"], env)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "reconcile" not in [line["event"] for line in json_lines(result.stdout)]
    return proxy.counts["requests"] - before


def test_a_poll_without_deletions_costs_the_same_with_2_or_20_studies(
    orthanc: peers.Peer, fhir_server: peers.Peer, tmp_path: Path
) -> None:
    bulk = bulk_data.make_bulk("cost", 20, 2)
    studies = sorted(bulk.studies())
    few = [i for i in bulk.instances if i.study_uid in studies[:2]]
    proxy = FaultyProxy(orthanc.url, rate=0.0).start()
    try:
        env = orthanc_env(orthanc, fhir_server, tmp_path / "store.db", DicomWeb__Endpoint=proxy.url)
        bulk_data.upload(orthanc, few)
        assert dicomcast(["run", "--once"], env).returncode == 0
        with_2 = _idle_requests(env, proxy)

        bulk_data.upload(orthanc, [i for i in bulk.instances if i not in few])
        assert dicomcast(["run", "--once"], env).returncode == 0
        assert bulk_data.exact(snapshot(fhir_server), bulk) == []
        with_20 = _idle_requests(env, proxy)
    finally:
        proxy.stop()
    print(f"Orthanc requests of an idle run --once: {with_2} with 2 studies synced, {with_20} with 20")
    assert with_2 == with_20, (with_2, with_20)
    assert with_20 <= 6  # feed end at start-up, the feed page, and the check: two feed ends and the statistics
