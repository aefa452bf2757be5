"""Patient identity: two issuers are two people, Other Patient IDs never match, demographics are
filled but never overwritten (except by corrections), DICOM Cast's Patients are adopted."""

from __future__ import annotations

import copy
from typing import Any

from dicomcast.dicom.models import ChangeAction
from dicomcast.fhir.mapping import (
    MappingOptions,
    PatientKey,
    StudyInput,
    StudyOutput,
    identity_keys,
    map_study,
    patient_keys,
    resource_id,
)
from dicomcast.fhir.mapping.identity import DEMOGRAPHICS_CONFLICT, ISSUER_SPLIT
from tests.unit.mapping.builders import CONTEXT, el, entry, instance

OPTIONS = MappingOptions()  # DICOM Cast's default: PatientSystemId empty
KEY = PatientKey(None, "PAT-1")
STUDY_A = "1.2.826.0.1.3680043.8.498.10"
STUDY_B = "1.2.826.0.1.3680043.8.498.20"


def person(study: str, issuer: str | None, sex: str = "F", birth: str = "19800102", **extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"00100040": el("CS", sex), "00100030": el("DA", birth), **extra}
    if issuer:
        fields["00100021"] = el("LO", issuer)
    return instance(1, 1, study=study, extra=fields)


def stored(resource: dict[str, Any], version: str = "1") -> dict[str, Any]:
    copy_ = copy.deepcopy(resource)
    copy_.setdefault("meta", {})["versionId"] = version
    return copy_


class Fhir:
    """What FHIR holds: Patients by id, found by identity key as the worker's lookup does."""

    def __init__(self) -> None:
        self.patients: dict[str, dict[str, Any]] = {}

    def found(self, keys: list[PatientKey]) -> dict[PatientKey, dict[str, Any]]:
        out: dict[PatientKey, dict[str, Any]] = {}
        for patient in self.patients.values():
            for key in identity_keys(patient):
                if key in keys and key not in out:
                    out[key] = patient
        return out

    def sync(
        self,
        study: str,
        data: dict[str, Any],
        options: MappingOptions = OPTIONS,
        action: ChangeAction = ChangeAction.CREATE,
    ) -> StudyOutput:
        change = entry(1, data, action)
        existing = self.found(patient_keys(data, options))
        out = map_study(StudyInput(study, None, [change], None, existing), CONTEXT, options)
        for patient in out.patients:
            previous = self.patients.get(patient["id"])
            version = str(int(previous["meta"]["versionId"]) + 1) if previous else "1"
            self.patients[patient["id"]] = stored(patient, version)
        return out


def subject(out: StudyOutput) -> str:
    return str((out.imaging_study or {})["subject"]["reference"])


def test_same_patient_id_with_two_issuers_is_two_patients_and_nothing_is_overwritten() -> None:
    fhir = Fhir()
    first = fhir.sync(STUDY_A, person(STUDY_A, "HOSP_A", "F", "19800102"))
    second = fhir.sync(STUDY_B, person(STUDY_B, "HOSP_B", "M", "19551111"))
    assert len(fhir.patients) == 2 and subject(first) != subject(second)
    a = fhir.patients[subject(first).split("/")[1]]
    b = fhir.patients[subject(second).split("/")[1]]
    assert (a["gender"], a["birthDate"], a["meta"]["versionId"]) == ("female", "1980-01-02", "1")
    assert (b["gender"], b["birthDate"]) == ("male", "1955-11-11")
    assert a["identifier"] == [{"value": "PAT-1", "assigner": {"display": "HOSP_A"}}]
    assert b["identifier"] == [
        {"system": "urn:dicom:issuer:HOSP_B", "value": "PAT-1", "assigner": {"display": "HOSP_B"}}
    ]
    assert b["id"] == resource_id("Patient", "urn:dicom:issuer:HOSP_B", "PAT-1")
    assert [w.kind for w in second.warnings] == [ISSUER_SPLIT]
    assert "PAT-1" not in second.warnings[0].message and "HOSP" not in second.warnings[0].message


def test_issuer_systems_map_names_the_second_issuers_patient() -> None:
    options = MappingOptions(issuer_systems={"HOSP_B": "https://hosp-b.example/mrn"})
    fhir = Fhir()
    fhir.sync(STUDY_A, person(STUDY_A, "HOSP_A"), options)
    second = fhir.sync(STUDY_B, person(STUDY_B, "HOSP_B"), options)
    made = fhir.patients[subject(second).split("/")[1]]
    assert made["identifier"][0]["system"] == "https://hosp-b.example/mrn"


def test_patient_without_issuer_and_with_one_are_kept_apart_in_both_orders() -> None:
    for first_issuer, second_issuer in ((None, "HOSP_A"), ("HOSP_A", None)):
        fhir = Fhir()
        first = fhir.sync(STUDY_A, person(STUDY_A, first_issuer))
        second = fhir.sync(STUDY_B, person(STUDY_B, second_issuer))
        assert len(fhir.patients) == 2 and subject(first) != subject(second)


def test_replays_in_any_order_neither_merge_nor_duplicate_nor_write() -> None:
    fhir = Fhir()
    datasets = [(STUDY_A, person(STUDY_A, "HOSP_A")), (STUDY_B, person(STUDY_B, "HOSP_B"))]
    subjects = [subject(fhir.sync(s, d)) for s, d in datasets]
    before = copy.deepcopy(fhir.patients)
    for study, data in [*datasets, *reversed(datasets)]:
        out = fhir.sync(study, data)
        assert out.patients == [] and subject(out) == subjects[0 if study == STUDY_A else 1]
    assert fhir.patients == before


def test_the_same_person_in_two_studies_is_one_patient() -> None:
    fhir = Fhir()
    first = fhir.sync(STUDY_A, person(STUDY_A, "HOSP_A"))
    second = fhir.sync(STUDY_B, person(STUDY_B, "HOSP_A"))
    assert len(fhir.patients) == 1 and subject(first) == subject(second)
    assert second.patients == [] and not second.warnings


def test_other_patient_id_equal_to_another_persons_patient_id_never_matches() -> None:
    fhir = Fhir()
    others = {"00101002": el("SQ", {"00100020": el("LO", "PAT-2"), "00100021": el("LO", "1.2.3")})}
    first = fhir.sync(STUDY_A, person(STUDY_A, None, **others))
    # Even an Other Patient ID without a system (written by some other tool) does not match.
    held = next(iter(fhir.patients.values()))
    held["identifier"].append({"use": "secondary", "value": "PAT-2"})
    other = instance(1, 1, study=STUDY_B, patient_id="PAT-2", extra={"00100010": el("PN", {"Alphabetic": "Roe^Rick"})})
    second = fhir.sync(STUDY_B, other)
    assert len(fhir.patients) == 2 and subject(first) != subject(second)
    assert held["name"][0]["family"] == "Doe" and held["meta"]["versionId"] == "1"


def test_a_different_birth_date_or_gender_is_reported_not_written() -> None:
    fhir = Fhir()
    fhir.sync(STUDY_A, person(STUDY_A, "HOSP_A", "F", "19800102"))
    later = fhir.sync(STUDY_B, person(STUDY_B, "HOSP_A", "M", "19800103"))
    patient = next(iter(fhir.patients.values()))
    assert (patient["gender"], patient["birthDate"]) == ("female", "1980-01-02")
    kinds = [(w.kind, w.tag) for w in later.warnings]
    assert kinds == [(DEMOGRAPHICS_CONFLICT, "00100040"), (DEMOGRAPHICS_CONFLICT, "00100030")]
    for warning in later.warnings:
        assert STUDY_B in warning.message and "1980" not in warning.message and "male" not in warning.message
    assert later.imaging_study is not None and subject(later) == f"Patient/{patient['id']}"


def test_empty_demographics_are_filled() -> None:
    fhir = Fhir()
    bare = instance(1, 1, study=STUDY_A, extra={"00100040": el("CS"), "00100030": el("DA")})
    fhir.sync(STUDY_A, bare)
    filled = fhir.sync(STUDY_B, person(STUDY_B, None, "F", "19800102"))
    patient = next(iter(fhir.patients.values()))
    assert (patient["gender"], patient["birthDate"]) == ("female", "1980-01-02") and not filled.warnings


def test_an_azure_update_action_corrects_demographics() -> None:
    fhir = Fhir()
    fhir.sync(STUDY_A, person(STUDY_A, "HOSP_A", "F", "19800102"))
    fixed = fhir.sync(STUDY_A, person(STUDY_A, "HOSP_A", "M", "19800103"), action=ChangeAction.UPDATE)
    patient = next(iter(fhir.patients.values()))
    assert (patient["gender"], patient["birthDate"]) == ("male", "1980-01-03") and not fixed.warnings


def test_dicom_cast_patient_is_adopted_and_brought_up_to_the_mapping() -> None:
    fhir = Fhir()
    fhir.patients["server-7"] = {
        "resourceType": "Patient",
        "id": "server-7",
        "meta": {"versionId": "4"},
        "identifier": [{"system": "", "value": "PAT-1"}],
        "name": [{"use": "usual", "family": "Doe", "given": ["Jane"]}],
        "gender": "female",
    }
    out = fhir.sync(STUDY_A, person(STUDY_A, "HOSP_A"))
    assert len(fhir.patients) == 1 and subject(out) == "Patient/server-7"
    adopted = fhir.patients["server-7"]
    assert adopted["identifier"] == [{"value": "PAT-1", "assigner": {"display": "HOSP_A"}}]
    assert adopted["birthDate"] == "1980-01-02" and adopted["meta"]["versionId"] == "5"
    other = fhir.sync(STUDY_B, person(STUDY_B, "HOSP_B"))  # its issuer is recorded now
    assert len(fhir.patients) == 2 and subject(other) != "Patient/server-7"


def test_dicom_cast_patient_under_the_raw_issuer_is_adopted_with_is_issuer_id_used() -> None:
    options = MappingOptions(is_issuer_id_used=True)
    fhir = Fhir()
    fhir.patients["server-8"] = {
        "resourceType": "Patient",
        "id": "server-8",
        "meta": {"versionId": "1"},
        "identifier": [{"system": "1.2.840.99", "value": "PAT-1"}],  # raw IssuerOfPatientID: an OID
    }
    out = fhir.sync(STUDY_A, person(STUDY_A, "1.2.840.99"), options)
    assert len(fhir.patients) == 1 and subject(out) == "Patient/server-8"
    assert {"system": "urn:oid:1.2.840.99", "value": "PAT-1", "assigner": {"display": "1.2.840.99"}} in fhir.patients[
        "server-8"
    ]["identifier"]
    again = fhir.sync(STUDY_B, person(STUDY_B, "1.2.840.99"), options)
    assert subject(again) == "Patient/server-8" and again.patients == []


def test_two_issuers_mapped_to_one_system_fail_as_an_identity_conflict() -> None:
    options = MappingOptions(issuer_systems={"HOSP_B": "urn:x:shared", "HOSP_C": "urn:x:shared"})
    fhir = Fhir()
    fhir.sync(STUDY_A, person(STUDY_A, "HOSP_A"), options)
    fhir.sync(STUDY_B, person(STUDY_B, "HOSP_B"), options)
    third = "1.2.826.0.1.3680043.8.498.30"
    out = fhir.sync(third, person(third, "HOSP_C"), options)
    assert out.imaging_study is None and out.patients == [] and len(out.failures) == 1
    assert "Patient__IssuerSystems__" in out.failures[0].reason and "failures retry" in out.failures[0].reason
    fixed = MappingOptions(issuer_systems={"HOSP_B": "urn:x:shared", "HOSP_C": "urn:x:c"})
    assert not fhir.sync(third, person(third, "HOSP_C"), fixed).failures


def test_issuer_qualifiers_name_the_issuer_when_issuer_of_patient_id_is_absent() -> None:
    qualifiers = {"00100024": el("SQ", {"00400032": el("UT", "1.2.3.4"), "00400033": el("CS", "ISO")})}
    fhir = Fhir()
    out = fhir.sync(STUDY_A, instance(1, 1, study=STUDY_A, extra=qualifiers))
    assigner = next(iter(fhir.patients.values()))["identifier"][0]["assigner"]
    assert assigner == {"identifier": {"system": "urn:ietf:rfc:3986", "value": "urn:oid:1.2.3.4"}, "display": "1.2.3.4"}
    assert not out.failures
