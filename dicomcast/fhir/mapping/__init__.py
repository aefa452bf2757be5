"""Pure DICOM JSON -> FHIR mapping: ImagingStudy, Patient, Endpoint and dose Observations.

No network, database, clock, random ids or logging here: the worker reads what FHIR holds, calls
`map_study`, and writes what comes back. The public surface is exactly these names.
"""

from dicomcast.fhir.mapping.endpoint import endpoint_resource
from dicomcast.fhir.mapping.engine import map_study
from dicomcast.fhir.mapping.ids import resource_id
from dicomcast.fhir.mapping.patient import patient_key
from dicomcast.fhir.mapping.types import (
    EntryFailure,
    FhirVersion,
    MappingOptions,
    MappingWarning,
    PatientKey,
    Resource,
    SourceContext,
    StudyInput,
    StudyOutput,
)

__all__ = [
    "EntryFailure",
    "FhirVersion",
    "MappingOptions",
    "MappingWarning",
    "PatientKey",
    "Resource",
    "SourceContext",
    "StudyInput",
    "StudyOutput",
    "endpoint_resource",
    "map_study",
    "patient_key",
    "resource_id",
]
