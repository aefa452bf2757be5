"""Cursor text and the row count that lets a v2 read resume by offset."""

from __future__ import annotations

import pytest

from dicomcast.dicom.azure_cursor import TimeCursor, advance, parse_sequence_cursor, parse_time_cursor
from dicomcast.dicom.azure_entries import FeedKey
from dicomcast.errors import ConfigError

START = FeedKey(0, 0)


def test_time_cursor_round_trips() -> None:
    cursor = TimeCursor(FeedKey(17_000_000_000_000_001, 42), 3)
    assert parse_time_cursor(str(cursor)) == cursor
    assert str(cursor).startswith("42@") and str(cursor).endswith("#3")
    assert parse_time_cursor("42@2026-01-01T00:00:00Z").rows_at_timestamp == 0


@pytest.mark.parametrize("text", ["42", "x@2026-01-01T00:00:00Z", "1@never"])
def test_bad_time_cursors(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_time_cursor(text)


def test_sequence_cursors() -> None:
    assert parse_sequence_cursor(None) == 0
    assert parse_sequence_cursor("17") == 17
    for text in ("-1", "1@x"):
        with pytest.raises(ConfigError):
            parse_sequence_cursor(text)


def test_advance_counts_rows_at_the_new_timestamp() -> None:
    keys = [FeedKey(1, 5), FeedKey(2, 3), FeedKey(2, 4)]
    assert advance(None, 0, keys, start=START) == TimeCursor(FeedKey(2, 4), 2)


def test_advance_within_the_cursor_timestamp_adds_the_offset() -> None:
    after = TimeCursor(FeedKey(2, 4), 2)
    assert advance(after, 2, [FeedKey(2, 6), FeedKey(2, 9)], start=START) == TimeCursor(FeedKey(2, 9), 4)
    assert advance(after, 2, [FeedKey(2, 6), FeedKey(3, 1)], start=START) == TimeCursor(FeedKey(3, 1), 1)


def test_advance_without_progress() -> None:
    after = TimeCursor(FeedKey(2, 4), 2)
    assert advance(after, 0, [], start=START) is None
    assert advance(after, 0, [FeedKey(2, 3), FeedKey(0, 0)], start=START) is None


def test_unreadable_rows_after_the_last_readable_one_are_stepped_over_by_position() -> None:
    keys = [FeedKey(1, 5), FeedKey(2, 3), None, None]
    assert advance(None, 0, keys, start=START) == TimeCursor(FeedKey(2, 3), 3)
    after = TimeCursor(FeedKey(2, 3), 1)
    assert advance(after, 1, [FeedKey(2, 6), None], start=START) == TimeCursor(FeedKey(2, 6), 3)


def test_a_page_of_unreadable_rows_moves_by_position_only() -> None:
    after = TimeCursor(FeedKey(2, 4), 2)
    assert advance(after, 2, [None], start=START) == TimeCursor(FeedKey(2, 4), 3)
    assert advance(after, 2, [FeedKey(2, 3), None], start=START) == TimeCursor(FeedKey(2, 4), 4)
    assert advance(None, 0, [None, None], start=START) == TimeCursor(START, 2)
