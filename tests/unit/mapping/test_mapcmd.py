"""`map_paths`: Part 10 and DICOM JSON files in, the resources dicomcast would write out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from dicomcast.errors import MappingError
from dicomcast.fhir.mapping import MappingOptions
from dicomcast.mapcmd import map_paths
from tests.unit.mapping.builders import multi_series_study


def test_part10_and_dicom_json_files(tmp_path: Path) -> None:
    listing = tmp_path / "study.json"
    listing.write_text(json.dumps(multi_series_study()), encoding="utf-8")
    ct = Path(str(get_testdata_file("CT_small.dcm", download=False)))
    resources = map_paths([ct, listing], MappingOptions(patient_system_id="urn:oid:2.25.1"))
    kinds = [r["resourceType"] for r in resources]
    assert kinds == ["Endpoint", "Patient", "ImagingStudy", "Patient", "ImagingStudy"]


def test_a_file_that_is_neither_form_is_a_mapping_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00" * 200)
    with pytest.raises(MappingError):
        map_paths([junk], MappingOptions())
