"""What dicomcast writes is accepted by a real FHIR server and found by the searches users run
(ImagingStudy by identifier, accession, patient, modality, started; Patient by identifier; dose
Observations), and dose Observations are idempotent and leave with their SR."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dicomcast.store import Store, make_engine
from tests import peers
from tests.integration.azure_worker import azure_env, sync_once
from tests.integration.sync_helpers import snapshot, versions
from tests.servers.azure_dicom import AzureDicomServer
from tests.servers.azure_dicom_data import uids

pytestmark = pytest.mark.integration
DATA = Path(__file__).resolve().parent.parent / "data" / "dicomjson"
STUDY = "1.2.826.0.1.3680043.8.498.1"
DCM = "http://dicom.nema.org/resources/ontology/DCM"


@pytest.fixture
def azure() -> Iterator[AzureDicomServer]:
    with AzureDicomServer() as server:
        yield server


def _instances(sr_source: str = "generated_xray_dose_sr") -> tuple[list[dict[str, Any]], dict[str, Any]]:
    images = json.loads((DATA / "generated_multi_series.json").read_text())
    dose_sr = next(i for i in json.loads((DATA / f"{sr_source}.json").read_text()) if i["00080060"]["Value"] == ["SR"])
    return images, dose_sr


def _search(fhir: peers.Peer, kind: str, **params: str) -> list[dict[str, Any]]:
    bundle = httpx.get(f"{fhir.url}/{kind}", params=params, timeout=30).json()
    return [e["resource"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode", "match") == "match"]


def test_users_searches_find_what_was_written(azure: AzureDicomServer, fhir_server: peers.Peer, tmp_path: Path) -> None:
    images, dose_sr = _instances()
    azure.store_all([*images, dose_sr])

    assert sync_once(azure_env(f"{azure.url}/v2", fhir_server.url, tmp_path / "s.db")).ok

    by_uid = _search(fhir_server, "ImagingStudy", identifier=f"urn:dicom:uid|urn:oid:{STUDY}")
    assert len(by_uid) == 1
    study = by_uid[0]
    assert (study["numberOfSeries"], study["numberOfInstances"]) == (4, 6)
    assert [s["id"] for s in _search(fhir_server, "ImagingStudy", identifier="ACC-42")] == [study["id"]]
    patient_ref = study["subject"]["reference"]
    assert [s["id"] for s in _search(fhir_server, "ImagingStudy", patient=patient_ref)] == [study["id"]]
    assert [s["id"] for s in _search(fhir_server, "ImagingStudy", modality=f"{DCM}|MR")] == [study["id"]]
    assert _search(fhir_server, "ImagingStudy", modality=f"{DCM}|US") == []
    assert [s["id"] for s in _search(fhir_server, "ImagingStudy", started="ge2024-03-15")] == [study["id"]]
    assert _search(fhir_server, "ImagingStudy", started="ge2024-03-16") == []
    patients = _search(fhir_server, "Patient", identifier="urn:oid:1.2.3.4.5|PAT-1")
    assert [f"Patient/{p['id']}" for p in patients] == [patient_ref]
    chained = _search(fhir_server, "ImagingStudy", **{"patient.identifier": "urn:oid:1.2.3.4.5|PAT-1"})
    assert [s["id"] for s in chained] == [study["id"]]
    doses = _search(fhir_server, "Observation", **{"part-of": f"ImagingStudy/{study['id']}"})
    assert doses and all([p["reference"] for p in o["partOf"]] == [f"ImagingStudy/{study['id']}"] for o in doses)
    assert {o["subject"]["reference"] for o in doses} == {patient_ref}


@pytest.mark.parametrize(("sr_source", "count"), [("generated_xray_dose_sr", 3), ("generated_biplane_dose_sr", 5)])
def test_dose_observations_are_idempotent_and_leave_with_their_sr(
    azure: AzureDicomServer, fhir_server: peers.Peer, tmp_path: Path, sr_source: str, count: int
) -> None:
    images, dose_sr = _instances(sr_source)
    azure.store_all([*images, dose_sr])
    env = azure_env(f"{azure.url}/v2", fhir_server.url, tmp_path / "s.db")
    assert sync_once(env).ok
    before = snapshot(fhir_server)
    assert len(before["Observation"]) == count  # summary (+ one per plane of a biplane system) + events
    summaries = _search(fhir_server, "Observation", code="http://loinc.org|73569-6")
    assert len(summaries) == 1
    members = [m["reference"].removeprefix("Observation/") for m in summaries[0]["hasMember"]]
    assert sorted(members) == sorted(i for i in before["Observation"] if i != summaries[0]["id"])

    store = Store(make_engine(env["Store__ConnectionString"]))
    for row in store.checkpoints():
        store.set_checkpoint(row.source, None)  # replay everything
    assert sync_once(env).ok
    assert versions(snapshot(fhir_server)) == versions(before)  # no duplicate, no new version

    azure.delete_instance(*uids(dose_sr))
    assert sync_once(env).ok
    after = snapshot(fhir_server)
    assert after["Observation"] == {}
    assert len(after["ImagingStudy"]) == 1  # the images stay


def test_existing_ehr_patient_is_linked_not_duplicated(
    azure: AzureDicomServer, fhir_server: peers.Peer, tmp_path: Path
) -> None:
    ehr_patient = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:1.2.3.4.5", "value": "PAT-1"}],
        "telecom": [{"system": "phone", "value": "555-0100"}],
        "name": [{"use": "official", "family": "FromTheEhr"}],
    }
    created = httpx.post(f"{fhir_server.url}/Patient", json=ehr_patient, timeout=30).json()
    images, _ = _instances()
    azure.store_all(images)

    assert sync_once(azure_env(f"{azure.url}/v2", fhir_server.url, tmp_path / "s.db")).ok

    snap = snapshot(fhir_server)
    assert list(snap["Patient"]) == [created["id"]]  # linked, never duplicated
    patient = snap["Patient"][created["id"]]
    assert patient["telecom"] == ehr_patient["telecom"]  # fields we do not own are kept
    assert {"use": "official", "family": "FromTheEhr"} in patient["name"]
    (study,) = snap["ImagingStudy"].values()
    assert study["subject"]["reference"] == f"Patient/{created['id']}"
