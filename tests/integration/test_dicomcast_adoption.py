"""DICOM Cast's FHIR data adopted, not duplicated (issue 13 item 3), on a real FHIR server.

A DICOM Cast-pattern writer (tests/servers/dicomcast_writer.py) fills sekmet first, up to a
checkpoint; then the real dicomcast worker syncs what follows. Figures asserted: 0 duplicates of
any resource type, the touched resources at dicomcast's mapping under their DICOM Cast ids, the
untouched ones with the same versionId.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dicomcast.store import Store, make_engine, migrate
from tests import peers
from tests.integration.azure_worker import azure_env, sync_once
from tests.integration.fhir_checks import by_uid, duplicates
from tests.integration.sync_helpers import snapshot
from tests.servers.azure_dicom import AzureDicomServer
from tests.servers.azure_dicom_data import generate_studies, uids
from tests.servers.dicomcast_writer import DicomCastWriter
from tests.unit.mapping.builders import dose_sr, instance

pytestmark = pytest.mark.integration
DCM = "http://dicom.nema.org/resources/ontology/DCM"
DOSE_STUDY = "1.2.826.0.1.3680043.8.498.77"


@pytest.fixture
def azure() -> Iterator[AzureDicomServer]:
    with AzureDicomServer() as server:
        yield server


def dose_observations(snap: dict[str, Any], study_id: str) -> list[dict[str, Any]]:
    return [
        o
        for o in snap["Observation"].values()
        if f"ImagingStudy/{study_id}" in [p.get("reference") for p in o.get("partOf", [])]
        or any(i.get("value") == f"urn:oid:{DOSE_STUDY}" for i in o.get("identifier", []))
    ]


def set_checkpoint(store: Path, source: str, sequence: int) -> None:
    engine = make_engine(f"sqlite:///{store}")
    migrate(engine)
    Store(engine).set_checkpoint(source, str(sequence))
    engine.dispose()


def test_dicomcast_adopts_what_dicom_cast_wrote(
    azure: AzureDicomServer, fhir_server: peers.Peer, tmp_path: Path
) -> None:
    touched, untouched = generate_studies(2, 3, seed=13)[:3], generate_studies(2, 3, seed=13)[3:]
    dose_ct = instance(1, 1, study=DOSE_STUDY, patient_id="PAT-DOSE")
    dose = dose_sr(series=9, number=1) | {
        k: v
        for k, v in instance(9, 1, study=DOSE_STUDY, patient_id="PAT-DOSE").items()
        if k.startswith("002000") or k in ("00080018", "00100020")
    }
    azure.store_all([*touched, *untouched, dose_ct, dose])
    checkpoint = azure.store(dose_ct)  # the same instance again: DICOM Cast synced it twice
    writer = DicomCastWriter(fhir_server.url, azure.url)  # DICOM Cast's DicomWeb:Endpoint: no version
    try:
        assert writer.sync_feed(azure.url, checkpoint) == checkpoint
    finally:
        writer.close()
    before = snapshot(fhir_server)
    assert not duplicates(before), "the DICOM Cast-pattern writer itself made duplicates"
    dose_study_id = by_uid(before)[DOSE_STUDY]["id"]
    assert len(dose_observations(before, dose_study_id)) == 3  # summary + 2 events, DICOM Cast's

    # After the checkpoint: a new instance of a touched study, the dose SR stored again, a new study.
    study_uid = uids(touched[0])[0]
    extra = dict(touched[0]) | {"00080018": {"vr": "UI", "Value": [f"{uids(touched[0])[2]}.9"]}}
    new_study = generate_studies(1, 2, seed=99)
    azure.store_all([extra, dose, *new_study])

    store = tmp_path / "s.db"
    endpoint = f"{azure.url}/v1"
    set_checkpoint(store, f"azure:{endpoint}", checkpoint)
    env = azure_env(endpoint, fhir_server.url, store, Patient__PatientSystemId="")
    report = sync_once(env)
    assert report.ok
    after = snapshot(fhir_server)

    assert duplicates(after) == {}
    assert len(after["Endpoint"]) == 1  # DICOM Cast's, adopted: same server id
    (endpoint_id,) = after["Endpoint"]
    assert endpoint_id in before["Endpoint"]
    assert after["Endpoint"][endpoint_id]["name"] == f"DICOM WADO-RS endpoint {endpoint}"
    assert after["Endpoint"][endpoint_id]["address"] == endpoint

    studies_before, studies_after = by_uid(before), by_uid(after)
    assert set(studies_after) == {*studies_before, uids(new_study[0])[0]}
    adopted = studies_after[study_uid]
    assert adopted["id"] == studies_before[study_uid]["id"]
    assert adopted["meta"]["source"] == endpoint  # ours now
    assert adopted["numberOfInstances"] == sum(len(s["instance"]) for s in adopted["series"])
    assert all(s["modality"]["system"] == DCM for s in adopted["series"])
    assert all(i["sopClass"]["system"] == "urn:ietf:rfc:3986" for s in adopted["series"] for i in s["instance"])
    assert adopted["endpoint"] == [{"reference": f"Endpoint/{endpoint_id}"}]

    untouched_uids = {uids(i)[0] for i in untouched}
    for uid in untouched_uids:  # not read, not written
        assert studies_after[uid] == studies_before[uid]
    assert len(after["Observation"]) == 3
    dose_after = dose_observations(after, dose_study_id)
    assert len(dose_after) == 3, "DICOM Cast's dose Observations were replaced, not added to"
    assert all(o["status"] == "final" for o in dose_after)

    # A restart (a new process: no cached Endpoint id) finds the adopted Endpoint by our name now.
    azure.store(dict(untouched[0]) | {"00080018": {"vr": "UI", "Value": [f"{uids(untouched[0])[2]}.8"]}})
    assert sync_once(env).ok
    again = snapshot(fhir_server)
    assert list(again["Endpoint"]) == [endpoint_id] and duplicates(again) == {}


def test_a_full_replay_over_dicom_cast_data_duplicates_nothing(
    azure: AzureDicomServer, fhir_server: peers.Peer, tmp_path: Path
) -> None:
    """Without an imported checkpoint dicomcast reads the feed from 0: every resource DICOM Cast
    wrote is touched, and each is adopted (same id), none written a second time."""
    instances = generate_studies(3, 3, seed=31)
    dose = dose_sr(series=9, number=1) | {
        k: v
        for k, v in instance(9, 1, study=DOSE_STUDY, patient_id="PAT-DOSE").items()
        if k.startswith("002000") or k in ("00080018", "00100020")
    }
    last = azure.store_all([*instances, instance(1, 1, study=DOSE_STUDY, patient_id="PAT-DOSE"), dose])[-1]
    writer = DicomCastWriter(fhir_server.url, azure.url)
    try:
        writer.sync_feed(azure.url, last)
    finally:
        writer.close()
    before = snapshot(fhir_server)

    env = azure_env(f"{azure.url}/v1", fhir_server.url, tmp_path / "s.db", Patient__PatientSystemId="")
    assert sync_once(env).ok
    after = snapshot(fhir_server)
    assert duplicates(after) == {}
    for kind in ("ImagingStudy", "Patient", "Endpoint"):
        assert set(after[kind]) == set(before[kind]), kind  # the same resources, adopted in place
    assert len(after["Observation"]) == len(before["Observation"]) == 3
    assert not set(after["Observation"]) & set(before["Observation"])  # DICOM Cast's replaced by ours
    assert all(s["meta"]["source"] == f"{azure.url}/v1" for s in after["ImagingStudy"].values())
