"""A change entry that cannot be synced as is, and why: one record from the mapping through the
worker to the store (a `failures` row) and `dicomcast failures`. The rest of the page goes on."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from dicomcast.dicom.models import ChangeEntry, UnreadableEntry


class FailureClass(StrEnum):
    """Where an entry failed; the `failure_class` column and the `--class` filter use these words."""

    FEED = "feed"  # the source could not read the feed entry (an UnreadableEntry)
    DICOM = "dicom"  # its data cannot become valid FHIR (a patient identity conflict included)
    FHIR = "fhir"  # the FHIR server refused the write for good (4xx other than 408/409/412/429)


@dataclass(frozen=True)
class EntryFailure:
    entry: ChangeEntry | UnreadableEntry
    failure_class: FailureClass
    reason: str  # names fields and statuses, never values (no PHI)
