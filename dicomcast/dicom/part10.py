"""DICOM Part 10 files -> DICOM JSON, the form every source hands to the mapping.

Pixel data and other bulk data are dropped: the mapping reads metadata only, and WADO-RS
metadata responses leave bulk data out too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom
from pydicom.errors import InvalidDicomError

from dicomcast.dicom.dicomjson import DicomJson
from dicomcast.errors import MappingError


def _without_bulk_data(dataset: DicomJson) -> DicomJson:
    """The dataset without InlineBinary / BulkDataURI elements, sequences included."""
    out: DicomJson = {}
    for tag, element in dataset.items():
        if not isinstance(element, dict) or "InlineBinary" in element or "BulkDataURI" in element:
            continue
        if element.get("vr") == "SQ" and isinstance(element.get("Value"), list):
            items = [_without_bulk_data(item) for item in element["Value"] if isinstance(item, dict)]
            element = {**element, "Value": items}
        out[tag] = element
    return out


def _drop_bulk(element: Any) -> str:
    return ""  # never called for kept elements; bulk data is filtered out afterwards


def read_part10(path: Path) -> DicomJson:
    """One Part 10 file as DICOM JSON (PS3.18 F.2). Raises MappingError when it is not DICOM."""
    try:
        dataset = pydicom.dcmread(path, stop_before_pixels=True)
        raw: DicomJson = dataset.to_json_dict(
            bulk_data_threshold=0, bulk_data_element_handler=_drop_bulk, suppress_invalid_tags=True
        )
    except (InvalidDicomError, OSError, ValueError, TypeError, EOFError, AttributeError, KeyError) as error:
        raise MappingError(f"{path}: not a readable DICOM Part 10 file ({type(error).__name__})") from None
    return _without_bulk_data(raw)
