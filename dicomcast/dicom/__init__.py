"""DICOM side: change-feed sources (Azure, Orthanc), the entry model and DICOM JSON readers."""
