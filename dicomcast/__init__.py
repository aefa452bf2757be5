"""dicomcast: keeps a FHIR server in step with a DICOM server's change feed."""

__version__ = "0.1.0"
