"""The worker behind a hostile proxy (tests/servers/hostile_proxy.py) in front of the Azure DICOM
test server (v1 and v2) and real Orthanc: redirects, 204, empty 200, HTML 200, truncated JSON and
stalled bodies on feed and metadata reads, on a script driven by request counts. After every run the
checkpoint covers only entries FHIR holds; once the proxy heals, FHIR (real sekmet) is exact.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomcast.store import Store, make_engine
from tests import peers
from tests.integration import bulk_data
from tests.integration.azure_worker import azure_env, sync_once
from tests.integration.sync_helpers import dicomcast, orthanc_env, snapshot
from tests.servers.azure_dicom import AzureDicomServer
from tests.servers.azure_dicom_data import generate_studies, uids
from tests.servers.hostile_proxy import KINDS, HostileProxy

pytestmark = pytest.mark.integration
SCRIPT = list(KINDS) * 2  # every kind twice per class of request
MAX_RUNS = 60


def _checkpoint(store: Path) -> str | None:
    engine = make_engine(f"sqlite:///{store}")
    try:
        rows = Store(engine).checkpoints()
        return rows[0].cursor if rows else None
    finally:
        engine.dispose()


def _listed(fhir: peers.Peer) -> tuple[set[str], list[str]]:
    snap = snapshot(fhir)
    listed = {uid for s in snap["ImagingStudy"].values() for uid in bulk_data.instances_in(s)}
    return listed, bulk_data.check_no_duplicates(snap)


def _azure_class(method: str, path: str) -> str | None:
    if "/changefeed" in path:
        return "feed"
    if path.split("?", 1)[0].endswith("/metadata"):
        return "metadata"
    return None


def _figures(label: str, proxy: HostileProxy, expected: int, present: int, runs: int, failed: int) -> str:
    return (
        f"\nHOSTILE-UPSTREAM FIGURES {label}: injected={dict(sorted(proxy.injected().items()))} "
        f"total_injected={sum(proxy.injected().values())} requests={proxy.counts['requests']} "
        f"sign_in_requests={proxy.counts['sign-in page requested']} runs={runs} failed_runs={failed} "
        f"instances expected={expected} present={present}"
    )


@pytest.mark.timeout(900)
@pytest.mark.parametrize("version", [1, 2])
def test_azure_behind_a_hostile_proxy_loses_and_duplicates_nothing(
    fhir_server: peers.Peer, tmp_path: Path, version: int
) -> None:
    instances = generate_studies(6, 5, seed=11 + version)
    with AzureDicomServer() as azure:
        sequences = dict(zip((uids(i)[2] for i in instances), azure.store_all(instances), strict=True))
        azure.without_metadata = {uids(i)[2] for i in instances[::2]}  # half are read by WADO-RS metadata
        proxy = HostileProxy(azure.url, _azure_class, {"feed": list(SCRIPT), "metadata": list(SCRIPT)}).start()
        store = tmp_path / "store.db"
        env = azure_env(
            f"{proxy.url}/v{version}",
            fhir_server.url,
            store,
            DicomCastWorker__BatchSize="4",
            RetryConfiguration__TotalRetryDuration="20s",
        )
        runs = failed = 0
        try:
            while runs < MAX_RUNS:
                runs += 1
                report = sync_once(env)
                failed += not report.ok
                cursor = _checkpoint(store)
                last = int(cursor.split("@", 1)[0]) if cursor else 0
                listed, duplicated = _listed(fhir_server)
                unread = sorted(uid for uid, seq in sequences.items() if seq <= last and uid not in listed)
                assert not unread, f"run {runs}: checkpoint {cursor} is past {len(unread)} entries FHIR lacks"
                assert not duplicated, duplicated
                if proxy.healed and report.ok and report.caught_up:
                    break
        finally:
            proxy.stop()
    listed, duplicated = _listed(fhir_server)
    print(_figures(f"azure v{version}", proxy, len(sequences), len(listed & set(sequences)), runs, failed))
    assert proxy.healed, f"the script did not run out in {MAX_RUNS} runs: {proxy.injected()}"
    assert listed == set(sequences) and duplicated == []
    assert proxy.counts["sign-in page requested"] == 0  # redirects were never followed
    assert all(proxy.counts[f"{c}/{k}"] == 2 for c in ("feed", "metadata") for k in KINDS), proxy.injected()
    assert failed > 0  # the redirects failed cycles (checkpoint kept) rather than passing unnoticed


def _orthanc_class(method: str, path: str) -> str | None:
    if path.startswith("/changes"):
        return "feed"
    if path.startswith(("/instances/", "/series/", "/studies/", "/dicom-web/")):
        return "metadata"
    return None


@pytest.mark.timeout(900)
def test_orthanc_behind_a_hostile_proxy_loses_and_duplicates_nothing(
    orthanc: peers.Peer, fhir_server: peers.Peer, tmp_path: Path
) -> None:
    bulk = bulk_data.make_bulk("hostile", 8, 5)
    bulk_data.upload(orthanc, bulk.instances)
    sequences = bulk_data.orthanc_sequences(orthanc)
    proxy = HostileProxy(orthanc.url, _orthanc_class, {"feed": list(SCRIPT), "metadata": list(SCRIPT)}).start()
    store = tmp_path / "store.db"
    hostile = peers.Peer(orthanc.process, orthanc.workdir, proxy.url, orthanc.log, dict(orthanc.extra))
    env = orthanc_env(
        hostile,
        fhir_server,
        store,
        DicomCastWorker__BatchSize="5",
        DicomCastWorker__MaxBatchEntries="5",
        RetryConfiguration__TotalRetryDuration="20s",
    )
    runs = failed = 0
    codes: dict[int, int] = {}
    try:
        while runs < MAX_RUNS:
            runs += 1
            result = dicomcast(["run", "--once"], env)
            codes[result.returncode] = codes.get(result.returncode, 0) + 1
            assert result.returncode in (0, 69, 78), result.stdout[-2000:] + result.stderr[-2000:]
            if result.returncode == 78:  # only a redirect at start-up; the line names the setting
                assert "DicomWeb:Endpoint" in result.stderr and "redirect" in result.stderr, result.stderr
            assert "SECRET-CODE" not in result.stdout + result.stderr
            failed += result.returncode != 0
            last = int(_checkpoint(store) or 0)
            listed, duplicated = _listed(fhir_server)
            unread = sorted(uid for uid, seq in sequences.items() if seq <= last and uid not in listed)
            assert not unread, f"run {runs}: checkpoint {last} is past {len(unread)} entries FHIR lacks"
            assert not duplicated, duplicated
            if proxy.healed and result.returncode == 0:
                break
    finally:
        proxy.stop()
    snap = snapshot(fhir_server)
    listed, _ = _listed(fhir_server)
    print(_figures("orthanc", proxy, len(sequences), len(listed & set(sequences)), runs, failed), f"exit_codes={codes}")
    assert proxy.healed, f"the script did not run out in {MAX_RUNS} runs: {proxy.injected()}"
    assert bulk_data.exact(snap, bulk) == []
    assert proxy.counts["sign-in page requested"] == 0
    assert all(proxy.counts[f"{c}/{k}"] == 2 for c in ("feed", "metadata") for k in KINDS), proxy.injected()
