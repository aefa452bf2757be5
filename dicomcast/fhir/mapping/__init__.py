"""Pure DICOM JSON -> FHIR mapping."""
