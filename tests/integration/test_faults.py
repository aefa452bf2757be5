"""Crash safety and flaky peers, proved on real servers: kill -9 at 50 moments of a 2,000 instance
sync, and a FHIR server / DICOM server behind a proxy that fails 20% of requests.

The kills are driven by events, not timings: the worker is told (DICOMCAST_FAULT_HOLD, tests/fault_entry.py)
to stop at the n-th time it reaches a point of the sync (a batch read, a study written, every write
of a batch done but its checkpoint not saved, a checkpoint saved) and says so; the test then kills it
from outside with SIGKILL. So every kill hits a sync in progress on a fast or a loaded machine alike.
The kill test takes a few minutes; it is part of the normal test command (no marker to opt in).
"""

from __future__ import annotations

import random
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomcast.store import Store, make_engine
from tests import peers
from tests.fault_entry import POINTS
from tests.integration import bulk_data
from tests.integration.sync_helpers import dicomcast, orthanc_env, run_and_kill_at, snapshot
from tests.servers.faulty_proxy import FaultyProxy

pytestmark = pytest.mark.integration

KILLS = 50
STUDIES, PER_STUDY = 100, 20  # 2,000 instances to start with
TOP_UP_STUDIES, LOW_BACKLOG = 10, 200  # new images keep arriving between crashes, as many as it takes
SEED = 20261123
BATCH = 50  # instances per batch: a backlog of LOW_BACKLOG is at least 4 batches and 10 studies
# The n-th time each point is reached, n chosen within what a backlog of LOW_BACKLOG always holds.
MAX_NTH = {"page-read": 3, "study-written": 5, "before-checkpoint": 3, "after-checkpoint": 3}


@pytest.fixture(scope="module")
def bulk_orthanc() -> Iterator[tuple[peers.Peer, bulk_data.Bulk, dict[str, int]]]:
    orthanc = peers.start_orthanc()
    try:
        bulk = bulk_data.make_bulk("kill", STUDIES, PER_STUDY)
        bulk_data.upload(orthanc, bulk.instances)
        yield orthanc, bulk, bulk_data.orthanc_sequences(orthanc)
    finally:
        orthanc.stop()


def _checkpoint(store_path: Path, source: str) -> int:
    engine = make_engine(f"sqlite:///{store_path}")
    try:
        return int(Store(engine).read_checkpoint(source) or 0)
    finally:
        engine.dispose()


@pytest.mark.timeout(3600)  # a hang guard only: the kills wait for events, never for the clock
def test_kill_9_at_50_random_moments_loses_and_duplicates_nothing(
    bulk_orthanc: tuple[peers.Peer, bulk_data.Bulk, dict[str, int]], tmp_path: Path
) -> None:
    orthanc, bulk, sequences = bulk_orthanc
    assert len(sequences) == STUDIES * PER_STUDY
    fhir = peers.start_fhir()
    rng = random.Random(SEED)
    store_path, log = tmp_path / "store.db", tmp_path / "run.log"
    env = orthanc_env(
        orthanc, fhir, store_path, DicomCastWorker__BatchSize=str(BATCH), DicomCastWorker__MaxBatchEntries=str(BATCH)
    )
    assert dicomcast(["migrate"], env).returncode == 0
    source = f"orthanc:{orthanc.url}"
    uploaded = bulk_data.Bulk(list(bulk.instances))
    endings: Counter[str] = Counter()
    lost_after_kill = duplicated_after_kill = kills_mid_sync = 0
    started = time.monotonic()
    try:
        for kill in range(KILLS):
            # A fast machine must not run out of work before the 50th kill: top the backlog up.
            # Every run starts with at least LOW_BACKLOG instances to sync, so it always reaches its point.
            while sum(seq > _checkpoint(store_path, source) for seq in sequences.values()) < LOW_BACKLOG:
                batch = bulk_data.make_bulk(
                    f"kill-more-{kill}-{len(uploaded.instances)}", TOP_UP_STUDIES, PER_STUDY
                ).instances
                top_up = time.monotonic()
                bulk_data.upload(orthanc, batch)
                uploaded.instances += batch
                print(f"top-up before run {kill}: +{len(batch)} instances", end=" ")
                sequences = bulk_data.orthanc_sequences(orthanc)
                print(f"({time.monotonic() - top_up:.1f} s)")
            behind = _checkpoint(store_path, source) < max(sequences.values())
            point = POINTS[kill % len(POINTS)]  # the points take turns; which time it is reached is random
            ending = run_and_kill_at(env, log, point, rng.randint(1, MAX_NTH[point]))
            endings[ending] += 1
            kills_mid_sync += behind and ending.startswith("killed")
            checkpoint = _checkpoint(store_path, source)
            snap = snapshot(fhir)
            handled = {uid for uid, seq in sequences.items() if seq <= checkpoint}
            lost = bulk_data.missing(snap, uploaded, handled)
            duplicated = bulk_data.check_no_duplicates(snap)
            lost_after_kill += len(lost)
            duplicated_after_kill += len(duplicated)
            assert not lost, f"kill {kill} ({ending}): checkpoint {checkpoint} but lost {lost[:5]}"
            assert not duplicated, f"kill {kill} ({ending}): {duplicated[:5]}"

        for _ in range(3):  # the last restart catches up
            final = dicomcast(["run", "--once"], env)
            if final.returncode == 0:
                break
        assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]
        problems = bulk_data.exact(snapshot(fhir), uploaded)
        engine = make_engine(f"sqlite:///{store_path}")
        recorded_failures = Store(engine).failures()
        engine.dispose()
    finally:
        fhir.stop()
    runtime = time.monotonic() - started
    print(
        f"\nFAULT-INJECTION FIGURES: kills={sum(v for k, v in endings.items() if k.startswith('killed'))} "
        f"(mid-sync {kills_mid_sync}, of them before-checkpoint {endings['killed at before-checkpoint']}), "
        f"runs={KILLS} endings={dict(endings)} instances={len(sequences)} studies={len(uploaded.studies())} "
        f"lost={lost_after_kill + len([p for p in problems if 'lost' in p or 'missing' in p])} "
        f"duplicated={duplicated_after_kill + len([p for p in problems if 'twice' in p or 'extra' in p])} "
        f"runtime={runtime:.0f}s seed={SEED}"
    )
    assert problems == []
    assert recorded_failures == []
    # Every run was killed at its point while the feed was behind: by construction, not by luck.
    assert kills_mid_sync == KILLS
    assert endings == Counter(
        {f"killed at {p}": sum(1 for k in range(KILLS) if POINTS[k % len(POINTS)] == p) for p in POINTS}
    )


def _converge(env: dict[str, str], runs: int = 8) -> subprocess.CompletedProcess[str]:
    """`run --once` until a run ends caught up: a run whose retry budget ran out exits 69 with its
    checkpoint kept, and the next run (the next cycle, in production) goes on from there."""
    for _ in range(runs):
        result = dicomcast(["run", "--once"], env)
        if result.returncode == 0:
            return result
        assert result.returncode == 69, result.stdout[-2000:] + result.stderr[-2000:]
    return result


@pytest.fixture
def small_bulk(orthanc: peers.Peer) -> bulk_data.Bulk:
    bulk = bulk_data.make_bulk("flaky", 20, 10)
    bulk_data.upload(orthanc, bulk.instances)
    return bulk


def test_fhir_server_failing_20_percent_of_requests_converges(
    orthanc: peers.Peer, fhir_server: peers.Peer, small_bulk: bulk_data.Bulk, tmp_path: Path
) -> None:
    upstream = fhir_server.url.removesuffix("/fhir")
    proxy = FaultyProxy(upstream, rate=0.2, seed=SEED).start()
    try:
        flaky = peers.Peer(fhir_server.process, fhir_server.workdir, f"{proxy.url}/fhir", fhir_server.log)
        # Small batches: many requests cross the proxy, so every kind of fault is met.
        env = orthanc_env(
            orthanc,
            flaky,
            tmp_path / "store.db",
            DicomCastWorker__BatchSize="20",
            DicomCastWorker__MaxBatchEntries="20",
        )
        result = _converge(env)
    finally:
        proxy.stop()

    assert result.returncode == 0, result.stdout[-3000:]
    assert bulk_data.exact(snapshot(fhir_server), small_bulk) == []
    assert all(proxy.counts[fault] > 0 for fault in ("429", "503", "reset", "lost", "stall")), proxy.counts


def test_dicom_server_failing_20_percent_of_requests_converges(
    orthanc: peers.Peer, fhir_server: peers.Peer, small_bulk: bulk_data.Bulk, tmp_path: Path
) -> None:
    proxy = FaultyProxy(orthanc.url, rate=0.2, seed=SEED).start()
    try:
        flaky = peers.Peer(orthanc.process, orthanc.workdir, proxy.url, orthanc.log, dict(orthanc.extra))
        env = orthanc_env(
            flaky,
            fhir_server,
            tmp_path / "store.db",
            DicomCastWorker__BatchSize="20",
            DicomCastWorker__MaxBatchEntries="20",
            RetryConfiguration__TotalRetryDuration="20s",
        )
        result = _converge(env, runs=4)
    finally:
        proxy.stop()

    assert result.returncode == 0, result.stdout[-3000:]
    assert bulk_data.exact(snapshot(fhir_server), small_bulk) == []
    assert proxy.counts["requests"] > 0 and sum(proxy.counts[f] for f in ("429", "503", "reset")) > 0, proxy.counts
