"""Golden tests: DICOM JSON from real DICOM files in, the FHIR dicomcast writes out, for R4 and R5."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dicomcast.dicom.models import mapped_elements
from dicomcast.fhir.mapping import FhirVersion
from dicomcast.fhir.mapping.validate import model
from tests.unit.mapping import golden

NAMES = sorted(golden.dicomjson_sources())


@pytest.fixture(scope="module", autouse=True)
def _update() -> None:
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.regenerate()


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", NAMES)
def test_dicomjson_matches_the_pydicom_source(name: str) -> None:
    made = json.loads(json.dumps(golden.dicomjson_sources()[name]))
    assert _load(golden.DICOMJSON / f"{name}.json") == made


@pytest.mark.parametrize("version", list(FhirVersion))
@pytest.mark.parametrize("name", NAMES)
def test_mapping_matches_golden(name: str, version: FhirVersion) -> None:
    instances = _load(golden.DICOMJSON / f"{name}.json")
    produced = json.loads(json.dumps(golden.golden_output(instances, version, name)))
    assert produced == _load(golden.GOLDEN / f"{name}.{version.value}.json")


@pytest.mark.parametrize("version", list(FhirVersion))
@pytest.mark.parametrize("name", NAMES)
def test_the_elements_sources_keep_map_as_the_whole_metadata(name: str, version: FhirVersion) -> None:
    """Sources keep `mapped_elements` of each instance in memory: that must lose nothing the mapping reads."""
    instances = _load(golden.DICOMJSON / f"{name}.json")
    kept = [mapped_elements(instance) for instance in instances]
    produced = json.loads(json.dumps(golden.golden_output(kept, version, name)))
    assert produced == _load(golden.GOLDEN / f"{name}.{version.value}.json")


def test_sources_keep_a_small_part_of_a_real_image_metadata() -> None:
    (ct,) = _load(golden.DICOMJSON / "CT_small.json")
    assert len(ct) > 100 and len(mapped_elements(ct)) < 30  # what makes the test above a test


@pytest.mark.parametrize("version", list(FhirVersion))
@pytest.mark.parametrize("name", NAMES)
def test_golden_resources_validate(name: str, version: FhirVersion) -> None:
    expected = _load(golden.GOLDEN / f"{name}.{version.value}.json")
    for resource in expected["resources"]:
        model(resource["resourceType"], version).model_validate(resource)
    kinds = {r["resourceType"] for r in expected["resources"]}
    assert "Endpoint" in kinds
    assert ("ImagingStudy" in kinds) or expected["failures"]


def test_golden_set_covers_the_issue_list() -> None:
    for wanted in ["CT_small", "MR_small", "rtplan", "rtdose", "test-SR", "waveform_ecg", "SC_rgb_small_odd"]:
        assert wanted in NAMES
    dose = _load(golden.GOLDEN / "generated_xray_dose_sr.R4.json")
    assert sum(r["resourceType"] == "Observation" for r in dose["resources"]) == 3


_FIRST_USE = """
import json, sys
from pathlib import Path
from dicomcast.fhir.mapping import FhirVersion, load_models
from dicomcast.fhir.mapping.validate import validated
version = FhirVersion(sys.argv[1])
load_models(version)
loaded = {m for m in sys.modules if m.startswith("fhir.resources")}
for path in sorted(Path(sys.argv[2]).glob(f"*.{version.value}.json")):
    for resource in json.loads(path.read_text(encoding="utf-8"))["resources"]:
        validated(resource, version)
print(" ".join(sorted({m for m in sys.modules if m.startswith("fhir.resources")} - loaded)))
"""


@pytest.mark.parametrize("version", list(FhirVersion))
def test_start_up_loads_every_model_the_golden_resources_use(version: FhirVersion) -> None:
    """The first batch pays no model import: `load_models` brought in every element type."""
    found = subprocess.run(
        [sys.executable, "-c", _FIRST_USE, version.value, str(golden.GOLDEN)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert found.stdout.split() == []
