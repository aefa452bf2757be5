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
from typing import Any

from dicomcast.dicom.models import ChangeAction, ChangeEntry, ChangeState

DEFAULT_PARTITION = "Microsoft.Default"  # the partition of every instance when partitions are off

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TIMESTAMP = re.compile(
    r"^(?P<base>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?)(?:[.,](?P<fraction>\d+))?"
    r"(?P<zone>Z|[+-]\d{2}(?::?\d{2})?)?$",
    re.IGNORECASE,
)
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
    """A change-feed entry that cannot be read. The message holds no PHI."""


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


def parse_ticks(text: str) -> int:
    """An ISO 8601 timestamp as 100 ns ticks since 1970 UTC; no offset means UTC."""
    match = _TIMESTAMP.match(text.strip())
    if not match:
        raise EntryFormatError(f"timestamp {text!r} is not ISO 8601")
    base = datetime.fromisoformat(match["base"].replace(" ", "T")).replace(tzinfo=UTC)
    zone = (match["zone"] or "Z").upper()
    if zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        base -= sign * offset
    fraction = (match["fraction"] or "").ljust(7, "0")[:7]
    return (base - _EPOCH) // timedelta(microseconds=1) * 10 + int(fraction)


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


def _uid(fields: dict[str, Any], key: str) -> str:
    value = fields.get(key)
    if not isinstance(value, str) or not value.strip():
        raise EntryFormatError(f"{key} is missing")
    return value.strip()


def _enum(fields: dict[str, Any], key: str, table: dict[str, Any], default: Any = None) -> Any:
    value = fields.get(key)
    if value is None and default is not None:
        return default
    member = table.get(str(value).strip().lower())
    if member is None:
        raise EntryFormatError(f"{key} {value!r} is not known")
    return member


def parse_sequence(raw: Any) -> int:
    """The entry's sequence, or an error; used alone to report an unreadable entry."""
    fields = lower_keys(raw) if isinstance(raw, dict) else {}
    value = fields.get("sequence")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise EntryFormatError("sequence is missing")
    try:
        return int(value)
    except ValueError as error:
        raise EntryFormatError(f"sequence {value!r} is not a number") from error


def parse_entry(raw: Any) -> FeedEntry:
    """One entry of `/changefeed` or `/changefeed/latest`, keys and enum values in any case."""
    if not isinstance(raw, dict):
        raise EntryFormatError("entry is not a JSON object")
    fields = lower_keys(raw)
    sequence = parse_sequence(raw)
    stamp = fields.get("timestamp")
    ticks = parse_ticks(stamp) if isinstance(stamp, str) else 0
    metadata = fields.get("metadata")
    partition = fields.get("partitionname")
    entry = ChangeEntry(
        sequence=sequence,
        action=_enum(fields, "action", _ACTIONS),
        study_uid=_uid(fields, "studyinstanceuid"),
        series_uid=_uid(fields, "seriesinstanceuid"),
        sop_instance_uid=_uid(fields, "sopinstanceuid"),
        state=_enum(fields, "state", _STATES, default=ChangeState.CURRENT),
        timestamp=datetime_of(ticks) if isinstance(stamp, str) else None,
        partition=partition if isinstance(partition, str) and partition else None,
        metadata=metadata if isinstance(metadata, dict) and metadata else None,
    )
    return FeedEntry(entry=entry, key=FeedKey(ticks, sequence), partition_name=entry.partition)
