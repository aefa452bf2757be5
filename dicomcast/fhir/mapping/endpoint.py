"""The source's Endpoint: where a viewer fetches the study's images (DICOMweb WADO-RS)."""

from __future__ import annotations

from dicomcast.fhir.mapping.ids import resource_id
from dicomcast.fhir.mapping.terminology import ENDPOINT_CONNECTION_TYPE
from dicomcast.fhir.mapping.types import FhirVersion, MappingOptions, Resource
from dicomcast.fhir.mapping.validate import validated


def endpoint_resource(address: str, name: str, options: MappingOptions) -> Resource:
    """An active `dicom-wado-rs` Endpoint at `address` (the DICOMweb root, no trailing slash)."""
    connection = {"system": ENDPOINT_CONNECTION_TYPE, "code": "dicom-wado-rs"}
    endpoint: Resource = {
        "resourceType": "Endpoint",
        "id": resource_id("Endpoint", address),
        "status": "active",
        # R4: connectionType is one Coding; R5: a list of CodeableConcepts.
        "connectionType": [{"coding": [connection]}] if options.fhir_version is FhirVersion.R5 else connection,
        "name": name,
        "payloadType": [{"text": "DICOM WADO-RS"}],
        "payloadMimeType": ["application/dicom"],
        "address": address,
    }
    if options.fhir_version is FhirVersion.R5:
        # R5 moved payloadType/payloadMimeType into `payload`.
        del endpoint["payloadType"], endpoint["payloadMimeType"]
        endpoint["payload"] = [{"type": [{"text": "DICOM WADO-RS"}], "mimeType": ["application/dicom"]}]
    return validated(endpoint, options.fhir_version)
