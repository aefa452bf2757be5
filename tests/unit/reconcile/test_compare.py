"""compare.py: each kind of difference from a QIDO-RS listing and FHIR's ImagingStudies (pure)."""

from __future__ import annotations

import copy
from typing import Any

from dicomcast.dicom.inventory import DicomInstance, StudyRef
from dicomcast.fhir.mapping.types import SourceContext
from dicomcast.reconcile.compare import compare, study_resource_id

SOURCE = SourceContext("http://dicom.test/v2", "Endpoint/e1")
ROOT = "http://dicom.test/v2"
REF = StudyRef("", "1.2.3")
DCM = "http://dicom.nema.org/resources/ontology/DCM"
DICOM = [
    DicomInstance("1.2.3.1", "1.2.3.1.1", "CT", "1.2.840.10008.5.1.4.1.1.2", 1),
    DicomInstance("1.2.3.1", "1.2.3.1.2", "CT", "1.2.840.10008.5.1.4.1.1.2", 2),
    DicomInstance("1.2.3.2", "1.2.3.2.1", "SR", "1.2.840.10008.5.1.4.1.1.88.67", 1),
]


def _study(**changes: Any) -> dict[str, Any]:
    series = {}
    for instance in DICOM:
        entry = series.setdefault(
            instance.series_uid,
            {"uid": instance.series_uid, "modality": {"system": DCM, "code": instance.modality}, "instance": []},
        )
        entry["instance"].append(
            {
                "uid": instance.sop_instance_uid,
                "sopClass": {"code": f"urn:oid:{instance.sop_class}"},
                "number": instance.number,
            }
        )
    for entry in series.values():
        entry["numberOfInstances"] = len(entry["instance"])
    study = {
        "resourceType": "ImagingStudy",
        "id": study_resource_id(REF),
        "meta": {"source": SOURCE.source_uri, "versionId": "1"},
        "status": "available",
        "modality": [{"system": DCM, "code": "CT"}, {"system": DCM, "code": "SR"}],
        "endpoint": [{"reference": "Endpoint/e1"}],
        "numberOfSeries": 2,
        "numberOfInstances": 3,
        "series": list(series.values()),
    }
    study.update(changes)
    return study


def kinds(candidates: list[dict[str, Any]], dicom: list[DicomInstance] = DICOM) -> set[str]:
    return {d.kind for d in compare(REF, dicom, candidates, SOURCE, ROOT).differences}


def test_a_matching_study_has_no_difference() -> None:
    assert kinds([_study()]) == set()


def test_missing_and_gone_studies() -> None:
    check = compare(REF, DICOM, [], SOURCE, ROOT)
    assert [str(d) for d in check.differences] == ["missing-study: 2 series, 3 instances"]
    assert kinds([_study()], []) == {"gone-study"}
    foreign = _study(meta={"source": "http://ehr.test"})
    assert kinds([foreign], []) == set()  # someone else's study is not ours to remove


def test_missing_series_and_instances_and_extra_ones() -> None:
    short = _study()
    short["series"][0]["instance"].pop()
    assert kinds([short]) == {"missing-instances"}  # its counts still say what DICOM holds
    assert kinds([_study()], DICOM[:2]) == {"extra-series", "extra-instances", "counts", "modality"}


def test_counts_modality_instance_legacy_endpoint_status() -> None:
    assert kinds([_study(numberOfInstances=7)]) == {"counts"}
    assert kinds([_study(modality=None)]) == {"modality"}
    wrong = _study()
    wrong["series"][0]["modality"]["code"] = "OT"
    assert kinds([wrong]) == {"modality"}
    renumbered = _study()
    renumbered["series"][0]["instance"][0]["number"] = 9
    assert kinds([renumbered]) == {"instance"}
    legacy = _study(meta={"source": "http://dicom.test/"})
    assert kinds([legacy]) == {"legacy"}
    assert kinds([_study(endpoint=[{"reference": "Endpoint/other"}])]) == {"endpoint"}
    assert kinds([_study(status="registered")]) == {"status"}


def test_duplicates_keep_ours_at_its_own_id_and_merge_the_rest() -> None:
    ours = _study()
    racing = copy.deepcopy(ours) | {"id": "server-1"}
    dicom_cast = copy.deepcopy(ours) | {"id": "server-0", "meta": {"source": "http://dicom.test/"}}
    other_partition = copy.deepcopy(ours) | {"id": "p2", "meta": {"source": f"{ROOT}/partitions/b"}}
    check = compare(REF, DICOM, [racing, dicom_cast, other_partition, ours], SOURCE, ROOT)
    assert check.kept is ours
    assert [e["id"] for e in check.extras] == ["server-1", "server-0"]
    assert [d.kind for d in check.differences] == ["duplicates"]
    assert not check.needs_rewrite
