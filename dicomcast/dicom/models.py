"""The change-feed entry model, in the DICOM service's own words, shared by every source."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

DicomJson = dict[str, Any]  # one instance's DICOM JSON object (PS3.18 F.2), tags as upper-case hex


class ChangeAction(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


class ChangeState(StrEnum):
    """The instance's *current* state, not its state when the change happened."""

    CURRENT = "current"
    REPLACED = "replaced"
    DELETED = "deleted"


@dataclass(frozen=True)
class ChangeEntry:
    """One change of one instance, from any source."""

    sequence: int
    action: ChangeAction
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    state: ChangeState = ChangeState.CURRENT
    timestamp: datetime | None = None
    partition: str | None = None
    metadata: DicomJson | None = None

    def describe(self) -> str:
        """Identifies the entry in logs and errors: sequence and UIDs only, never PHI."""
        return (
            f"sequence {self.sequence} {self.action.value} study {self.study_uid} "
            f"series {self.series_uid} instance {self.sop_instance_uid}"
        )


@dataclass(frozen=True)
class Page:
    """A page of the feed and the cursor to store once every entry of it is handled."""

    entries: Sequence[ChangeEntry]
    next_cursor: str
    caught_up: bool  # nothing newer was known when the page was read
    skipped: Sequence[tuple[ChangeEntry, str]] = field(default_factory=tuple)  # (entry, why) not to map

    def by_study(self) -> dict[tuple[str | None, str], list[ChangeEntry]]:
        """Entries grouped by (partition, study), each group in feed order."""
        groups: dict[tuple[str | None, str], list[ChangeEntry]] = {}
        for entry in self.entries:
            groups.setdefault((entry.partition, entry.study_uid), []).append(entry)
        return groups


@dataclass(frozen=True)
class FeedPosition:
    """Where the feed ends now, for lag metrics: the newest sequence and its time, if known."""

    sequence: int | None
    timestamp: datetime | None


class ChangeSource(Protocol):
    """What the worker needs from a DICOM server. Cursors are opaque strings each source defines."""

    name: str  # identifies the source's checkpoint; stable across restarts

    def read_page(self, cursor: str | None) -> Page:
        """The entries after `cursor` (None: from the start), with metadata where it exists."""
        ...

    def read_metadata(self, entry: ChangeEntry) -> DicomJson | None:
        """The instance's current DICOM JSON (WADO-RS), or None when the instance is gone."""
        ...

    def endpoint_address(self, partition: str | None) -> str:
        """The DICOMweb root a viewer uses for this partition (FHIR Endpoint.address)."""
        ...

    def latest(self) -> FeedPosition:
        """The end of the feed now."""
        ...

    def describe_cursor(self, cursor: str | None) -> str:
        """The cursor in words for operators (`sequence 42`)."""
        ...

    def close(self) -> None: ...
