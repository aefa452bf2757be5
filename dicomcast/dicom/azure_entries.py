"""Reading the Azure DICOM service's change-feed entries and timestamps.

The service writes camelCase keys and omits nulls although its documentation shows PascalCase, and
its enum text may be `Create` or `create` (or the numbers 0..2): everything is matched without
regard to case. Timestamps carry up to 7 fractional digits (.NET ticks of 100 ns); Python's datetime
keeps 6, so the feed order is kept in `FeedKey`, which holds the exact ticks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from dicomcast.dicom.models import (
    MAX_SEQUENCE,
    UNKNOWN_SEQUENCE,
    ChangeAction,
    ChangeEntry,
    ChangeState,
    UnreadableEntry,
    is_uid,
    mapped_elements,
    metadata_problem,
    recordable_uid,
)

DEFAULT_PARTITION = "Microsoft.Default"  # the partition of every instance when partitions are off

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TIMESTAMP = re.compile(
    r"^(?P<base>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?)(?:[.,](?P<fraction>\d+))?"
    r"(?P<zone>Z|[+-]\d{2}(?::?\d{2})?)?$",
    re.IGNORECASE,
)
_ELEMENT_TYPES = frozenset({dict, type(None)})  # what metadata_problem accepts as an element, exactly
_PARTITION_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")  # the service's own rule for partition names
# Enum numbers of the service's ChangeFeedAction / ChangeFeedState.
_ACTIONS = {
    "create": ChangeAction.CREATE,
    "0": ChangeAction.CREATE,
    "delete": ChangeAction.DELETE,
    "1": ChangeAction.DELETE,
    "update": ChangeAction.UPDATE,
    "2": ChangeAction.UPDATE,
}
_STATES = {
    "current": ChangeState.CURRENT,
    "0": ChangeState.CURRENT,
    "replaced": ChangeState.REPLACED,
    "1": ChangeState.REPLACED,
    "deleted": ChangeState.DELETED,
    "2": ChangeState.DELETED,
}


class EntryFormatError(ValueError):
    """A change-feed entry that cannot be read. The message names fields, never their values."""


@dataclass(frozen=True, order=True)
class FeedKey:
    """The position of an entry in the v2 feed order: (Timestamp in 100 ns ticks, Sequence)."""

    ticks: int
    sequence: int

    @property
    def timestamp(self) -> str:
        return format_ticks(self.ticks)


@dataclass(frozen=True)
class FeedEntry:
    """A parsed entry with what the source needs beyond `ChangeEntry`."""

    entry: ChangeEntry
    key: FeedKey
    partition_name: str | None  # as the service wrote it (`Microsoft.Default` when partitions are off)


@lru_cache(maxsize=1024)  # a page's rows are read twice (their keys, then the entries)
def parse_ticks(text: str) -> int:
    """An ISO 8601 timestamp as 100 ns ticks since 1970 UTC; no offset means UTC."""
    match = _TIMESTAMP.match(text.strip()) if len(text) <= 64 else None
    if not match:
        raise EntryFormatError("timestamp is not ISO 8601")
    fraction = (match["fraction"] or "").ljust(7, "0")[:7]
    return _whole_ticks(match["base"], match["zone"]) + int(fraction)


@lru_cache(maxsize=256)  # rows of a busy feed share their second: its date arithmetic is done once
def _whole_ticks(base_text: str, zone_text: str | None) -> int:
    """The ticks of a timestamp's whole seconds (parse_ticks' `base` and `zone`)."""
    try:
        base = datetime.fromisoformat(base_text.replace(" ", "T")).replace(tzinfo=UTC)
        zone = (zone_text or "Z").upper()
        if zone != "Z":
            sign = -1 if zone[0] == "-" else 1
            digits = zone[1:].replace(":", "")
            offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
            base -= sign * offset
    except (ValueError, OverflowError):  # 2024-02-30, 25:00, a year 0 or past 9999 once shifted
        raise EntryFormatError("timestamp is not a calendar date and time") from None
    return (base - _EPOCH) // timedelta(microseconds=1) * 10


def format_ticks(ticks: int) -> str:
    """Ticks as the service's own format, UTC with 7 fractional digits and `Z`."""
    moment = _EPOCH + timedelta(microseconds=ticks // 10)
    # %Y does not pad years below 1000 on every platform; the feed's own start is year 1.
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}.{moment.microsecond:06d}{ticks % 10}Z"


def ticks_of(moment: datetime) -> int:
    return (moment.astimezone(UTC) - _EPOCH) // timedelta(microseconds=1) * 10


def datetime_of(ticks: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ticks // 10)


def lower_keys(raw: dict[str, Any]) -> dict[str, Any]:
    return {str(key).lower(): value for key, value in raw.items()}


_NAMES = {  # for messages: the service's own spelling of the lower-cased keys
    "studyinstanceuid": "studyInstanceUid",
    "seriesinstanceuid": "seriesInstanceUid",
    "sopinstanceuid": "sopInstanceUid",
}


def _uid(fields: dict[str, Any], key: str) -> str:
    value = fields.get(key)
    key = _NAMES.get(key, key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise EntryFormatError(f"{key} is missing")
    if not isinstance(value, str):
        raise EntryFormatError(f"{key} is not a JSON string")
    text = value.strip(" \x00")
    if not is_uid(text):
        raise EntryFormatError(f"{key} is not a valid UID ({len(text)} characters; digits and dots, at most 64)")
    return text


def _enum(fields: dict[str, Any], key: str, table: dict[str, Any], default: Any = None) -> Any:
    value = fields.get(key)
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise EntryFormatError(f"{key} is missing or not a JSON string")
    member = table.get(str(value).strip().lower())
    if member is None:
        raise EntryFormatError(f"{key} is not one of {', '.join(sorted({m.value for m in table.values()}))}")
    return member


def _partition(fields: dict[str, Any]) -> str | None:
    value = fields.get("partitionname")
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _PARTITION_NAME.match(value):
        raise EntryFormatError("partitionName is not a partition name (letters, digits, . _ -; at most 64)")
    return value


def _metadata(fields: dict[str, Any]) -> dict[str, Any] | None:
    value = fields.get("metadata")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise EntryFormatError("metadata is not a JSON object")
    # Every element an object or null, seen in C; else metadata_problem walks it and says which.
    if not _ELEMENT_TYPES.issuperset(map(type, value.values())):
        problem = metadata_problem(value)
        if problem:
            raise EntryFormatError(problem)
    return mapped_elements(value) if value else None


def parse_sequence(raw: Any) -> int:
    """The entry's sequence, or an error; used alone to report an unreadable entry."""
    return sequence_of(lower_keys(raw) if isinstance(raw, dict) else {})


def sequence_of(fields: dict[str, Any]) -> int:
    """`parse_sequence` of an entry whose keys are lower-cased already (lower_keys)."""
    value = fields.get("sequence")
    if value is None:
        raise EntryFormatError("sequence is missing")
    if isinstance(value, bool) or not isinstance(value, int | str) or (isinstance(value, str) and len(value) > 20):
        raise EntryFormatError("sequence is not a whole number")
    try:
        number = int(value)
    except ValueError:
        raise EntryFormatError("sequence is not a whole number") from None
    if not 0 < number <= MAX_SEQUENCE:
        raise EntryFormatError("sequence is out of range (1 to 2^63-1)")
    return number


def parse_entry(raw: Any) -> FeedEntry:
    """One entry of `/changefeed` or `/changefeed/latest`, keys and enum values in any case.

    Total: whatever `raw` holds, the only exception is EntryFormatError."""
    if not isinstance(raw, dict):
        raise EntryFormatError("entry is not a JSON object")
    fields = lower_keys(raw)
    sequence = sequence_of(fields)
    stamp = fields.get("timestamp")
    if stamp is not None and not isinstance(stamp, str):
        raise EntryFormatError("timestamp is not a JSON string")
    ticks = parse_ticks(stamp) if stamp is not None else 0
    entry = ChangeEntry(
        sequence=sequence,
        action=_enum(fields, "action", _ACTIONS),
        study_uid=_uid(fields, "studyinstanceuid"),
        series_uid=_uid(fields, "seriesinstanceuid"),
        sop_instance_uid=_uid(fields, "sopinstanceuid"),
        state=_enum(fields, "state", _STATES, default=ChangeState.CURRENT),
        timestamp=datetime_of(ticks) if stamp is not None else None,
        partition=_partition(fields),
        metadata=_metadata(fields),
    )
    return FeedEntry(entry=entry, key=FeedKey(ticks, sequence), partition_name=entry.partition)


def unreadable_entry(raw: Any, reason: str) -> UnreadableEntry:
    """What can be told of an entry that `parse_entry` refused, for its failure row."""
    fields = lower_keys(raw) if isinstance(raw, dict) else {}
    try:
        sequence = parse_sequence(raw)
    except EntryFormatError:
        sequence = UNKNOWN_SEQUENCE
    try:
        action = _enum(fields, "action", _ACTIONS).value
    except EntryFormatError:
        action = "unknown"
    try:
        partition = _partition(fields)
    except EntryFormatError:
        partition = None
    return UnreadableEntry(
        sequence=sequence,
        reason=reason,
        study_uid=recordable_uid(fields.get("studyinstanceuid")),
        series_uid=recordable_uid(fields.get("seriesinstanceuid")),
        sop_instance_uid=recordable_uid(fields.get("sopinstanceuid")),
        partition=partition,
        action=action,
    )
