"""Pure DICOM JSON -> FHIR mapping: ImagingStudy, Patient, Endpoint and dose Observations.

No network, database, clock, random ids or logging here: the worker reads what FHIR holds, calls
`map_study`, and writes what comes back. The public surface is exactly these names.
"""

from dicomcast.fhir.mapping.endpoint import endpoint_resource
from dicomcast.fhir.mapping.engine import map_study
from dicomcast.fhir.mapping.ids import resource_id
from dicomcast.fhir.mapping.patient import identity_keys, patient_key, patient_keys
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
from dicomcast.fhir.mapping.validate import load_models

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
    "identity_keys",
    "load_models",
    "map_study",
    "patient_key",
    "patient_keys",
    "resource_id",
]
