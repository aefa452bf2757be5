"""DICOM Cast's FHIR data adopted, not duplicated (legacy.py and its use in map_study and lookups)."""

from __future__ import annotations

import copy
from typing import Any

from dicomcast.fhir.mapping import MappingOptions, SourceContext, StudyInput, legacy, map_study
from dicomcast.fhir.mapping.types import FhirVersion
from dicomcast.worker.lookups import pick_study
from tests.unit.mapping.builders import CT_IMAGE, STUDY, XRAY_DOSE_SR, delete, dose_sr, entry, instance

# dicomcast reads https://dicom.test/v1; DICOM Cast was configured with the version-less URL.
CONTEXT = SourceContext(source_uri="https://dicom.test/v1", endpoint_reference="Endpoint/cast-endpoint")
CAST_SOURCE = "https://dicom.test/"
OPTIONS = MappingOptions(patient_system_id=None)
STUDY_IDENTIFIER = {"system": "urn:dicom:uid", "value": f"urn:oid:{STUDY}"}


def cast_study(*sops: tuple[int, int, str, str]) -> dict[str, Any]:
    """An ImagingStudy as DICOM Cast left it: server id, bare "DCM" system, bare sopClass UID, note."""
    series: dict[int, dict[str, Any]] = {}
    for series_number, number, modality, sop_class in sops:
        item = series.setdefault(
            series_number,
            {
                "uid": f"{STUDY}.{series_number}",
                "number": series_number,
                "modality": {"system": "DCM", "code": modality},
                "instance": [],
            },
        )
        item["instance"].append(
            {"uid": f"{STUDY}.{series_number}.{number}", "sopClass": {"code": sop_class}, "number": number}
        )
    return {
        "resourceType": "ImagingStudy",
        "id": "server-assigned-7",
        "meta": {"versionId": "3", "source": CAST_SOURCE},
        "identifier": [
            STUDY_IDENTIFIER,
            {
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]},
                "value": "ACC-1",
            },
        ],
        "status": "available",
        "subject": {"reference": "Patient/cast-patient"},
        "started": "2024-03-15T10:15:30.250+00:00",
        "endpoint": [{"reference": "Endpoint/cast-endpoint"}],
        "note": [{"text": "Chest"}],
        "series": list(series.values()),
    }


def cast_dose(code: tuple[str, str], oid: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "meta": {"versionId": "1"},
        "identifier": [STUDY_IDENTIFIER],
        "status": "preliminary",
        "code": {"coding": [{"system": code[0], "code": code[1]}]},
        "subject": {"reference": "Patient/cast-patient"},
    }


SUMMARY = ("http://loinc.org", "73569-6")
EVENT = ("http://dicom.nema.org/resources/ontology/DCM", "113852")


def run(entries: list[Any], study: dict[str, Any] | None, observations: tuple[Any, ...] = ()) -> Any:
    return map_study(StudyInput(STUDY, None, entries, study, {}, observations), CONTEXT, OPTIONS)


def test_dicom_cast_addresses_are_the_version_less_root_with_and_without_slash() -> None:
    assert legacy.dicom_cast_addresses("https://dicom.test/v1") == ("https://dicom.test/", "https://dicom.test")
    assert legacy.dicom_cast_addresses("https://h.test/dicom/v2") == ("https://h.test/dicom/", "https://h.test/dicom")
    assert legacy.dicom_cast_addresses("https://dicom.test/v2/partitions/p1") == ()  # DICOM Cast knew no partitions
    assert legacy.dicom_cast_endpoint_names("https://dicom.test/v1")[0] == "DICOM WADO-RS endpoint https://dicom.test/"


def test_adopted_study_is_brought_up_to_our_mapping_and_others_are_left_alone() -> None:
    cast = cast_study((1, 1, "CT", CT_IMAGE))
    adopted = legacy.adopted_study(cast, CONTEXT, FhirVersion.R4)
    assert adopted is not None and adopted["id"] == "server-assigned-7"
    assert adopted["meta"]["source"] == "https://dicom.test/v1"
    assert adopted["series"][0]["modality"] == {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT"}
    assert adopted["series"][0]["instance"][0]["sopClass"] == {
        "system": "urn:ietf:rfc:3986",
        "code": f"urn:oid:{CT_IMAGE}",
    }
    assert adopted["description"] == "Chest" and "note" not in adopted
    assert cast["meta"]["source"] == CAST_SOURCE  # the input is not changed
    ehr = {**copy.deepcopy(cast), "meta": {"versionId": "1", "source": "https://ehr.test/"}}
    assert legacy.adopted_study(ehr, CONTEXT, FhirVersion.R4) is ehr


def test_touched_dicom_cast_study_keeps_its_id_and_gets_no_duplicate_elements() -> None:
    cast = cast_study((1, 1, "CT", CT_IMAGE))
    out = run([entry(5, instance(1, 2))], cast)
    study = out.imaging_study
    assert study is not None and study["id"] == "server-assigned-7"
    assert study["meta"] == {"versionId": "3", "source": "https://dicom.test/v1"}  # If-Match on DICOM Cast's version
    assert study["endpoint"] == [{"reference": "Endpoint/cast-endpoint"}]
    assert study["modality"] == [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT"}]
    assert [i["uid"] for i in study["series"][0]["instance"]] == [f"{STUDY}.1.1", f"{STUDY}.1.2"]
    assert (study["numberOfSeries"], study["numberOfInstances"]) == (1, 2)
    assert [i for i in study["identifier"] if i == STUDY_IDENTIFIER] == [STUDY_IDENTIFIER]


def test_adopted_study_is_deleted_with_its_last_instance_like_our_own() -> None:
    cast = cast_study((1, 1, "CT", CT_IMAGE))
    out = run([delete(6, instance(1, 1))], cast)
    assert out.delete_imaging_study is not None and out.delete_imaging_study["id"] == "server-assigned-7"


def test_dicom_cast_dose_observations_are_replaced_when_their_sr_is_mapped_again() -> None:
    sr = dose_sr()
    cast = cast_study((1, 1, "CT", CT_IMAGE), (9, 1, "SR", XRAY_DOSE_SR))
    observations = (cast_dose(SUMMARY, "o1"), cast_dose(EVENT, "o2"), cast_dose(EVENT, "o3"))
    out = run([entry(7, sr)], cast, observations)
    assert sorted(o["id"] for o in out.delete_observations) == ["o1", "o2", "o3"]
    assert len(out.observations) == 3  # dicomcast's own, deterministic ids
    assert all([p["reference"] for p in o["partOf"]] == ["ImagingStudy/server-assigned-7"] for o in out.observations)
    assert not out.warnings


def test_dicom_cast_dose_observations_go_with_the_study_last_sr() -> None:
    cast = cast_study((1, 1, "CT", CT_IMAGE), (9, 1, "SR", XRAY_DOSE_SR))
    observations = (cast_dose(SUMMARY, "o1"), cast_dose(EVENT, "o2"))
    out = run([delete(8, dose_sr())], cast, observations)
    assert sorted(o["id"] for o in out.delete_observations) == ["o1", "o2"]


def test_dicom_cast_dose_observations_of_several_srs_are_kept_with_a_warning() -> None:
    cast = cast_study((1, 1, "CT", CT_IMAGE), (9, 1, "SR", XRAY_DOSE_SR), (9, 2, "SR", XRAY_DOSE_SR))
    observations = (cast_dose(SUMMARY, "o1"), cast_dose(SUMMARY, "o2"))
    out = run([entry(9, dose_sr())], cast, observations)
    assert out.delete_observations == []
    assert any("2 DICOM Cast dose Observation(s)" in w.message for w in out.warnings)


def test_other_observations_with_the_study_identifier_are_not_dicom_cast_dose() -> None:
    other = {**cast_dose(("http://loinc.org", "8867-4"), "o9")}
    assert not legacy.is_dicom_cast_dose(other, STUDY)
    assert legacy.is_dicom_cast_dose(cast_dose(SUMMARY, "o1"), STUDY)
    assert not legacy.is_dicom_cast_dose(cast_dose(SUMMARY, "o1"), "1.2.3")


def test_pick_study_prefers_ours_then_dicom_casts_then_a_foreign_one() -> None:
    ours = {"id": "a", "meta": {"source": "https://dicom.test/v1"}}
    cast = {"id": "b", "meta": {"source": CAST_SOURCE}}
    ehr = {"id": "c", "meta": {"source": "https://ehr.test/"}}
    partition = {"id": "d", "meta": {"source": "https://dicom.test/v1/partitions/p2"}}
    assert pick_study([ehr, cast, ours], CONTEXT, "https://dicom.test/v1") is ours
    assert pick_study([ehr, partition, cast], CONTEXT, "https://dicom.test/v1") is cast
    assert pick_study([partition, ehr], CONTEXT, "https://dicom.test/v1") is ehr


def test_wado_endpoint_name_must_match_exactly() -> None:
    connection = {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "dicom-wado-rs"}
    cast = {
        "resourceType": "Endpoint",
        "name": "DICOM WADO-RS endpoint https://dicom.test/",
        "connectionType": connection,
    }
    names = legacy.dicom_cast_endpoint_names("https://dicom.test/v1")
    assert legacy.is_wado_endpoint(cast, names)
    assert not legacy.is_wado_endpoint({**cast, "name": "DICOM WADO-RS endpoint https://dicom.test/v1"}, names)
    assert not legacy.is_wado_endpoint({**cast, "connectionType": {**connection, "code": "hl7-fhir-rest"}}, names)
    r5 = {**cast, "connectionType": [{"coding": [connection]}]}
    assert legacy.is_wado_endpoint(r5, names)
    assert legacy.is_wado_endpoint(
        cast, legacy.dicom_cast_endpoint_names("https://DICOM.test/v1")
    )  # .NET lower-cased the host


def test_dicom_cast_study_is_recognised_whatever_the_host_case() -> None:
    study = {"meta": {"source": CAST_SOURCE}}
    upper = SourceContext(source_uri="https://DICOM.test/v1", endpoint_reference="Endpoint/e")
    assert legacy.is_dicom_cast_study(study, upper)
    assert not legacy.is_dicom_cast_study({"meta": {"source": "https://dicom.test/other/"}}, upper)
