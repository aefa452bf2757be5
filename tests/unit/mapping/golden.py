"""Golden data for the mapping tests, and how to regenerate it.

`tests/data/dicomjson/<name>.json`: DICOM JSON lists made from pydicom's bundled files (always
`download=False`) and from the generated studies in `builders.py`.
`tests/data/golden/<name>.<release>.json`: what `map_instances` makes of them.

Regenerate after an intended mapping change, then review the diff:
    UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/mapping/test_golden.py
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydicom.data import get_charset_files, get_testdata_file

from dicomcast.dicom.part10 import read_part10
from dicomcast.fhir.mapping import FhirVersion, MappingOptions
from dicomcast.mapcmd import map_instances
from tests.unit.mapping import builders

DATA = Path(__file__).resolve().parents[2] / "data"
DICOMJSON = DATA / "dicomjson"
GOLDEN = DATA / "golden"

PYDICOM_FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "rtplan.dcm",
    "rtdose.dcm",
    "test-SR.dcm",
    "waveform_ecg.dcm",
    "SC_rgb_small_odd.dcm",
    "SC_rgb_rle_2frame.dcm",
    "JPEG-lossy.dcm",
    "JPEG2000.dcm",
    "JPGExtended.dcm",
]
CHARSET_FILES = ["chrH31.dcm", "chrX1.dcm"]  # names with ideographic / phonetic groups

OPTIONS = {
    FhirVersion.R4: MappingOptions(patient_system_id="urn:oid:2.25.1", fhir_version=FhirVersion.R4),
    FhirVersion.R5: MappingOptions(patient_system_id="urn:oid:2.25.1", fhir_version=FhirVersion.R5),
}


def _source_path(name: str) -> Path:
    found = get_testdata_file(name, download=False)
    if found is None:
        found = get_charset_files(name)[0]
    return Path(str(found))


def dicomjson_sources() -> dict[str, list[dict[str, Any]]]:
    """Every golden input by name, freshly made."""
    out = {Path(name).stem: [read_part10(_source_path(name))] for name in PYDICOM_FILES + CHARSET_FILES}
    out["generated_multi_series"] = builders.multi_series_study()
    out["generated_xray_dose_sr"] = [*builders.multi_series_study()[:1], builders.dose_sr()]
    out["generated_biplane_dose_sr"] = [*builders.multi_series_study()[:1], builders.biplane_dose_sr()]
    out[IANA_ZONE_SOURCE] = builders.ct_dose_sr()
    return out


# Sources mapped with an IANA default time zone (DicomCastWorker:DefaultTimezone=Europe/Berlin).
IANA_ZONE_SOURCE = "generated_ct_dose_sr_berlin"


def options_for(name: str | None, version: FhirVersion) -> MappingOptions:
    options = OPTIONS[version]
    return replace(options, default_timezone="Europe/Berlin") if name == IANA_ZONE_SOURCE else options


def golden_output(instances: list[dict[str, Any]], version: FhirVersion, name: str | None = None) -> dict[str, Any]:
    result = map_instances(instances, options_for(name, version), "http://dicom.test/dicom-web")
    return {
        "resources": result.resources,
        "warnings": [[w.sequence, w.tag, w.message] for w in result.warnings],
        "failures": [[f.entry.sequence, f.reason] for f in result.failures],
    }


def write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n", encoding="utf-8")


def regenerate() -> None:
    for name, instances in dicomjson_sources().items():
        write(DICOMJSON / f"{name}.json", instances)
        for version in FhirVersion:
            write(GOLDEN / f"{name}.{version.value}.json", golden_output(instances, version, name))


if __name__ == "__main__":
    regenerate()
