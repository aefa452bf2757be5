"""DICOM JSON for the Azure DICOM test server: pydicom's bundled files and generated studies.

`generate_studies` is deterministic for a seed, so the benchmark and the tests see the same data.
"""

from __future__ import annotations

import random
import warnings
from typing import Any

import pydicom
from pydicom.data import get_testdata_file
from pydicom.datadict import dictionary_VR, tag_for_keyword

DicomJson = dict[str, Any]

# Bundled files with patient, study and series attributes (no download needed).
SAMPLE_FILES = ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "rtdose.dcm", "rtplan.dcm")
STUDY_UID = "0020000D"
SERIES_UID = "0020000E"
SOP_INSTANCE_UID = "00080018"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
_MODALITIES = ("CT", "MR", "US", "CR", "NM")
_GIVEN = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "John")
_FAMILY = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Backus")


def sample_instance(name: str) -> DicomJson:
    """One bundled pydicom file as DICOM JSON, without pixel data or other bulk data."""
    path = get_testdata_file(name, download=False)
    if path is None:
        raise FileNotFoundError(f"pydicom test file {name} is not installed")
    with warnings.catch_warnings():  # rtplan.dcm has a UID pydicom finds invalid; it is test data
        warnings.simplefilter("ignore", UserWarning)
        dataset = pydicom.dcmread(path, stop_before_pixels=True)
        as_json: DicomJson = dataset.to_json_dict(
            bulk_data_threshold=1024, bulk_data_element_handler=lambda element: ""
        )
    return {tag: value for tag, value in as_json.items() if "BulkDataURI" not in value}


def sample_instances() -> list[DicomJson]:
    return [sample_instance(name) for name in SAMPLE_FILES]


def element(keyword: str, *values: Any) -> tuple[str, dict[str, Any]]:
    """A DICOM JSON element from a keyword; PN strings become {"Alphabetic": ...}."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(f"unknown DICOM keyword {keyword}")
    vr = dictionary_VR(tag)
    if vr == "PN":
        values = tuple({"Alphabetic": value} if isinstance(value, str) else value for value in values)
    body: dict[str, Any] = {"vr": vr}
    if values:
        body["Value"] = list(values)
    return f"{tag:08X}", body


def dicom_json(**attributes: Any) -> DicomJson:
    """DICOM JSON from keywords: `dicom_json(PatientID="7", InstanceNumber=1)`; None leaves a tag empty."""
    result: DicomJson = {}
    for keyword, value in attributes.items():
        values = () if value is None else (value if isinstance(value, list | tuple) else (value,))
        tag, body = element(keyword, *values)
        result[tag] = body
    return result


def _uid(rng: random.Random) -> str:
    return f"2.25.{rng.getrandbits(100)}"


def _patient(rng: random.Random, index: int) -> DicomJson:
    return dicom_json(
        PatientName=f"{rng.choice(_FAMILY)}^{rng.choice(_GIVEN)}",
        PatientID=f"PID{index:06d}",
        PatientBirthDate=f"{rng.randint(1930, 2020)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}",
        PatientSex=rng.choice(("F", "M", "O")),
    )


def _study(rng: random.Random, index: int) -> DicomJson:
    return {
        **dicom_json(
            StudyInstanceUID=_uid(rng),
            StudyDate=f"2025{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}",
            StudyTime=f"{rng.randint(0, 23):02d}{rng.randint(0, 59):02d}{rng.randint(0, 59):02d}",
            AccessionNumber=f"ACC{index:07d}",
            StudyID=str(index),
            StudyDescription=f"Study {index}",
            ReferringPhysicianName="Referrer^Rita",
        ),
        **_patient(rng, index),
    }


def generate_studies(n_studies: int, n_instances: int, seed: int = 0) -> list[DicomJson]:
    """`n_studies` studies of `n_instances` instances each (spread over up to 3 series), as DICOM JSON."""
    rng = random.Random(seed)
    instances: list[DicomJson] = []
    for study_index in range(n_studies):
        study = _study(rng, study_index)
        series = [
            dicom_json(
                SeriesInstanceUID=_uid(rng),
                SeriesNumber=number + 1,
                Modality=rng.choice(_MODALITIES),
                SeriesDescription=f"Series {number + 1}",
                BodyPartExamined="CHEST",
            )
            for number in range(min(3, max(1, n_instances)))
        ]
        for instance_index in range(n_instances):
            instances.append(
                {
                    **study,
                    **series[instance_index % len(series)],
                    **dicom_json(
                        SOPInstanceUID=_uid(rng),
                        SOPClassUID=CT_IMAGE_STORAGE,
                        InstanceNumber=instance_index + 1,
                    ),
                }
            )
    return instances


def uids(instance: DicomJson) -> tuple[str, str, str]:
    """(study, series, SOP instance) UIDs of a DICOM JSON instance."""
    return tuple(str(instance[tag]["Value"][0]) for tag in (STUDY_UID, SERIES_UID, SOP_INSTANCE_UID))  # type: ignore[return-value]
