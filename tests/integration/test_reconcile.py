"""`dicomcast reconcile` against the loopback Azure DICOM service (QIDO-RS) and real Orthanc, with
the real FHIR server: every kind of difference made on purpose, reported by --dry-run (exit 3),
repaired (exit 0) with untouched studies at their version, then a second --dry-run exits 0."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomcast.store import Store, make_engine, migrate
from tests import peers
from tests.integration import reconcile_helpers as rh
from tests.integration.azure_worker import azure_env, sync_once
from tests.integration.bulk_data import make_bulk, upload
from tests.integration.sync_helpers import dicomcast, orthanc_env, snapshot, versions
from tests.servers.azure_dicom import AzureDicomServer
from tests.servers.azure_dicom_data import generate_studies, uids
from tests.servers.dicomcast_writer import DicomCastWriter

pytestmark = pytest.mark.integration
DIFFERENCES = 3


@pytest.fixture
def azure() -> Iterator[AzureDicomServer]:
    with AzureDicomServer() as server:
        yield server


def _expected_azure(azure: AzureDicomServer) -> rh.Expected:
    expected: rh.Expected = {}
    for _, study, series, sop in azure.table.current:
        expected.setdefault(study, {}).setdefault(series, set()).add(sop)
    return expected


def _set_checkpoint(store: Path, source: str, cursor: str) -> None:
    engine = make_engine(f"sqlite:///{store}")
    migrate(engine)
    Store(engine).set_checkpoint(source, cursor)
    engine.dispose()


def _study_uids(instances: list[dict]) -> list[str]:  # type: ignore[type-arg]
    return list(dict.fromkeys(uids(i)[0] for i in instances))


def test_reconcile_azure_every_kind_of_difference(
    azure: AzureDicomServer, fhir_server: peers.Peer, tmp_path: Path
) -> None:
    # DICOM Cast wrote the first study (legacy content); dicomcast synced the rest after its checkpoint.
    legacy_study = generate_studies(1, 3, seed=41)
    last = azure.store_all(legacy_study)[-1]
    writer = DicomCastWriter(fhir_server.url, azure.url, patient_system_id="urn:oid:1.2.3.4.5")
    try:
        writer.sync_feed(azure.url, last)
    finally:
        writer.close()
    synced = generate_studies(8, 5, seed=42)
    azure.store_all(synced)
    store, endpoint = tmp_path / "s.db", f"{azure.url}/v1"
    _set_checkpoint(store, f"azure:{endpoint}", str(last))
    env = azure_env(endpoint, fhir_server.url, store, Logging__Format="json")
    assert sync_once(env).ok

    legacy_uid = _study_uids(legacy_study)[0]
    s = _study_uids(synced)
    found = {uid: v[0] for uid, v in rh.studies_by_uid(fhir_server).items()}
    missing_new = generate_studies(1, 4, seed=43)  # stored after the sync: FHIR never heard of it
    azure.store_all(missing_new)
    rh.edit_study(fhir_server, found[s[0]], rh.drop_series)
    rh.edit_study(fhir_server, found[s[1]], rh.drop_instance)
    azure.delete_study(s[2])  # gone from DICOM; the feed's delete entries are never read
    rh.edit_study(fhir_server, found[s[3]], rh.wrong_counts)
    rh.edit_study(fhir_server, found[s[4]], rh.drop_modality)
    extra_id, observation_id = rh.add_duplicate(fhir_server, found[s[5]])
    untouched = [s[6], s[7]]

    dry = dicomcast(["reconcile", "--dry-run"], env)
    assert dry.returncode == DIFFERENCES, dry.stdout + dry.stderr
    reported = rh.differences(dry.stdout)
    assert set(reported) == {_study_uids(missing_new)[0], legacy_uid, *s[:6]}
    assert rh.kinds(reported[_study_uids(missing_new)[0]]) == {"missing-study"}
    # FHIR's counts agree with its own (shortened) lists, not with DICOM: reported too
    assert rh.kinds(reported[s[0]]) == {"missing-series", "missing-instances", "counts"}
    assert rh.kinds(reported[s[1]]) == {"missing-instances", "counts"}
    assert rh.kinds(reported[s[2]]) == {"gone-study"}
    assert rh.kinds(reported[s[3]]) == {"counts"}
    assert rh.kinds(reported[s[4]]) == {"modality"}
    assert rh.kinds(reported[s[5]]) == {"duplicates"}
    assert "legacy" in rh.kinds(reported[legacy_uid])
    assert snapshot(fhir_server) == snapshot(fhir_server)  # (the server is stable between reads)
    before = snapshot(fhir_server)

    fixed = dicomcast(["reconcile"], env)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    studies = rh.assert_matches(fhir_server, _expected_azure(azure))
    after = snapshot(fhir_server)
    for uid in untouched:
        key = f"ImagingStudy/{studies[uid]['id']}"
        assert versions(after)[key] == versions(before)[key], "an untouched study was written"
    assert extra_id not in after["ImagingStudy"]
    assert after["Observation"][observation_id]["partOf"] == [{"reference": f"ImagingStudy/{studies[s[5]]['id']}"}]
    assert studies[legacy_uid]["meta"]["source"] == endpoint  # adopted, under DICOM Cast's id
    assert studies[legacy_uid]["id"] in before["ImagingStudy"]
    summary = rh.summary(fixed.stdout)
    assert summary["duplicates_deleted"] == 1 and summary["references_moved"] == 1 and summary["failures"] == 0

    again = dicomcast(["reconcile", "--dry-run"], env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert rh.differences(again.stdout) == {}


def test_reconcile_orthanc(orthanc: peers.Peer, fhir_server: peers.Peer, tmp_path: Path) -> None:
    bulk = make_bulk("rc", studies=6, per_study=4, patients=6)
    upload(orthanc, bulk.instances)
    env = orthanc_env(orthanc, fhir_server, tmp_path / "s.db")
    assert dicomcast(["run", "--once"], env).returncode == 0
    s = sorted(bulk.studies())
    found = {uid: v[0] for uid, v in rh.studies_by_uid(fhir_server).items()}
    rh.edit_study(fhir_server, found[s[0]], rh.drop_series)
    rh.edit_study(fhir_server, found[s[1]], rh.drop_instance)
    rh.edit_study(fhir_server, found[s[2]], rh.wrong_counts)
    rh.edit_study(fhir_server, found[s[3]], rh.drop_modality)
    extra_id, observation_id = rh.add_duplicate(fhir_server, found[s[4]])
    auth = (orthanc.extra["username"], orthanc.extra["password"])
    import httpx

    orthanc_id = httpx.post(f"{orthanc.url}/tools/lookup", content=s[5], auth=auth).json()[0]["ID"]
    assert httpx.delete(f"{orthanc.url}/studies/{orthanc_id}", auth=auth).status_code == 200
    more = make_bulk("rn", studies=1, per_study=3, patients=1)
    upload(orthanc, more.instances)  # not synced: a missing study

    dry = dicomcast(["reconcile", "--dry-run"], env)
    assert dry.returncode == DIFFERENCES, dry.stdout + dry.stderr
    reported = rh.differences(dry.stdout)
    (new_uid,) = more.studies()
    assert set(reported) == {*s, new_uid}
    assert rh.kinds(reported[s[5]]) == {"gone-study"}
    assert rh.kinds(reported[s[4]]) == {"duplicates"}
    assert rh.kinds(reported[new_uid]) == {"missing-study"}
    before = snapshot(fhir_server)

    fixed = dicomcast(["reconcile"], env)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    expected = {uid: {} for uid in [*s[:5], new_uid]}  # type: ignore[var-annotated]
    for i in [*bulk.instances, *more.instances]:
        if i.study_uid in expected:
            expected[i.study_uid].setdefault(i.series_uid, set()).add(i.sop_instance_uid)
    studies = rh.assert_matches(fhir_server, expected)
    after = snapshot(fhir_server)
    assert after["Observation"][observation_id]["partOf"] == [{"reference": f"ImagingStudy/{studies[s[4]]['id']}"}]
    assert extra_id not in after["ImagingStudy"]
    assert (
        versions(after)["Patient/" + next(iter(after["Patient"]))]
        == versions(before)["Patient/" + next(iter(after["Patient"]))]
    )
    again = dicomcast(["reconcile", "--dry-run"], env)
    assert again.returncode == 0, again.stdout + again.stderr
