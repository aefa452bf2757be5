"""Checkpoints carried between Azure change-feed versions, and from DICOM Cast.

A v1 position is a sequence S: every entry with a sequence up to S is handled. DICOM Cast's
`SyncedSequence` is one too (it read v1). v2 reads in (Timestamp, Sequence) order, which is not
quite sequence order: a row's Timestamp is set before its commit, so rows of concurrent writes may
commit, and get sequences, in another order than their timestamps.

The v2 cursor for S is therefore found on the feed itself: the entry with the largest sequence at
or before S (read through v1) gives a time T; the v2 rows from `T - COMMIT_MARGIN` on, in v2 order,
are walked up to the first row with a sequence above S, and the cursor is the row before it. No row
after S is skipped; a row at or before S that sorts after such a row is read again (harmless, and
rare: only rows committed out of timestamp order).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Protocol

from dicomcast.dicom.azure_cursor import TimeCursor, parse_sequence_cursor
from dicomcast.dicom.azure_entries import EntryFormatError, FeedKey, lower_keys, parse_sequence, parse_ticks
from dicomcast.dicom.azure_http import V1_MAX_LIMIT, V2_MAX_LIMIT, ServiceRoot
from dicomcast.errors import PermanentUpstreamError, TransientUpstreamError
from dicomcast.urls import redact_url

COMMIT_MARGIN = timedelta(minutes=5)  # far beyond any commit delay; only costs a few more rows read
MAX_V1_PAGES_BACK = 200  # how far (x 100 sequences) to look back for an entry at or before S
_TICKS_PER_SECOND = 10_000_000


class ServiceFeeds(Protocol):
    """The Azure source as the hand-over reads it (AzureChangeFeedSource, which builds the carry-over)."""

    version: int
    public: ServiceRoot

    def feed_json(self, version: int, path: str, params: dict[str, str]) -> Any: ...


class AzureCarryOver:
    """`CheckpointCarryOver` of an Azure source: a v2 source continues the same service's v1 checkpoint."""

    def __init__(self, source: ServiceFeeds) -> None:
        self.source = source
        v1_url = redact_url(source.public.with_version(1).url)
        self.predecessor = f"azure:{v1_url}" if source.version != 1 else None  # as the v1 source names itself

    def predecessor_sequence(self, cursor: str) -> int:
        return parse_sequence_cursor(cursor)

    def cursor_after_sequence(self, sequence: int) -> str | None:
        return cursor_after_sequence(self.source, sequence)


def cursor_after_sequence(source: ServiceFeeds, sequence: int) -> str | None:
    """The source's cursor that means "every entry up to v1 sequence `sequence` is handled";
    None is the start of the feed."""
    if sequence <= 0:
        return None
    if source.version == 1:
        return str(sequence)
    anchor = _last_key_at_or_before(source, sequence)
    return None if anchor is None else str(_v2_cursor(source, sequence, anchor))


def latest_cursor(source: ServiceFeeds) -> str | None:
    """The cursor at the feed's current end (every entry there now counts as handled)."""
    body = source.feed_json(1, "/changefeed/latest", {})
    sequence = _key(body).sequence if isinstance(body, dict) else 0
    return cursor_after_sequence(source, sequence)


def _last_key_at_or_before(source: ServiceFeeds, sequence: int) -> FeedKey | None:
    """Through v1 (`offset` is exclusive, `limit` caps the sequence): sequences have gaps."""
    high = sequence
    for _ in range(MAX_V1_PAGES_BACK):
        low = max(0, high - V1_MAX_LIMIT)
        keys = [
            key
            for key in _keys(_rows(source, 1, {"offset": str(low), "limit": str(high - low)}))
            if key.sequence <= sequence
        ]
        if keys:
            return max(keys, key=lambda key: key.sequence)
        if low == 0:
            return None
        high = low
    raise PermanentUpstreamError(
        "DICOMweb",
        f"no change-feed entry between sequence {high} and {sequence}: the checkpoint cannot be placed "
        "in the v2 feed; use `dicomcast checkpoint set` with a v2 cursor",
    )


def _v2_cursor(source: ServiceFeeds, sequence: int, anchor: FeedKey) -> TimeCursor:
    start = FeedKey(anchor.ticks - int(COMMIT_MARGIN.total_seconds() * _TICKS_PER_SECOND), 0)
    done: list[FeedKey] = []  # the rows of the window handled already, in v2 order
    offset = 0
    while True:
        params = {"startTime": start.timestamp, "offset": str(offset), "limit": str(V2_MAX_LIMIT)}
        rows = _rows(source, 2, params)
        for key in _keys(rows):
            if key.sequence > sequence:  # the first row not handled: the cursor stops before it
                return _after(done) if done else TimeCursor(FeedKey(key.ticks, key.sequence - 1))
            done.append(key)
        if len(rows) < V2_MAX_LIMIT:
            return _after(done) if done else TimeCursor(start)
        offset += len(rows)


def _after(done: list[FeedKey]) -> TimeCursor:
    """After the last handled row, with the count of rows at its timestamp (all of them are in the
    window, which starts well before it): the next read skips them by offset instead of re-reading."""
    last = done[-1]
    return TimeCursor(last, sum(1 for key in done if key.ticks == last.ticks))


def _rows(source: ServiceFeeds, version: int, params: dict[str, str]) -> list[Any]:
    body = source.feed_json(version, "/changefeed", params)
    if body is None:
        return []
    if not isinstance(body, list):
        raise TransientUpstreamError("DICOMweb", f"/v{version}/changefeed did not answer a JSON array")
    return body


def _keys(rows: list[Any]) -> list[FeedKey]:
    """Readable positions only: a row without a sequence or timestamp cannot place a cursor."""
    return [key for key in map(_key, rows) if key.sequence > 0]


def _key(row: Any) -> FeedKey:
    try:
        stamp = lower_keys(row).get("timestamp") if isinstance(row, dict) else None
        return FeedKey(parse_ticks(str(stamp)), parse_sequence(row))
    except EntryFormatError:
        return FeedKey(0, 0)
