"""SIGTERM during a sync: exit 0 within the grace period, a consistent checkpoint, the lease released;
and several sources in one process, one of them down, the other still synced."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from dicomcast.store import Store, make_engine
from tests import peers
from tests.integration import bulk_data
from tests.integration.sync_helpers import dicomcast, json_lines, orthanc_env, snapshot, start_dicomcast

pytestmark = pytest.mark.integration


def test_sigterm_mid_sync_exits_cleanly_with_a_consistent_checkpoint(
    orthanc: peers.Peer, fhir_server: peers.Peer, tmp_path: Path
) -> None:
    bulk = bulk_data.make_bulk("term", 40, 10)
    bulk_data.upload(orthanc, bulk.instances)
    sequences = bulk_data.orthanc_sequences(orthanc)
    env = orthanc_env(
        orthanc,
        fhir_server,
        tmp_path / "store.db",
        DicomCastWorker__BatchSize="10",
        DicomCastWorker__MaxBatchEntries="10",
    )
    log = tmp_path / "run.log"
    process = start_dicomcast(["run"], {**env, "PYTHONUNBUFFERED": "1"}, log)  # lines seen as written
    deadline = time.monotonic() + 120  # a bound against hanging, not a timing assertion
    while '"page"' not in log.read_text(errors="replace") and time.monotonic() < deadline:
        time.sleep(0.05)

    process.send_signal(signal.SIGTERM)
    # The worker bounds its own stop by ShutdownGracePeriod (abandoning the page in hand past it); how
    # soon a loaded machine lets the process end is not asserted: this wait only guards against a hang.
    returncode = process.wait(timeout=300)

    assert returncode == 0, log.read_text()[-3000:]
    assert any(line.get("event") == "stopped" for line in json_lines(log.read_text()))
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    store = Store(engine)
    source = f"orthanc:{orthanc.url}"
    checkpoint = int(store.read_checkpoint(source) or 0)
    lease = store.lease(source)
    engine.dispose()
    assert lease is None  # released
    assert 0 < checkpoint < max(sequences.values())  # stopped mid-sync
    handled = {uid for uid, seq in sequences.items() if seq <= checkpoint}
    assert bulk_data.missing(snapshot(fhir_server), bulk, handled) == []
    assert dicomcast(["run", "--once"], env).returncode == 0
    assert bulk_data.exact(snapshot(fhir_server), bulk) == []


def test_two_orthancs_into_one_fhir_server_one_down_the_other_still_syncs(
    orthanc: peers.Peer, fhir_server: peers.Peer, tmp_path: Path
) -> None:
    second = peers.start_orthanc()
    try:
        first_bulk, second_bulk = bulk_data.make_bulk("src1", 3, 2), bulk_data.make_bulk("src2", 3, 2)
        bulk_data.upload(orthanc, first_bulk.instances)
        bulk_data.upload(second, second_bulk.instances)
        env = orthanc_env(orthanc, fhir_server, tmp_path / "store.db", RetryConfiguration__TotalRetryDuration="3s")
        for n, peer in enumerate((orthanc, second)):
            prefix = f"Sources__{n}__DicomWeb__"
            env.update(
                {
                    f"{prefix}Endpoint": peer.url,
                    f"{prefix}ServerType": "Orthanc",
                    f"{prefix}Authentication__Enabled": "true",
                    f"{prefix}Authentication__AuthenticationType": "Basic",
                    f"{prefix}Authentication__BasicCredential__Username": peer.extra["username"],
                    f"{prefix}Authentication__BasicCredential__Password": peer.extra["password"],
                }
            )
        for key in [k for k in env if k.startswith("DicomWeb__")]:
            del env[key]
        second.stop()  # down

        down = dicomcast(["run", "--once"], env)
        snap = snapshot(fhir_server)
        assert down.returncode == 69, down.stdout[-2000:] + down.stderr[-2000:]  # reports the failing source ...
        assert bulk_data.exact(snap, first_bulk) == []  # ... and the other one synced
    finally:
        second.stop()
