"""`dicomcast reconcile`: compare FHIR with each DICOM source, report the differences, repair them.

dicom/inventory.py (QIDO-RS/WADO-RS reads) → compare.py (pure) → plan.py (the mapping, no writes) →
repair.py (the sync's write path) ; run.py orders them per chunk; state.py keeps lease and resume
point; progress.py shows how far it got.
"""
