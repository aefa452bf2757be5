"""Patient safety on a real FHIR server through the real worker (issue 12 item 1).

The loopback Azure DICOM service feeds the worker; sekmet holds the result. A DICOM Cast-pattern
writer (tests/servers/dicomcast_writer.py) first leaves a DICOM Cast Patient behind. Asserted:
two issuers are two Patients and neither's demographics change; an Other Patient ID equal to
another person's PatientID matches nothing and renames nothing; one person in two studies is one
Patient; a conflicting birth date/sex is kept, warned about (UIDs, no PHI) and counted; an Azure
`update` corrects it; DICOM Cast's Patient is adopted, not duplicated; a replay from checkpoint 0
leaves every Patient at the same version.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dicomcast.store import Store, make_engine, migrate
from dicomcast.worker import metrics
from tests import peers
from tests.integration.azure_worker import azure_env, sync_once
from tests.integration.sync_helpers import snapshot
from tests.servers.azure_dicom import AzureDicomServer
from tests.servers.dicomcast_writer import DicomCastWriter
from tests.unit.mapping.builders import el, instance, pn

pytestmark = pytest.mark.integration
ROOT = "1.2.826.0.1.3680043.8.498.5"
PHI = ("P-100", "P-200", "P-300", "DC-1", "Alpha", "Bravo", "Charlie", "Delta", "1980", "1955", "1990", "1970")


@pytest.fixture
def azure() -> Iterator[AzureDicomServer]:
    with AzureDicomServer() as server:
        yield server


def study(n: int, patient_id: str, name: str, sex: str, birth: str, **extra: Any) -> dict[str, Any]:
    fields = {"00100010": pn(name), "00100040": el("CS", sex), "00100030": el("DA", birth), **extra}
    return instance(1, 1, study=f"{ROOT}.{n}", patient_id=patient_id, extra=fields)


def issuer(name: str) -> dict[str, Any]:
    return {"00100021": el("LO", name)}


def subject_of(snap: dict[str, Any], n: int) -> str:
    wanted = f"urn:oid:{ROOT}.{n}"
    (found,) = [s for s in snap["ImagingStudy"].values() if any(i["value"] == wanted for i in s["identifier"])]
    return str(found["subject"]["reference"]).removeprefix("Patient/")


def with_value(snap: dict[str, Any], value: str) -> list[dict[str, Any]]:
    return [p for p in snap["Patient"].values() if any(i.get("value") == value for i in p["identifier"])]


def patient_warnings(kind: str) -> float:
    return sum(
        sample.value
        for family in metrics.REGISTRY.collect()
        if family.name == "dicomcast_patient_warnings"
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels.get("kind") == kind
    )


def set_checkpoint(store: Path, source: str, sequence: int) -> None:
    engine = make_engine(f"sqlite:///{store}")
    migrate(engine)
    Store(engine).set_checkpoint(source, str(sequence))
    engine.dispose()


def test_patients_are_never_merged_nor_duplicated(
    azure: AzureDicomServer, fhir_server: peers.Peer, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # DICOM Cast's era: a Patient with server-assigned id and `{"value": "DC-1"}` (no system).
    checkpoint = azure.store(study(1, "DC-1", "Delta^Dora", "F", "19700101", **issuer("HOSP_A")))
    writer = DicomCastWriter(fhir_server.url, azure.url)
    try:
        writer.sync_feed(azure.url, checkpoint)
    finally:
        writer.close()
    (dicom_cast_patient,) = snapshot(fhir_server)["Patient"].values()
    assert dicom_cast_patient["identifier"] == [{"value": "DC-1"}]

    others = {"00101002": el("SQ", {"00100020": el("LO", "P-300"), "00100021": el("LO", "1.2.3.99")})}
    azure.store_all(
        [
            study(2, "P-100", "Alpha^Ann", "F", "19800102", **issuer("HOSP_A")),
            study(3, "P-100", "Bravo^Ben", "M", "19551111", **issuer("HOSP_B")),  # another person
            study(4, "P-200", "Charlie^Cat", "F", "19900303", **others),
            study(5, "P-300", "Zulu^Zed", "M", "19550505"),  # another person: P-200's other id
            study(6, "P-100", "Alpha^Ann", "F", "19800102", **issuer("HOSP_A")),  # Ann again
            study(7, "DC-1", "Delta^Dora", "F", "19700101", **issuer("HOSP_A")),  # DICOM Cast's Dora
        ]
    )
    store = tmp_path / "s.db"
    endpoint = f"{azure.url}/v1"
    source = f"azure:{endpoint}"
    set_checkpoint(store, source, checkpoint)
    env = azure_env(endpoint, fhir_server.url, store, Patient__PatientSystemId="")
    assert sync_once(env).ok
    snap = snapshot(fhir_server)

    ann, ben = subject_of(snap, 2), subject_of(snap, 3)
    assert ann != ben and subject_of(snap, 6) == ann  # two issuers: two people; Ann's two studies: one
    assert len(with_value(snap, "P-100")) == 2
    assert (snap["Patient"][ann]["gender"], snap["Patient"][ann]["birthDate"]) == ("female", "1980-01-02")
    assert (snap["Patient"][ben]["gender"], snap["Patient"][ben]["birthDate"]) == ("male", "1955-11-11")
    assert snap["Patient"][ann]["name"][0]["family"] == "Alpha" and snap["Patient"][ben]["name"][0]["family"] == "Bravo"
    assert snap["Patient"][ben]["identifier"][0]["system"] == "urn:dicom:issuer:HOSP_B"

    cat, zed = subject_of(snap, 4), subject_of(snap, 5)
    assert cat != zed and snap["Patient"][cat]["name"][0]["family"] == "Charlie"  # not renamed
    assert {"use": "secondary", "system": "urn:oid:1.2.3.99", "value": "P-300"} in snap["Patient"][cat]["identifier"]

    assert subject_of(snap, 7) == dicom_cast_patient["id"] == subject_of(snap, 1)  # adopted, not duplicated
    dora = snap["Patient"][dicom_cast_patient["id"]]
    assert dora["identifier"] == [{"value": "DC-1", "assigner": {"display": "HOSP_A"}}]
    assert dora["gender"] == "female" and len(with_value(snap, "DC-1")) == 1
    assert len(snap["Patient"]) == 5

    # A later study of Ann with another birth date and sex: kept, warned, counted.
    conflicts = patient_warnings("patient-demographics-conflict")
    capfd.readouterr()
    azure.store(study(8, "P-100", "Alpha^Ann", "M", "19800103", **issuer("HOSP_A")))
    assert sync_once(env).ok
    logged = capfd.readouterr().out
    snap = snapshot(fhir_server)
    assert subject_of(snap, 8) == ann
    assert (snap["Patient"][ann]["gender"], snap["Patient"][ann]["birthDate"]) == ("female", "1980-01-02")
    assert patient_warnings("patient-demographics-conflict") == conflicts + 2
    warned = [line for line in logged.splitlines() if "mapping warning" in line]  # console or JSON lines
    assert len(warned) == 2 and all(f"study {ROOT}.8" in line for line in warned)
    assert any("00100040" in line for line in warned) and any("00100030" in line for line in warned)
    assert not any(value in logged for value in PHI)

    # The correction arrives as an Azure `update` action: it applies.
    azure.update(f"{ROOT}.2", {"PatientBirthDate": "19800105"})
    assert sync_once(env).ok
    snap = snapshot(fhir_server)
    assert snap["Patient"][ann]["birthDate"] == "1980-01-05" and snap["Patient"][ben]["birthDate"] == "1955-11-11"

    # Replay everything from checkpoint 0: the same Patients at the same versions.
    before = {pid: p["meta"]["versionId"] for pid, p in snap["Patient"].items()}
    set_checkpoint(store, source, 0)
    assert sync_once(env).ok
    after = snapshot(fhir_server)
    assert {pid: p["meta"]["versionId"] for pid, p in after["Patient"].items()} == before
    assert {n: subject_of(after, n) for n in range(1, 9)} == {n: subject_of(snap, n) for n in range(1, 9)}


def test_dicom_cast_patient_under_the_raw_issuer_is_adopted_with_is_issuer_id_used(
    azure: AzureDicomServer, fhir_server: peers.Peer, tmp_path: Path
) -> None:
    # DICOM Cast with Patient:IsIssuerIdUsed wrote the raw IssuerOfPatientID as the system.
    checkpoint = azure.store(study(11, "P-500", "Echo^Eve", "F", "19800808", **issuer("HOSP_A")))
    writer = DicomCastWriter(fhir_server.url, azure.url, is_issuer_id_used=True)
    try:
        writer.sync_feed(azure.url, checkpoint)
    finally:
        writer.close()
    (eve,) = snapshot(fhir_server)["Patient"].values()
    assert eve["identifier"] == [{"system": "HOSP_A", "value": "P-500"}]

    azure.store_all(
        [
            study(12, "P-500", "Echo^Eve", "F", "19800808", **issuer("HOSP_A")),  # Eve again
            study(13, "P-500", "Foxtrot^Fay", "F", "19660606", **issuer("HOSP_B")),  # another person
        ]
    )
    store = tmp_path / "s.db"
    endpoint = f"{azure.url}/v1"
    set_checkpoint(store, f"azure:{endpoint}", checkpoint)
    env = azure_env(endpoint, fhir_server.url, store, Patient__PatientSystemId="", Patient__IsIssuerIdUsed="true")
    assert sync_once(env).ok
    snap = snapshot(fhir_server)
    assert subject_of(snap, 12) == subject_of(snap, 11) == eve["id"]  # adopted, not duplicated
    adopted = snap["Patient"][eve["id"]]
    assert {"system": "HOSP_A", "value": "P-500", "assigner": {"display": "HOSP_A"}} in adopted["identifier"]
    assert adopted["birthDate"] == "1980-08-08"
    fay = snap["Patient"][subject_of(snap, 13)]
    assert fay["id"] != eve["id"] and fay["birthDate"] == "1966-06-06" and len(snap["Patient"]) == 2

    before = {pid: p["meta"]["versionId"] for pid, p in snap["Patient"].items()}
    set_checkpoint(store, f"azure:{endpoint}", 0)
    assert sync_once(env).ok
    after = snapshot(fhir_server)
    assert {pid: p["meta"]["versionId"] for pid, p in after["Patient"].items()} == before
