"""Semantics of map_study: idempotency, deletes, subject moves, failures, patients, R5, dose."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dicomcast.dicom.models import ChangeAction, ChangeState
from dicomcast.fhir.mapping import (
    FhirVersion,
    MappingOptions,
    PatientKey,
    StudyInput,
    StudyOutput,
    endpoint_resource,
    map_study,
    patient_key,
    resource_id,
)
from dicomcast.fhir.mapping.validate import model
from tests.unit.mapping.builders import (
    CONTEXT,
    OTHER_CONTEXT,
    STUDY,
    delete,
    dose_sr,
    el,
    entry,
    instance,
    multi_series_study,
)

OPTIONS = MappingOptions(patient_system_id="urn:oid:2.25.1")
KEY = PatientKey("urn:oid:2.25.1", "PAT-1")


def stored(resource: dict[str, Any], version: str = "1") -> dict[str, Any]:
    """What the FHIR server would hand back: the resource with a versionId."""
    copy_ = copy.deepcopy(resource)
    copy_.setdefault("meta", {})["versionId"] = version
    return copy_


def run(
    entries: list[Any],
    study: dict[str, Any] | None = None,
    patients: dict[PatientKey, Any] | None = None,
    options: MappingOptions = OPTIONS,
    context: Any = CONTEXT,
    observations: tuple[Any, ...] = (),
) -> StudyOutput:
    return map_study(StudyInput(STUDY, None, entries, study, patients or {}, observations), context, options)


def entries_of(datasets: list[dict[str, Any]]) -> list[Any]:
    return [entry(i + 1, d) for i, d in enumerate(datasets)]


def test_new_study_counts_series_instances_and_modalities() -> None:
    out = run(entries_of(multi_series_study()))
    study = out.imaging_study
    assert study is not None and not out.failures
    # series 3's LEFTTHUMBNAIL is no Annex L term: the one warning
    assert [(w.tag, w.message) for w in out.warnings] == [
        ("00180015", "Body Part Examined is no PS3.16 Annex L term; bodySite left out")
    ]
    assert study["id"] == resource_id("ImagingStudy", "", STUDY)
    assert (study["numberOfSeries"], study["numberOfInstances"]) == (3, 5)
    assert [s["numberOfInstances"] for s in study["series"]] == [2, 2, 1]
    assert [m["code"] for m in study["modality"]] == ["CT", "MR"]
    assert study["meta"]["source"] == CONTEXT.source_uri
    assert study["endpoint"] == [{"reference": CONTEXT.endpoint_reference}]
    assert study["started"] == "2024-03-15T10:15:30.25+01:00"
    assert study["description"] == "CT chest and MR knee" and "note" not in study
    accession = study["identifier"][1]
    assert accession["system"] == "urn:oid:1.2.3.4.5.6" and accession["value"] == "ACC-42"
    assert study["basedOn"][0]["identifier"] == accession
    assert study["subject"] == {"reference": f"Patient/{resource_id('Patient', *KEY.search_token().split('|'))}"}


def test_processing_the_same_entries_twice_writes_nothing() -> None:
    entries = entries_of([*multi_series_study(), dose_sr()])
    first = run(entries)
    assert first.imaging_study and first.patients and first.observations
    again = run(
        entries,
        stored(first.imaging_study),
        {KEY: stored(first.patients[0])},
        observations=tuple(stored(o) for o in first.observations),
    )
    assert again.imaging_study is None
    assert again.patients == [] and again.observations == [] and again.delete_observations == []


def test_existing_version_and_id_are_kept() -> None:
    first = run(entries_of(multi_series_study()[:1]))
    assert first.imaging_study
    existing = stored(first.imaging_study, "7")
    existing["id"] = "server-chosen"
    out = run(entries_of(multi_series_study()), existing)
    assert out.imaging_study and out.imaging_study["id"] == "server-chosen"
    assert out.imaging_study["meta"]["versionId"] == "7"
    assert out.imaging_study["numberOfInstances"] == 5


def test_delete_removes_instance_then_series_then_our_study() -> None:
    datasets = multi_series_study()[:2]  # two instances of one series
    existing = stored(run(entries_of(datasets)).imaging_study or {})
    one = run([delete(10, datasets[0])], existing)
    assert one.imaging_study and one.imaging_study["numberOfInstances"] == 1
    both = run([delete(10, datasets[0]), delete(11, datasets[1])], existing)
    assert both.delete_imaging_study is existing and both.imaging_study is None


def test_delete_keeps_a_study_another_source_created() -> None:
    datasets = multi_series_study()[:1]
    existing = stored(run(entries_of(datasets), context=OTHER_CONTEXT).imaging_study or {})
    out = run([delete(10, datasets[0])], existing)
    assert out.delete_imaging_study is None
    assert out.imaging_study and "series" not in out.imaging_study
    assert (out.imaging_study["numberOfSeries"], out.imaging_study["numberOfInstances"]) == (0, 0)


def test_delete_of_an_unknown_instance_is_a_no_op() -> None:
    existing = stored(run(entries_of(multi_series_study()[:1])).imaging_study or {})
    out = run([delete(10, instance(5, 5))], existing)
    assert out.imaging_study is None and out.delete_imaging_study is None


def test_create_of_a_deleted_instance_or_without_metadata_is_skipped() -> None:
    data = multi_series_study()[0]
    gone = entry(1, data)
    gone = type(gone)(**{**gone.__dict__, "state": ChangeState.DELETED})
    empty = type(gone)(**{**gone.__dict__, "state": ChangeState.CURRENT, "metadata": None})
    out = run([gone, empty])
    assert out.imaging_study is None and not out.failures


def test_update_with_a_new_patient_id_moves_the_subject() -> None:
    data = multi_series_study()[0]
    first = run(entries_of([data]))
    assert first.imaging_study
    moved = {**data, "00100020": el("LO", "PAT-2")}
    out = run([entry(2, moved, ChangeAction.UPDATE)], stored(first.imaging_study), {KEY: stored(first.patients[0])})
    new_id = resource_id("Patient", "urn:oid:2.25.1", "PAT-2")
    assert out.imaging_study and out.imaging_study["subject"]["reference"] == f"Patient/{new_id}"
    assert [p["id"] for p in out.patients] == [new_id]


@pytest.mark.parametrize(
    ("tag", "value"),
    [
        ("0020000D", None),
        ("0020000E", el("UI", "not a uid")),
        ("00080018", None),
        ("00080060", None),
        ("00080016", el("UI", "1.2.x")),
        ("00100020", None),
    ],
)
def test_missing_or_invalid_required_values_fail_only_their_entry(tag: str, value: Any) -> None:
    bad = dict(instance(1, 9))
    if value is None:
        del bad[tag]
    else:
        bad[tag] = value
    out = run([entry(1, bad, study=STUDY, series=f"{STUDY}.1", sop=f"{STUDY}.1.9"), entry(2, instance(1, 1))])
    assert [f.entry.sequence for f in out.failures] == [1]
    assert tag in out.failures[0].reason
    assert out.imaging_study and out.imaging_study["numberOfInstances"] == 1


def test_invalid_optional_values_are_warnings_or_failures_when_enforced() -> None:
    bad = instance(
        1, 1, extra={"00080020": el("DA", "20241345"), "00100040": el("CS", "X"), "00200013": el("IS", "abc")}
    )
    out = run([entry(1, bad)])
    assert {w.tag for w in out.warnings} == {"00080020", "00100040", "00200013"}
    assert all("2024" not in w.message for w in out.warnings)
    assert out.imaging_study and "started" not in out.imaging_study
    strict = run([entry(1, bad)], options=MappingOptions(patient_system_id="urn:oid:2.25.1", enforce_validation=True))
    assert len(strict.failures) == 1 and strict.imaging_study is None


def test_existing_patient_is_linked_and_only_owned_fields_change() -> None:
    ehr = {
        "resourceType": "Patient",
        "id": "ehr-1",
        "meta": {"versionId": "3"},
        "identifier": [{"system": "urn:oid:2.25.1", "value": "PAT-1"}],
        "name": [{"use": "official", "family": "Doe"}],
        "telecom": [{"system": "phone", "value": "555"}],
    }
    out = run(entries_of(multi_series_study()[:1]), patients={KEY: ehr})
    assert out.imaging_study and out.imaging_study["subject"] == {"reference": "Patient/ehr-1"}
    patient = out.patients[0]
    assert patient["id"] == "ehr-1" and patient["meta"]["versionId"] == "3"
    assert patient["telecom"] == ehr["telecom"] and {"use": "official", "family": "Doe"} in patient["name"]
    assert patient["gender"] == "female" and patient["birthDate"] == "1980-01-02"
    usual = next(n for n in patient["name"] if n["use"] == "usual")
    assert usual == {"use": "usual", "family": "Doe", "given": ["Jane", "Q"], "prefix": ["Dr."], "suffix": ["PhD"]}


def test_issuer_of_patient_id_through_the_issuer_map() -> None:
    options = MappingOptions(
        patient_system_id="urn:oid:2.25.1",
        is_issuer_id_used=True,
        issuer_systems={"HOSP_A": "https://hosp-a.example/mrn"},
    )
    mapped = instance(1, 1, extra={"00100021": el("LO", "HOSP_A")})
    assert patient_key(mapped, options) == PatientKey("https://hosp-a.example/mrn", "PAT-1")
    unmapped = instance(1, 1, extra={"00100021": el("LO", "HOSP_B")})
    assert patient_key(unmapped, options) == PatientKey("urn:oid:2.25.1", "PAT-1")
    out = run([entry(1, unmapped)], options=options)
    assert [w.tag for w in out.warnings] == ["00100021"]
    no_default = MappingOptions(is_issuer_id_used=True)
    assert patient_key(unmapped, no_default) == PatientKey(None, "PAT-1")
    out = run([entry(1, unmapped)], options=no_default)
    assert out.patients[0]["identifier"] == [{"value": "PAT-1", "assigner": {"display": "HOSP_B"}}]


def test_other_patient_ids_become_secondary_identifiers_only_with_an_issuer_system() -> None:
    other = {
        "00101002": el(
            "SQ",
            {"00100020": el("LO", "X-9"), "00100021": el("LO", "1.2.3")},
            {"00100020": el("LO", "NO-ISSUER")},
        )
    }
    out = run([entry(1, instance(1, 1, extra=other))])
    identifiers = out.patients[0]["identifier"]
    assert {"use": "secondary", "system": "urn:oid:1.2.3", "value": "X-9"} in identifiers
    assert not any(i["value"] == "NO-ISSUER" for i in identifiers)


def test_r5_shapes_validate_and_drop_interpreter() -> None:
    options = MappingOptions(patient_system_id="urn:oid:2.25.1", fhir_version=FhirVersion.R5)
    out = run(entries_of(multi_series_study()), options=options)
    study = out.imaging_study
    assert study is not None
    assert "interpreter" not in study and "procedureCode" not in study and "reasonCode" not in study
    assert study["modality"][0] == {
        "coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT"}]
    }
    assert study["procedure"][0]["concept"]["coding"][0]["code"] == "RPID4"
    assert all(not i.get("type", {}).get("coding") for i in study["identifier"])  # accession only in basedOn
    assert study["basedOn"][0]["identifier"]["value"] == "ACC-42"
    model("ImagingStudy", FhirVersion.R5).model_validate(study)


def test_dose_observations_are_deterministic_and_deleted_with_their_sr() -> None:
    sr = dose_sr()
    out = run([entry(1, sr)])
    sop = sr["00080018"]["Value"][0]
    ids = [o["id"] for o in out.observations]
    assert ids == [
        resource_id("Observation", sop),
        resource_id("Observation", sop, "1.2.3.999.1"),
        resource_id("Observation", sop, "1.2.3.999.2"),
    ]
    study_ref = f"ImagingStudy/{resource_id('ImagingStudy', '', STUDY)}"
    assert all([p["reference"] for p in o["partOf"]] == [study_ref] for o in out.observations)
    assert all(o["partOf"][0]["identifier"]["value"] == f"urn:oid:{STUDY}" for o in out.observations)
    assert out.observations[0]["focus"] == [{"reference": study_ref}]
    assert out.observations[0]["hasMember"] == [{"reference": f"Observation/{i}"} for i in ids[1:]]
    summary_ids = [(i["system"], i["value"]) for i in out.observations[0]["identifier"]]
    assert summary_ids == [("urn:dicom:uid", f"urn:oid:{sop}")]
    assert run([entry(1, sr)]).observations == out.observations
    existing = tuple(stored(o) for o in out.observations)
    gone = run([delete(2, sr)], stored(out.imaging_study or {}), observations=existing)
    assert [o["id"] for o in gone.delete_observations] == ids


def test_observations_off_produces_none() -> None:
    options = MappingOptions(patient_system_id="urn:oid:2.25.1", generate_observations=False)
    assert run([entry(1, dose_sr())], options=options).observations == []


def test_default_timezone_accepts_iana_names() -> None:
    options = MappingOptions(patient_system_id="urn:oid:2.25.1", default_timezone="Europe/Paris")
    out = run([entry(1, instance(1, 1))], options=options)
    assert out.imaging_study and out.imaging_study["started"] == "2024-03-15T10:15:30.25+01:00"


def test_endpoint_resource_r4_and_r5() -> None:
    r4 = endpoint_resource("http://dicom.test/dicom-web", "DICOM WADO-RS endpoint x", OPTIONS)
    assert r4["id"] == resource_id("Endpoint", "http://dicom.test/dicom-web")
    assert r4["connectionType"]["code"] == "dicom-wado-rs" and r4["payloadMimeType"] == ["application/dicom"]
    r5 = endpoint_resource("http://dicom.test/dicom-web", "x", MappingOptions(fhir_version=FhirVersion.R5))
    assert r5["connectionType"][0]["coding"][0]["code"] == "dicom-wado-rs"


def test_resource_id_shape() -> None:
    value = resource_id("ImagingStudy", "partition-a", "1." * 32)
    assert len(value) <= 64 and value.isalnum()
    assert value != resource_id("Patient", "partition-a", "1." * 32)


def test_specimen_and_anatomic_region_sequence() -> None:
    extra = {
        "00400560": el(
            "SQ",
            {
                "00400551": el("LO", "SPEC-7"),
                "00400562": el("SQ", {"00400032": el("UT", "1.2.9"), "00400033": el("CS", "ISO")}),
            },
        ),
        "00082218": el(
            "SQ", {"00080100": el("SH", "7569003"), "00080102": el("SH", "SCT"), "00080104": el("LO", "Finger")}
        ),
    }
    out = run([entry(1, instance(1, 1, extra=extra))])
    series = (out.imaging_study or {})["series"][0]
    assert series["specimen"] == [{"type": "Specimen", "identifier": {"system": "urn:oid:1.2.9", "value": "SPEC-7"}}]
    assert series["bodySite"] == {"system": "http://snomed.info/sct", "code": "7569003", "display": "Finger"}
