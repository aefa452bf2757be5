"""Reading change-feed entries: casing, enum text, timestamps of 7 fractional digits."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from dicomcast.dicom import azure
from dicomcast.dicom.azure_entries import (
    EntryFormatError,
    FeedKey,
    format_ticks,
    parse_entry,
    parse_ticks,
    ticks_of,
)
from dicomcast.dicom.models import MAPPED_TAGS, ChangeAction, ChangeState, mapped_elements

CAMEL = {
    "sequence": 7,
    "partitionName": "Microsoft.Default",
    "studyInstanceUid": "1.2.3",
    "seriesInstanceUid": "1.2.3.4",
    "sopInstanceUid": "1.2.3.4.5",
    "action": "Create",
    "timestamp": "2026-01-02T03:04:05.1234567+00:00",
    "state": "Current",
    "metadata": {"00100020": {"vr": "LO", "Value": ["X"]}},
}
PASCAL = {
    "Sequence": 7,
    "StudyInstanceUid": "1.2.3",
    "SeriesInstanceUid": "1.2.3.4",
    "SopInstanceUid": "1.2.3.4.5",
    "Action": "create",
    "Timestamp": "2026-01-02T03:04:05.1234567Z",
    "State": "current",
    "Metadata": {"00100020": {"vr": "LO", "Value": ["X"]}},
}


@pytest.mark.parametrize("raw", [CAMEL, PASCAL], ids=["camelCase", "PascalCase"])
def test_both_casings_give_the_same_entry(raw: dict[str, object]) -> None:
    parsed = parse_entry(raw)
    assert parsed.entry.sequence == 7
    assert parsed.entry.action is ChangeAction.CREATE
    assert parsed.entry.state is ChangeState.CURRENT
    assert (parsed.entry.study_uid, parsed.entry.series_uid, parsed.entry.sop_instance_uid) == (
        "1.2.3",
        "1.2.3.4",
        "1.2.3.4.5",
    )
    assert parsed.entry.metadata == {"00100020": {"vr": "LO", "Value": ["X"]}}
    assert parsed.entry.timestamp == datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert parsed.key == FeedKey(parse_ticks("2026-01-02T03:04:05.1234567Z"), 7)


@pytest.mark.parametrize(
    ("action", "state", "expected"),
    [
        ("UPDATE", "REPLACED", (ChangeAction.UPDATE, ChangeState.REPLACED)),
        ("delete", "Deleted", (ChangeAction.DELETE, ChangeState.DELETED)),
        (2, 1, (ChangeAction.UPDATE, ChangeState.REPLACED)),
        (1, 2, (ChangeAction.DELETE, ChangeState.DELETED)),
    ],
)
def test_enum_values_in_any_case_or_as_numbers(action: object, state: object, expected: tuple[object, object]) -> None:
    parsed = parse_entry({**CAMEL, "action": action, "state": state})
    assert (parsed.entry.action, parsed.entry.state) == expected


def test_omitted_nulls_are_absent_values() -> None:
    raw = {k: v for k, v in CAMEL.items() if k not in ("metadata", "partitionName", "state")}
    parsed = parse_entry(raw)
    assert parsed.entry.metadata is None
    assert parsed.entry.partition is None
    assert parsed.entry.state is ChangeState.CURRENT


@pytest.mark.parametrize(
    "raw",
    [
        {**CAMEL, "action": "Move"},
        {k: v for k, v in CAMEL.items() if k != "sopInstanceUid"},
        {**CAMEL, "sequence": "seven"},
        {**CAMEL, "timestamp": "yesterday"},
        ["not", "an", "object"],
    ],
)
def test_unreadable_entries_raise(raw: object) -> None:
    with pytest.raises(EntryFormatError):
        parse_entry(raw)


def test_ticks_keep_the_seventh_digit_and_the_offset() -> None:
    assert parse_ticks("2026-01-02T03:04:05.1234567Z") - parse_ticks("2026-01-02T03:04:05.1234560Z") == 7
    assert parse_ticks("2026-01-02T05:04:05.5+02:00") == parse_ticks("2026-01-02T03:04:05.5Z")
    assert parse_ticks("2026-01-02T03:04:05Z") == ticks_of(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))


def test_format_ticks_round_trips() -> None:
    for text in ("2026-01-02T03:04:05.1234567Z", "0001-01-01T00:00:00.0000000Z", "1999-12-31T23:59:59.9999999Z"):
        assert format_ticks(parse_ticks(text)) == text


def test_feed_keys_order_by_timestamp_then_sequence() -> None:
    assert FeedKey(10, 99) < FeedKey(11, 1) < FeedKey(11, 2)


def test_rows_of_one_second_share_its_date_arithmetic_and_keep_their_own_fraction() -> None:
    second = [parse_ticks(f"2026-01-02T03:04:05.{n:07d}+01:00") for n in (1, 2, 9_999_999)]
    assert [t - second[0] for t in second] == [0, 1, 9_999_998]
    assert second[0] == parse_ticks("2026-01-02T02:04:05.0000001Z")
    for bad in ("2026-02-30T03:04:05.1Z", "2026-02-30T03:04:05.2Z"):  # refused each time, not remembered
        with pytest.raises(EntryFormatError, match="calendar"):
            parse_ticks(bad)


class _Element(dict[str, object]):
    """An element object of another dict type than json's: checked the long way, and accepted."""


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ({"00100020": {"vr": "LO"}, "00100010": None}, None),
        ({"00100020": _Element(vr="LO")}, None),
        ({"00100020": {"vr": "LO"}, "00100010": ["x"]}, "metadata element 00100010 is not a JSON object"),
        ({"00100020": "x"}, "metadata element 00100020 is not a JSON object"),
    ],
)
def test_metadata_elements_must_be_objects_or_null(metadata: dict[str, object], problem: str | None) -> None:
    raw = {**CAMEL, "metadata": metadata}
    if problem is None:
        assert parse_entry(raw).entry.metadata == metadata
    else:
        with pytest.raises(EntryFormatError, match=problem):
            parse_entry(raw)


def test_an_entry_readdressed_is_the_same_entry_but_for_what_changed() -> None:
    entry = parse_entry(CAMEL).entry
    for changes in ({"partition": None}, {"partition": "p1"}, {"metadata": None, "sequence": 9}):
        assert azure._replace(entry, **changes) == dataclasses.replace(entry, **changes)
    assert all(f.init for f in dataclasses.fields(entry))  # what _replace relies on


def test_an_entry_keeps_only_the_elements_the_mapping_reads_but_checks_them_all() -> None:
    private = {"00091001": {"vr": "LO", "Value": ["vendor"]}, "00280010": {"vr": "US", "Value": [512]}}
    kept = {"00100020": {"vr": "LO", "Value": ["X"]}, "00080060": {"vr": "CS", "Value": ["CT"]}}
    metadata = parse_entry({**CAMEL, "metadata": {**private, **kept}}).entry.metadata
    assert metadata == kept
    only_unread = parse_entry({**CAMEL, "metadata": private}).entry.metadata
    assert only_unread == {}  # read, and nothing in it maps: not "no metadata", which would be read again
    with pytest.raises(EntryFormatError, match="metadata element 00280010 is not a JSON object"):
        parse_entry({**CAMEL, "metadata": {**kept, "00280010": [512]}})


def test_metadata_of_mapped_elements_alone_is_kept_as_it_is() -> None:
    metadata = {"00100020": {"vr": "LO", "Value": ["X"]}, "00100010": None}
    assert mapped_elements(metadata) is metadata
    assert "00100010" in MAPPED_TAGS and "7FE00010" not in MAPPED_TAGS
