"""Dose SRs per the Radiation Dose Summary IG: planes kept apart, IANA zones, SRT codes, replays."""

from __future__ import annotations

from typing import Any

from dicomcast.fhir.mapping import MappingOptions, PatientKey, StudyInput, StudyOutput, map_study
from dicomcast.fhir.mapping.ids import resource_id
from tests.unit.mapping.builders import CONTEXT, STUDY, biplane_dose_sr, ct_dose_sr, dose_sr, entry
from tests.unit.mapping.test_map_study import stored

OPTIONS = MappingOptions(patient_system_id="urn:oid:2.25.1")
CT_STUDY = "1.2.826.0.1.3680043.8.498.2"


def _run(
    datasets: list[dict[str, Any]],
    options: MappingOptions = OPTIONS,
    study_uid: str = STUDY,
    existing: tuple[Any, ...] = (),
    study: dict[str, Any] | None = None,
    patients: dict[PatientKey, Any] | None = None,
) -> StudyOutput:
    entries = [entry(i + 1, d) for i, d in enumerate(datasets)]
    return map_study(StudyInput(study_uid, None, entries, study, patients or {}, existing), CONTEXT, options)


def _component(observation: dict[str, Any], code: str) -> dict[str, Any]:
    return next(c for c in observation["component"] if c["code"]["coding"][0]["code"] == code)


def _by_code(out: StudyOutput, code: str) -> list[dict[str, Any]]:
    return [o for o in out.observations if o["code"]["coding"][0]["code"] == code]


def test_biplane_report_keeps_plane_a_and_plane_b_apart() -> None:
    out = _run([biplane_dose_sr()])
    planes = _by_code(out, "113702")
    assert len(planes) == 2
    by_plane = {_component(p, "113764")["valueCodeableConcept"]["coding"][0]["code"]: p for p in planes}
    assert _component(by_plane["113620"], "113722")["valueQuantity"]["value"] == 0.0031  # plane A DAP
    assert _component(by_plane["113621"], "113722")["valueQuantity"]["value"] == 0.0012  # plane B DAP
    assert _component(by_plane["113621"], "113725")["valueQuantity"]["value"] == 0.061  # plane B RP dose
    events = _by_code(out, "113852")
    assert [_component(e, "113764")["valueCodeableConcept"]["coding"][0]["code"] for e in events] == [
        "113620",
        "113621",
    ]
    summary = _by_code(out, "73569-6")[0]
    members = {m["reference"] for m in summary["hasMember"]}
    assert members == {f"Observation/{o['id']}" for o in [*planes, *events]}
    assert "Plane B:" in summary["valueString"] and "0.061 Gy" in summary["valueString"]


def test_single_plane_summary_has_procedure_reported_and_values() -> None:
    summary = _by_code(_run([dose_sr()]), "73569-6")[0]
    reported = _component(summary, "121058")["valueCodeableConcept"]["coding"][0]
    assert (reported["code"], reported["system"]) == ("113704", "http://dicom.nema.org/resources/ontology/DCM")
    assert _component(summary, "113722")["valueQuantity"] == {
        "value": 0.00042,
        "unit": "Gy.m2",
        "system": "http://unitsofmeasure.org",
        "code": "Gy.m2",
    }
    assert summary["effectiveDateTime"] == "2024-03-15T10:16:00+01:00"  # Start of X-Ray Irradiation
    assert summary["basedOn"][0]["identifier"]["value"] == "ACC-42"


def test_ct_report_with_iana_default_zone_and_srt_codes() -> None:
    options = MappingOptions(patient_system_id="urn:oid:2.25.1", default_timezone="Europe/Berlin")
    out = _run(ct_dose_sr(CT_STUDY), options, CT_STUDY)
    assert not out.failures
    summary = _by_code(out, "73569-6")[0]
    assert summary["effectiveDateTime"] == "2024-07-15T09:17:00+02:00"  # Berlin summer time
    reported = _component(summary, "121058")["valueCodeableConcept"]["coding"][0]
    assert (reported["system"], reported["code"]) == ("http://snomed.info/sct", "77477000")  # from SRT P5-08000
    events = _by_code(out, "113852")
    assert [e["effectiveDateTime"] for e in events] == ["2024-07-15T09:17:00+02:00", "2024-07-15T09:21:30+02:00"]
    assert events[0]["bodySite"]["coding"][0] == {
        "system": "http://snomed.info/sct",
        "code": "51185008",
        "display": "Chest",
    }
    assert _component(events[1], "113838")["valueQuantity"]["code"] == "mGy.cm"


def test_replay_writes_nothing_new() -> None:
    sr = biplane_dose_sr()
    first = _run([sr])
    assert len(first.observations) == 5
    existing = tuple(stored(o) for o in first.observations)
    study = stored(first.imaging_study or {})
    patients = {PatientKey("urn:oid:2.25.1", "PAT-1"): stored(p) for p in first.patients}
    again = _run([sr], existing=existing, study=study, patients=patients)
    assert again.observations == [] and again.delete_observations == []
    ids = [o["id"] for o in first.observations]
    sop = sr["00080018"]["Value"][0]
    assert ids[0] == resource_id("Observation", sop)
    assert ids[1:3] == [resource_id("Observation", sop, "plane", plane) for plane in ("113620", "113621")]


def test_radiopharmaceutical_report_summarises_the_administration() -> None:
    from tests.unit.mapping.builders import _item, _num, code, el, instance

    administration = _item(
        "CONTAINER",
        code("113502", "DCM", "Radiopharmaceutical Administration"),
        children=[
            _item(
                "CODE",
                code("349358000", "SCT", "Radiopharmaceutical agent"),
                code=code("C-B1031", "SRT", "Fluorodeoxyglucose F^18^"),
            ),
            _item("DATETIME", code("123003", "DCM", "Radiopharmaceutical Start DateTime"), dt="20240315081500+0100"),
            _num(code("113507", "DCM", "Administered activity"), "350", "MBq", "MBq"),
        ],
    )
    report = instance(
        9,
        1,
        modality="SR",
        sop_class="1.2.840.10008.5.1.4.1.1.88.68",
        extra={
            "0040A040": el("CS", "CONTAINER"),
            "0040A043": el("SQ", code("113500", "DCM", "Radiopharmaceutical Radiation Dose Report")),
            "0040A730": el("SQ", administration),
        },
    )
    summary = _by_code(_run([report]), "73569-6")[0]
    assert summary["effectiveDateTime"] == "2024-03-15T08:15:00+01:00"
    assert _component(summary, "121058")["valueCodeableConcept"]["coding"][0]["code"] == "113502"
    assert _component(summary, "113507")["valueQuantity"]["value"] == 350
    agent = _component(summary, "349358000")["valueCodeableConcept"]["coding"][0]
    assert agent["system"] == "http://snomed.info/sct" and agent["code"] != "C-B1031"
