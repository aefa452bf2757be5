"""The mapping's inputs and outputs. The mapping is pure: no I/O, no clock, no random ids, no logging.

The worker reads what exists in FHIR, calls `map_study` once per study and page, and writes what
comes back in one transaction. Resources are FHIR JSON dicts, already validated by the
`fhir.resources` model of the server's release (R4B models for R4, R5 models for R5).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar, cast

from dicomcast.dicom.models import ChangeEntry
from dicomcast.failures import EntryFailure, FailureClass
from dicomcast.fhir.mapping.ids import identifier_token

__all__ = ["EntryFailure", "FailureClass"]  # re-exported: the mapping's failures are DICOM ones

Resource = dict[str, Any]
J = TypeVar("J")


_CONTAINERS = (dict, list)  # a tuple: `dict | list` would build a union object at every check


def copied(value: J) -> J:
    """A deep copy of FHIR JSON (dicts, lists and scalars): about three times as fast as
    `copy.deepcopy`, which the mapping paid for every existing ImagingStudy and Patient it merged."""
    if isinstance(value, dict):
        return cast(J, {k: copied(v) if isinstance(v, _CONTAINERS) else v for k, v in value.items()})
    if isinstance(value, list):
        return cast(J, [copied(v) if isinstance(v, _CONTAINERS) else v for v in value])
    return value


class FhirVersion(StrEnum):
    R4 = "R4"
    R5 = "R5"


@dataclass(frozen=True)
class MappingOptions:
    patient_system_id: str | None = None
    is_issuer_id_used: bool = False
    issuer_systems: Mapping[str, str] = field(default_factory=dict)
    default_timezone: str = "+00:00"  # used when TimezoneOffsetFromUTC is absent
    enforce_validation: bool = False
    generate_observations: bool = True
    fhir_version: FhirVersion = FhirVersion.R4


@dataclass(frozen=True)
class SourceContext:
    """Facts about the DICOM source the mapping needs."""

    source_uri: str  # ImagingStudy.meta.source: the public DICOMweb endpoint (owner of a study)
    endpoint_reference: str  # "Endpoint/<id>" of this source's (partition's) Endpoint

    @property
    def service_root(self) -> str:
        """The DICOMweb root of the whole service: a partition's address without `/partitions/<name>`."""
        return service_root(self.source_uri)


def service_root(source_uri: str) -> str:
    return source_uri.split(PARTITIONS)[0]


PARTITIONS = "/partitions/"  # how a DICOMweb address names a data partition (Azure DICOM service)


@dataclass(frozen=True)
class PatientKey:
    """How a Patient is found: identifier system and value (PatientID)."""

    system: str | None
    value: str

    def search_token(self) -> str:
        return identifier_token(self.system, self.value)


@dataclass(frozen=True)
class MappingWarning:
    sequence: int
    tag: str | None
    message: str  # never a value from the data (no PHI): what is wrong and where
    kind: str = ""  # set for the warnings the worker counts (e.g. patient demographics conflicts)


@dataclass(frozen=True)
class StudyInput:
    study_uid: str
    partition: str | None
    entries: Sequence[ChangeEntry]  # this study's entries of the page, in feed order
    existing_study: Resource | None  # the ImagingStudy FHIR holds now (found by identifier), if any
    existing_patients: Mapping[PatientKey, Resource]  # Patients FHIR holds now, by identifier
    existing_observations: Sequence[Resource] = ()  # dose Observations partOf this study


@dataclass
class StudyOutput:
    """What to write for one study. Unchanged resources are left out (None / empty)."""

    imaging_study: Resource | None = None  # to PUT (id set; meta.versionId kept for If-Match)
    delete_imaging_study: Resource | None = None  # the existing study to DELETE (empty and ours)
    patients: list[Resource] = field(default_factory=list)  # new or changed Patients to PUT
    observations: list[Resource] = field(default_factory=list)  # dose Observations to PUT
    delete_observations: list[Resource] = field(default_factory=list)  # Observations to DELETE
    failures: list[EntryFailure] = field(default_factory=list)
    warnings: list[MappingWarning] = field(default_factory=list)
