"""`dicomcast map FILE...`: what dicomcast would write for some DICOM files, without any server.

Files are DICOM Part 10, or DICOM JSON (one instance object, or a list of them as a WADO-RS
metadata response returns). Instances are grouped by study and mapped as `create` entries with
nothing in FHIR yet, in the order given; a Patient seen in several studies is written once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dicomcast.dicom import tags
from dicomcast.dicom.dicomjson import DicomJson
from dicomcast.dicom.models import ChangeAction, ChangeEntry
from dicomcast.dicom.part10 import read_part10
from dicomcast.errors import MappingError
from dicomcast.fhir.mapping import (
    EntryFailure,
    MappingOptions,
    MappingWarning,
    PatientKey,
    Resource,
    SourceContext,
    StudyInput,
    endpoint_resource,
    identity_keys,
    map_study,
    patient_keys,
)
from dicomcast.urls import redact_url

DEFAULT_DICOMWEB_ENDPOINT = "http://127.0.0.1:8042/dicom-web"


@dataclass
class MapResult:
    resources: list[Resource] = field(default_factory=list)
    warnings: list[MappingWarning] = field(default_factory=list)
    failures: list[EntryFailure] = field(default_factory=list)


def read_instances(path: Path) -> list[DicomJson]:
    """The DICOM JSON instances of one file. Raises MappingError when it is neither form."""
    with path.open("rb") as stream:
        head = stream.read(512).lstrip()
    if not head.startswith((b"{", b"[")):
        return [read_part10(path)]
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise MappingError(f"{path}: not valid DICOM JSON ({type(error).__name__})") from None
    instances = data if isinstance(data, list) else [data]
    if not all(isinstance(item, dict) for item in instances):
        raise MappingError(f"{path}: DICOM JSON must be an object or a list of objects")
    return instances


def _uid(metadata: DicomJson, tag: str) -> str:
    value = (metadata.get(tag) or {}).get("Value") if isinstance(metadata.get(tag), dict) else None
    first = value[0] if isinstance(value, list) and value else ""
    return first if isinstance(first, str) else ""


def _entry(sequence: int, metadata: DicomJson) -> ChangeEntry:
    return ChangeEntry(
        sequence=sequence,
        action=ChangeAction.CREATE,
        study_uid=_uid(metadata, tags.STUDY_INSTANCE_UID),
        series_uid=_uid(metadata, tags.SERIES_INSTANCE_UID),
        sop_instance_uid=_uid(metadata, tags.SOP_INSTANCE_UID),
        metadata=metadata,
    )


def map_instances(
    instances: list[DicomJson], options: MappingOptions, dicomweb_endpoint: str = DEFAULT_DICOMWEB_ENDPOINT
) -> MapResult:
    """Endpoint, then per study its Patients, ImagingStudy and Observations."""
    dicomweb_endpoint = redact_url(dicomweb_endpoint)  # FHIR never holds credentials
    endpoint = endpoint_resource(dicomweb_endpoint, f"DICOM WADO-RS endpoint {dicomweb_endpoint}", options)
    context = SourceContext(source_uri=dicomweb_endpoint, endpoint_reference=f"Endpoint/{endpoint['id']}")
    result = MapResult(resources=[endpoint])
    studies: dict[str, list[ChangeEntry]] = {}
    for sequence, metadata in enumerate(instances, start=1):
        entry = _entry(sequence, metadata)
        studies.setdefault(entry.study_uid, []).append(entry)
    known: dict[PatientKey, Resource] = {}
    for study_uid, entries in studies.items():
        keys = {k for e in entries for k in patient_keys(e.metadata or {}, options)}
        existing = {key: known[key] for key in keys if key in known}
        output = map_study(StudyInput(study_uid, None, entries, None, existing), context, options)
        listed = {str(r.get("id")) for r in result.resources if r.get("resourceType") == "Patient"}
        for patient in output.patients:
            if str(patient["id"]) not in listed:
                result.resources.append(patient)
            for key in identity_keys(patient):
                known[key] = patient
        if output.imaging_study:
            result.resources.append(output.imaging_study)
        result.resources.extend(output.observations)
        result.warnings.extend(output.warnings)
        result.failures.extend(output.failures)
    return result


def map_paths_with_issues(
    paths: list[Path], options: MappingOptions, dicomweb_endpoint: str = DEFAULT_DICOMWEB_ENDPOINT
) -> MapResult:
    """Like `map_paths`, with the warnings and failures for the CLI to print on stderr."""
    instances: list[DicomJson] = []
    for path in paths:
        instances.extend(read_instances(path))
    return map_instances(instances, options, dicomweb_endpoint)


def map_paths(
    paths: list[Path], options: MappingOptions, dicomweb_endpoint: str = DEFAULT_DICOMWEB_ENDPOINT
) -> list[dict[str, Any]]:
    """The FHIR resources dicomcast would write for these files (Part 10 or DICOM JSON)."""
    return map_paths_with_issues(paths, options, dicomweb_endpoint).resources
