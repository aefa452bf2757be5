"""Checkpoint cursors of the Azure change feed.

v1: the last sequence read, as a number (`"42"`).

v2: `"<sequence>@<timestamp>#<n>"`: the last entry read, in feed order (Timestamp, Sequence), and how
many rows at that timestamp precede it or are it. The next read starts at that timestamp
(`startTime` is inclusive) with `offset=n`, so rows of the same timestamp are neither skipped nor
read again; rows at or before the cursor that still come back (a late commit at that timestamp
shifts positions by one) are dropped by key. `n` is only an optimisation: 0 is always safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dicomcast.dicom.azure_entries import EntryFormatError, FeedKey, parse_ticks
from dicomcast.errors import ConfigError


@dataclass(frozen=True)
class TimeCursor:
    key: FeedKey
    rows_at_timestamp: int = 0

    def __str__(self) -> str:
        return f"{self.key.sequence}@{self.key.timestamp}#{self.rows_at_timestamp}"

    def describe(self) -> str:
        return f"sequence {self.key.sequence} at {self.key.timestamp}"


def parse_time_cursor(text: str) -> TimeCursor:
    position, _, count = text.partition("#")
    sequence, _, stamp = position.partition("@")
    try:
        return TimeCursor(FeedKey(parse_ticks(stamp), int(sequence)), int(count or 0))
    except (ValueError, EntryFormatError):
        raise ConfigError(
            [
                f"checkpoint cursor {text!r} is not a v2 change-feed position (sequence@timestamp); "
                "was DicomWeb:Endpoint changed from /v1 to /v2?"
            ]
        ) from None


def parse_sequence_cursor(text: str | None) -> int:
    if not text:
        return 0
    try:
        sequence = int(text)
    except ValueError:
        raise ConfigError(
            [
                f"checkpoint cursor {text!r} is not a v1 change-feed sequence; "
                "was DicomWeb:Endpoint changed from /v2 to /v1?"
            ]
        ) from None
    if sequence < 0:
        raise ConfigError([f"checkpoint cursor {text!r} is negative"])
    return sequence


def advance(
    after: TimeCursor | None, offset: int, keys: Sequence[FeedKey | None], *, start: FeedKey
) -> TimeCursor | None:
    """The cursor after rows `keys` were read at `offset` of a window starting at `after`'s timestamp
    (`start` when there is no cursor yet). None when nothing lies beyond `after`.

    A None key is an unreadable row (its failure is recorded): it never becomes the cursor's key,
    but rows that follow the last readable one are stepped over by position (the count), so the
    next read does not meet them again. Positions only shift later (rows are never removed from
    the feed; a late commit inserts), so a count can at worst re-read a row, never skip one.
    """
    readable = [(key, index) for index, key in enumerate(keys) if key is not None]
    last, index = max(readable, default=(None, -1))
    if last is None or (after is not None and last <= after.key):
        if not keys or len(readable) == len(keys):
            return None
        # only unreadable rows (and rows read before) in the page: step over them by position
        base = after or TimeCursor(start)
        return TimeCursor(base.key, offset + len(keys))
    trailing = len(keys) - index - 1  # unreadable rows after the last readable one
    if after is not None and last.ticks == after.key.ticks:
        # the window starts at this timestamp: every row before position offset + index is at it
        return TimeCursor(last, offset + len(keys))
    return TimeCursor(last, sum(1 for key in keys[: index + 1] if key and key.ticks == last.ticks) + trailing)
