"""The change-feed entry model, in the DICOM service's own words, shared by every source."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from dicomcast.dicom import tags

DicomJson = dict[str, Any]  # one instance's DICOM JSON object (PS3.18 F.2), tags as upper-case hex

UNKNOWN_SEQUENCE = -1  # the sequence of an entry whose own sequence could not be read
MAX_SEQUENCE = 2**63 - 1  # feed sequences are 64-bit (the Azure service's bigint)
MAX_UID_LENGTH = 64
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_CUT = "..."
_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")
# Every tag the mapping reads: each reader names its tags by the constants of dicom/tags.py.
MAPPED_TAGS = frozenset(value for name, value in vars(tags).items() if name.isupper() and isinstance(value, str))


def is_uid(value: str) -> bool:
    """A DICOM UI value: digits and dots, at most 64 characters (safe in URLs and FHIR ids)."""
    return len(value) <= MAX_UID_LENGTH and bool(_UID.match(value))


def recordable_uid(value: object) -> str:
    """What of a UID may be stored with a failure: a valid UID as is; one too long cut with `...`;
    anything else '' (text that is not a UID may be anything, PHI included)."""
    if not isinstance(value, str):
        return ""
    text = value.strip(" \x00")
    if is_uid(text) or (len(text) <= MAX_UID_LENGTH and text.endswith(_CUT) and _UID.match(text[:-3])):
        return text  # a UID, or one cut here already
    if _UID.match(text):
        return text[: MAX_UID_LENGTH - len(_CUT)] + _CUT
    return ""


def metadata_problem(metadata: dict[str, Any]) -> str | None:
    """Why a DICOM JSON object cannot be one instance's metadata (PS3.18 F.2), or None. Names the
    tag, never the value. Checked once where metadata enters, so later readers meet objects only."""
    for tag, element in metadata.items():
        if not isinstance(element, dict) and element is not None:
            name = tag if _TAG.match(str(tag)) else "(a key that is no tag)"
            return f"metadata element {name} is not a JSON object"
    return None


def mapped_elements(metadata: DicomJson) -> DicomJson:
    """Of one instance's metadata, only the top-level elements the mapping reads (MAPPED_TAGS), each
    whole. Sources keep this instead of all of it: entries wait in pages read ahead and in studies
    held back, and a CT image's 257 elements (110 KB parsed) leave 26. Call it after
    metadata_problem, so that an element the mapping never reads is still checked."""
    if MAPPED_TAGS.issuperset(metadata):
        return metadata
    return {tag: element for tag, element in metadata.items() if tag in MAPPED_TAGS}


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
class UnreadableEntry:
    """A feed entry the source could not read: it becomes one failure row and the source moves past
    it. Holds what could be read of it (`recordable_uid`), and a reason that names fields, never values."""

    sequence: int  # UNKNOWN_SEQUENCE when unreadable
    reason: str
    study_uid: str = ""
    series_uid: str = ""
    sop_instance_uid: str = ""
    partition: str | None = None
    action: str = "unknown"

    def describe(self) -> str:
        sequence = "unknown" if self.sequence == UNKNOWN_SEQUENCE else str(self.sequence)
        return (
            f"sequence {sequence} {self.action} study {self.study_uid or '?'} "
            f"series {self.series_uid or '?'} instance {self.sop_instance_uid or '?'}"
        )


@dataclass(frozen=True)
class Page:
    """A page of the feed and the cursor to store once every entry of it is handled."""

    entries: Sequence[ChangeEntry]
    next_cursor: str
    caught_up: bool  # nothing newer was known when the page was read
    skipped: Sequence[tuple[ChangeEntry, str]] = field(default_factory=tuple)  # (entry, why) not to map
    unreadable: Sequence[UnreadableEntry] = field(default_factory=tuple)  # each one failure row
    # A batch of pages (worker/readahead.py): (n, cursor) at each page's end, n the entries before
    # it, so a checkpoint can stop between pages (worker/study_cut.py). Empty: one page.
    boundaries: Sequence[tuple[int, str]] = field(default_factory=tuple)
    size: int = 0  # bytes of JSON read to make it (worker/loop.py measures it; 0: not measured)

    def by_study(self) -> dict[tuple[str | None, str], list[ChangeEntry]]:
        return by_study(self.entries)


def by_study(entries: Sequence[ChangeEntry]) -> dict[tuple[str | None, str], list[ChangeEntry]]:
    """Entries grouped by (partition, study), each group in feed order."""
    groups: dict[tuple[str | None, str], list[ChangeEntry]] = {}
    for entry in entries:
        groups.setdefault((entry.partition, entry.study_uid), []).append(entry)
    return groups


@dataclass(frozen=True)
class FeedPosition:
    """Where the feed ends now, for lag metrics: the newest sequence and its time, if known."""

    sequence: int | None
    timestamp: datetime | None


class CursorKind(StrEnum):
    SEQUENCE = "sequence"  # the last feed sequence read, as a number (Azure v1, Orthanc)
    FEED_POSITION = "feed position"  # `<sequence>@<timestamp>#<n>`: a place in the feed's time order (Azure v2)


@dataclass(frozen=True)
class SourceTraits:
    """What a source is and can do, so that the worker asks instead of testing which source it is."""

    kind: str  # in words for operators: "Azure change feed v2", "Orthanc /changes"
    api_version: int | None  # the change feed's API version (Azure: 1 or 2); None when it has none
    partitions: bool  # instances may live in data partitions (one Endpoint per partition)
    cursor_kind: CursorKind


class DicomWebSource(Protocol):
    """The DICOMweb reads reconciliation makes of a source (dicom/inventory.py)."""

    name: str

    def dicomweb_json(self, path: str, params: dict[str, str] | None = None, partition: str | None = None) -> Any:
        """The JSON answer of a DICOMweb GET; None for an explicit 404/410, [] for a search's 204."""
        ...

    def partitions_in_use(self) -> list[str | None]: ...

    def endpoint_address(self, partition: str | None) -> str: ...


class DeletionCheck(DicomWebSource, Protocol):
    """What the worker's deletion pass asks of a source whose feed loses deletions (worker/reconcile.py):
    two counts each poll, and QIDO-RS (dicom/inventory.py) when they disagree."""

    def instance_count(self) -> int:
        """How many instances the server holds now."""
        ...

    def new_instance_changes(self, since: int) -> int | None:
        """How many new-instance changes follow sequence `since`; None when too many to count at once."""
        ...


class CheckpointCarryOver(Protocol):
    """What a source offers whose first checkpoint may be carried over from elsewhere instead of
    starting at the feed's start (worker/carry_over.py): from its predecessor in the store, or from
    DICOM Cast's Table Storage, whose `SyncedSequence` is a sequence of the feed."""

    predecessor: str | None  # the source (name) whose checkpoint this one continues; None if none

    def predecessor_sequence(self, cursor: str) -> int:
        """The feed sequence the predecessor's checkpoint `cursor` stands at."""
        ...

    def cursor_after_sequence(self, sequence: int) -> str | None:
        """This source's cursor meaning "every entry up to `sequence` is handled"; None: the start."""
        ...


class ChangeSource(Protocol):
    """What the worker needs from a DICOM server. Cursors are opaque strings each source defines."""

    name: str  # identifies the source's checkpoint; stable across restarts
    traits: SourceTraits

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

    def cursor_sequence(self, cursor: str | None) -> int | None:
        """The feed sequence a cursor of this source stands at (the checkpoint metric); None if unknown."""
        ...

    def deletion_check(self) -> DeletionCheck | None:
        """None when the feed reports every deletion itself; else what reconciliation asks (Orthanc)."""
        ...

    def dicomweb(self) -> DicomWebSource | None:
        """The DICOMweb (QIDO-RS, WADO-RS) reads `dicomcast reconcile` makes; None when it has none."""
        ...

    def carry_over(self) -> CheckpointCarryOver | None:
        """None when a source without a checkpoint starts at its feed's start; else how it can
        continue a checkpoint kept elsewhere (Azure: its v1 feed's, DICOM Cast's)."""
        ...

    def close(self) -> None: ...
