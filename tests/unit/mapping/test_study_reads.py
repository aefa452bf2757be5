"""Reads reused across a study's instances (reads.py) map exactly what reading each anew maps.

Each variant is the generated multi-series study with one element of one later instance changed:
a value that differs, one that is equal to Python but not to the readers (1, 1.0, true), one that is
invalid (a warning, or the entry's failure when validation is enforced), one removed, one added.
The whole output (resources, warnings with their sequences, failures) must equal the output with
reuse turned off, and reuse must have happened (else this would prove nothing).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from dicomcast.dicom.dicomjson import DicomJson
from dicomcast.fhir.mapping import FhirVersion, MappingOptions, reads
from dicomcast.fhir.mapping.issues import Issues
from dicomcast.mapcmd import map_instances
from tests.unit.mapping.builders import el, multi_series_study, pn

_ABSENT = object()
CHANGES: dict[str, list[Any]] = {
    "00100010": [pn("Roe^Richard"), el("PN", 7), _ABSENT],  # PatientName
    "00100030": [el("DA", "19800230"), el("DA", 19800102), _ABSENT],  # PatientBirthDate
    "00100040": [el("CS", "X"), el("CS", "M")],  # PatientSex
    "00100020": [el("LO", "PAT-2"), el("LO", "")],  # PatientID: another patient, or none
    "00080201": [el("SH", "+0200"), el("SH", "0100"), _ABSENT],  # TimezoneOffsetFromUTC
    "00081030": [el("LO", "Other"), el("LO", 1), _ABSENT],  # StudyDescription
    "00080050": [el("SH", "ACC-43"), _ABSENT],  # AccessionNumber
    "00200011": [el("IS", 1.0), el("IS", True), el("IS", -1), el("IS", "x")],  # SeriesNumber
    "00180015": [el("CS", "HEAD"), el("CS", "NOSUCHPART"), _ABSENT],  # BodyPartExamined
    "00200060": [el("CS", "Q"), el("CS", "B")],  # Laterality
    "00081050": [pn("Other^Doc"), _ABSENT],  # PerformingPhysicianName
    "00080021": [el("DA", "20240316"), el("DA", "2024")],  # SeriesDate
    "00200010": [el("SH", "S2"), el("SH", "x" * 20)],  # StudyID
}


def _variants() -> Iterator[tuple[str, list[DicomJson]]]:
    yield "unchanged", multi_series_study()
    for tag, values in CHANGES.items():
        for index, value in enumerate(values):
            for changed in (1, 3, 4):  # the second instance of series 1 and 2, the only one of series 3
                study = multi_series_study()
                if value is _ABSENT:
                    study[changed].pop(tag, None)
                else:
                    study[changed][tag] = value
                yield f"{tag}#{index}@{changed}", study
    study = multi_series_study()
    study[1]["00091001"] = el("LO", "private")  # an element no reader reads
    yield "unread element", study
    study = multi_series_study()
    for data in study[1:]:  # the same elements, their keys in another order (== does not see it)
        for tag in ("00100010", "00200011", "00080050"):
            data[tag] = dict(reversed(data[tag].items()))
    yield "keys reordered", study


def _mapped(instances: list[DicomJson], options: MappingOptions) -> Any:
    result = map_instances(instances, options, "http://dicom.test/dicom-web")
    return (
        result.resources,
        [(w.sequence, w.tag, w.message, w.kind) for w in result.warnings],
        [(f.entry.sequence, f.failure_class, f.reason) for f in result.failures],
    )


def _anew(self: reads.StudyReads, key: Hashable, data: DicomJson, issues: Issues, read: Callable[..., Any]) -> Any:
    return read(data, issues)


@pytest.mark.parametrize("enforce", [False, True])
@pytest.mark.parametrize("version", list(FhirVersion))
def test_reused_reads_map_what_fresh_reads_map(
    version: FhirVersion, enforce: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = MappingOptions(patient_system_id="urn:oid:2.25.1", fhir_version=version, enforce_validation=enforce)
    counts = Counter[str]()
    real_part = reads.StudyReads.part

    def counted(self: reads.StudyReads, key: Hashable, data: DicomJson, issues: Issues, read: Any) -> Any:
        fresh = Counter[str]()

        def noted(d: DicomJson, i: Issues) -> Any:
            fresh["n"] += 1
            return read(d, i)

        result = real_part(self, key, data, issues, noted)
        counts["read" if fresh["n"] else "reused"] += 1
        return result

    outcomes = Counter[str]()
    for name, study in _variants():
        monkeypatch.setattr(reads.StudyReads, "part", counted)
        reused = _mapped(study, options)
        monkeypatch.setattr(reads.StudyReads, "part", _anew)
        assert reused == _mapped(study, options), name
        outcomes["with warnings" if reused[1] else "without"] += 1
        outcomes["with failures" if reused[2] else "no failure"] += 1
    assert counts["reused"] > 100, counts
    assert outcomes["with warnings"] > 10, outcomes
    assert outcomes["with failures"] > (10 if enforce else 2), outcomes  # invalid values fail entries when enforced


def test_a_dataset_read_as_a_whole_is_not_reused() -> None:
    study_reads = reads.StudyReads()
    calls = Counter[str]()

    def whole(data: DicomJson, issues: Issues) -> int:
        calls["n"] += 1
        return len(data)

    for _ in range(3):
        assert study_reads.part("p", {"00100010": el("PN")}, Issues(1, False), whole) == 1
    assert calls["n"] == 3


def test_a_value_that_is_not_plain_json_is_read_anew() -> None:
    study_reads = reads.StudyReads()
    calls = Counter[str]()

    def name(data: DicomJson, issues: Issues) -> Any:
        calls["n"] += 1
        return data.get("00100010")

    odd = {"00100010": {"vr": "PN", "Value": [object()]}}
    for _ in range(2):
        study_reads.part("p", odd, Issues(1, False), name)
    assert calls["n"] == 2


def test_warnings_are_given_again_under_the_later_entrys_sequence() -> None:
    options = replace(MappingOptions(patient_system_id="urn:oid:2.25.1"))
    study = multi_series_study()
    for data in study:
        data["00100040"] = el("CS", "X")  # PatientSex: not M, F or O, in every instance
    result = map_instances(study, options, "http://dicom.test/dicom-web")
    sequences = [w.sequence for w in result.warnings if w.tag == "00100040"]
    assert sequences == [1, 2, 3, 4, 5]
