"""Study modality per release, series values from series-level tags, IANA time zones everywhere,
and the people and requests of HL7's mapping rows (referrer, performers, basedOn, reasons)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dicomcast.dicom import dicomjson as dj
from dicomcast.fhir.mapping import FhirVersion, MappingOptions, StudyInput, StudyOutput, map_study
from dicomcast.fhir.mapping.study import ACQUISITION_MODALITIES
from tests.unit.mapping.builders import CONTEXT, STUDY, code, dose_sr, el, entry, instance, multi_series_study

R4 = MappingOptions(patient_system_id="urn:oid:2.25.1")
R5 = MappingOptions(patient_system_id="urn:oid:2.25.1", fhir_version=FhirVersion.R5)
BERLIN = MappingOptions(patient_system_id="urn:oid:2.25.1", default_timezone="Europe/Berlin")


def run(
    datasets: list[dict[str, Any]], options: MappingOptions = R4, study: dict[str, Any] | None = None
) -> StudyOutput:
    entries = [entry(i + 1, d) for i, d in enumerate(datasets)]
    return map_study(StudyInput(STUDY, None, entries, study, {}), CONTEXT, options)


def stored(resource: dict[str, Any] | None) -> dict[str, Any]:
    copy_ = copy.deepcopy(resource or {})
    copy_.setdefault("meta", {})["versionId"] = "1"
    return copy_


def codes(concepts: list[dict[str, Any]]) -> list[str]:
    return [c.get("code") or c["coding"][0]["code"] for c in concepts]


# -- study modality -----------------------------------------------------------------------------


def test_acquisition_modalities_are_cid_29() -> None:
    assert {"CT", "MR", "MG", "US", "DX", "PT", "XA"} <= ACQUISITION_MODALITIES
    assert not {"SR", "PR", "DOC", "SEG", "KO", "OT", "RTDOSE"} & ACQUISITION_MODALITIES


def test_r4_study_modality_lists_only_acquisition_modalities_r5_lists_all() -> None:
    datasets = [
        instance(1, 1, modality="CT"),
        instance(2, 1, modality="SR", sop_class="1.2.840.10008.5.1.4.1.1.88.22"),
        instance(3, 1, modality="PR", sop_class="1.2.840.10008.5.1.4.1.1.11.1"),
        instance(4, 1, modality="SEG", sop_class="1.2.840.10008.5.1.4.1.1.66.4"),
        instance(5, 1, modality="CT"),
    ]
    r4 = run(datasets).imaging_study or {}
    r5 = run(datasets, R5).imaging_study or {}
    assert codes(r4["modality"]) == ["CT"]
    assert codes(r5["modality"]) == ["CT", "SR", "PR", "SEG"]
    assert codes([s["modality"] for s in r4["series"]]) == ["CT", "SR", "PR", "SEG", "CT"]


def test_r4_study_of_only_non_acquisition_series_has_no_modality() -> None:
    study = run([instance(1, 1, modality="SR", sop_class="1.2.840.10008.5.1.4.1.1.88.22")]).imaging_study
    assert study is not None and "modality" not in study


# -- series-level values --------------------------------------------------------------------------


def mammo(number: int, image_laterality: str | None, body_part: str | None = "BREAST") -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if image_laterality:
        extra["00200062"] = el("CS", image_laterality)
    if body_part:
        extra["00180015"] = el("CS", body_part)
    return instance(1, number, modality="MG", sop_class="1.2.840.10008.5.1.4.1.1.1.2", extra=extra)


def test_image_laterality_that_disagrees_leaves_series_laterality_out_with_a_warning() -> None:
    out = run([mammo(1, "L"), mammo(2, "R")])
    series = (out.imaging_study or {})["series"][0]
    assert "laterality" not in series
    assert series["bodySite"]["code"]  # every instance agrees on BREAST
    warned = [w for w in out.warnings if w.tag == "00200062"]
    assert len(warned) == 1 and f"series {STUDY}.1" in warned[0].message and warned[0].sequence == 2


def test_image_laterality_where_every_instance_agrees_is_the_series_laterality() -> None:
    out = run([mammo(1, "L"), mammo(2, "L"), mammo(3, None)])  # an instance without it abstains
    series = (out.imaging_study or {})["series"][0]
    assert series["laterality"]["code"] == "7771000" and not out.warnings


def test_series_laterality_tag_wins_over_image_laterality() -> None:
    datasets = [mammo(1, "L"), mammo(2, "R")]
    for data in datasets:
        data["00200060"] = el("CS", "B")
    out = run(datasets)
    assert (out.imaging_study or {})["series"][0]["laterality"]["code"] == "51440002"
    assert not out.warnings


def test_body_part_that_disagrees_leaves_body_site_out() -> None:
    out = run([mammo(1, "L", "BREAST"), mammo(2, "L", "CHEST")])
    series = (out.imaging_study or {})["series"][0]
    assert "bodySite" not in series and series["laterality"]["code"] == "7771000"
    assert [w.tag for w in out.warnings] == ["00180015"]


def test_a_later_page_that_disagrees_with_fhir_removes_the_value_and_agreement_restores_nothing() -> None:
    first = run([mammo(1, "L")])
    held = stored(first.imaging_study)
    assert held["series"][0]["laterality"]["code"] == "7771000"
    second = run([mammo(2, "R")], study=held)
    assert "laterality" not in (second.imaging_study or {})["series"][0]
    assert [w.tag for w in second.warnings] == ["00200062"]
    third = run([mammo(3, "L")], study=stored(second.imaging_study))
    assert "laterality" not in (third.imaging_study or {})["series"][0]  # earlier instances disagreed
    replay = run([mammo(1, "L")], study=held)
    assert replay.imaging_study is None and not replay.warnings  # agreeing replay writes nothing


# -- IANA time zones ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20240315101700", "2024-03-15T10:17:00+01:00"),  # winter: CET
        ("20240715101700", "2024-07-15T10:17:00+02:00"),  # summer: CEST
        ("20240715101700-0500", "2024-07-15T10:17:00-05:00"),  # the value's own offset wins
    ],
)
def test_dt_reader_resolves_an_iana_default_zone_per_day(value: str, expected: str) -> None:
    assert dj.date_time({"0040A120": el("DT", value)}, "0040A120", "Europe/Berlin") == expected


def test_dose_report_with_iana_default_timezone_maps() -> None:
    sr = dose_sr()
    del sr["00080201"]
    out = run([sr], BERLIN)
    assert not out.failures
    events = [o for o in out.observations if o["code"]["coding"][0]["code"] == "113852"]
    assert [o["effectiveDateTime"] for o in events] == ["2024-03-15T10:17:00+01:00"] * 2
    assert out.observations[0]["effectiveDateTime"] == "2024-03-15T10:16:00+01:00"  # Start of X-Ray Irradiation
    assert (out.imaging_study or {})["started"] == "2024-03-15T10:15:30.25+01:00"


def test_series_started_uses_the_zone_of_its_own_day() -> None:
    data = instance(1, 1, extra={"00080021": el("DA", "20240715"), "00080031": el("TM", "0800")})
    study = run([data], BERLIN).imaging_study or {}
    assert study["series"][0]["started"] == "2024-07-15T08:00:00+02:00"
    assert study["started"] == "2024-03-15T10:15:30.25+01:00"


# -- people and requests --------------------------------------------------------------------------


def test_referrer_performers_and_interpreters_carry_identifiers_in_name_order() -> None:
    extra = {
        "00081050": el("PN", {"Alphabetic": "Grey^Meredith"}, {"Alphabetic": "Yang^Cristina"}),
        "00081052": el(
            "SQ",
            {"00401101": el("SQ", code("111", "DCM", "Grey"))},
            {"00401101": el("SQ", code("222", "DCM", "Yang"))},
        ),
        "00081070": el("PN", {"Alphabetic": "Tech^Tom"}),
        "00081062": el("SQ", {"00401101": el("SQ", code("333", "DCM", "House"))}),
        "00081060": el("PN", {"Alphabetic": "House^Gregory"}),
    }
    study = run([instance(1, 1, extra=extra)]).imaging_study or {}
    performers = study["series"][0]["performer"]
    dcm = "http://dicom.nema.org/resources/ontology/DCM"
    assert [p["actor"] for p in performers] == [
        {"identifier": {"system": dcm, "value": "111"}, "display": "Meredith Grey"},
        {"identifier": {"system": dcm, "value": "222"}, "display": "Cristina Yang"},
        {"display": "Tom Tech"},
    ]
    assert study["interpreter"] == [{"identifier": {"system": dcm, "value": "333"}, "display": "Gregory House"}]


def test_referrer_identified_without_a_name_is_still_referenced() -> None:
    extra = {"00080096": el("SQ", {"00401101": el("SQ", code("MW-77", "DCM", "x"))})}
    study = run([instance(1, 1, extra=extra)]).imaging_study or {}
    assert study["referrer"] == {
        "identifier": {"system": "http://dicom.nema.org/resources/ontology/DCM", "value": "MW-77"}
    }


def test_requested_procedure_and_performed_reason_per_release() -> None:
    for options, reason in ((R4, "reasonCode"), (R5, "reason")):
        study = run(multi_series_study(), options).imaging_study or {}
        assert study["basedOn"][0]["display"] == "CT Chest w/o contrast"
        assert study["basedOn"][0]["identifier"]["value"] == "ACC-42"
        reasons = study[reason] if options is R4 else [r["concept"] for r in study[reason]]
        assert "50417007" in [r["coding"][0]["code"] for r in reasons if "coding" in r]


def test_requested_procedure_without_accession_is_a_display_only_request() -> None:
    extra = {"00321064": el("SQ", code("RPID4", "RADLEX", "CT Chest w/o contrast"))}
    held = run([instance(1, 1, extra=extra)]).imaging_study
    assert held is not None and held["basedOn"] == [{"type": "ServiceRequest", "display": "CT Chest w/o contrast"}]
    assert run([instance(1, 1, extra=extra)], study=stored(held)).imaging_study is None  # not added twice
