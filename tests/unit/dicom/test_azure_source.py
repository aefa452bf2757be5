"""The Azure source's cursor logic against a mocked service (httpx.MockTransport)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from dicomcast.config.settings import DicomWebSettings
from dicomcast.dicom.azure import AzureChangeFeedSource
from dicomcast.dicom.azure_entries import format_ticks, parse_ticks, ticks_of
from dicomcast.dicom.models import ChangeAction, ChangeEntry
from dicomcast.errors import AuthError, ConfigError, PermanentUpstreamError, TransientUpstreamError

ROOT = "https://dicom.example.test"
NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
META = {"00100020": {"vr": "LO", "Value": ["P1"]}}


def row(
    sequence: int,
    *,
    ticks: int | None = None,
    action: str = "Create",
    state: str = "Current",
    sop: str | None = None,
    partition: str = "Microsoft.Default",
    metadata: Any = META,
) -> dict[str, Any]:
    stamp = ticks if ticks is not None else ticks_of(NOW - timedelta(minutes=10)) + sequence * 10
    entry = {
        "sequence": sequence,
        "partitionName": partition,
        "studyInstanceUid": "1.2",
        "seriesInstanceUid": "1.2.3",
        "sopInstanceUid": sop or f"1.2.3.{sequence}",
        "action": action,
        "timestamp": format_ticks(stamp),
        "state": state,
    }
    if metadata is not None:
        entry["metadata"] = metadata
    return entry


class FakeService:
    """Just enough of the change feed to test the client's paging; records each request."""

    def __init__(self, rows: list[dict[str, Any]], *, partitions: bool = False) -> None:
        self.rows = rows
        self.partitions = partitions
        self.requests: list[httpx.Request] = []
        self.wado: dict[str, Any] = {}
        self.status: int | None = None
        self.served_as: dict[int, Callable[[dict[str, Any]], Any]] = {}  # sequence -> hostile form (str: raw)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.status:
            return httpx.Response(self.status, headers={"Retry-After": "3"})
        path, query = request.url.path, request.url.params
        if path.endswith("/partitions"):
            return httpx.Response(200, json=[]) if self.partitions else httpx.Response(400)
        if path.endswith("/metadata"):
            sop = path.split("/")[-2]
            return httpx.Response(200, json=[self.wado[sop]]) if sop in self.wado else httpx.Response(404)
        by_time = path.startswith("/v2")
        order: Callable[[dict[str, Any]], Any] = lambda r: (  # noqa: E731
            (parse_ticks(r["timestamp"]), r["sequence"]) if by_time else r["sequence"]
        )
        rows = sorted(self.rows, key=order)
        include = query.get("includeMetadata", "true") == "true"
        if path.endswith("/latest"):
            return self._answer(rows[-1], include) if rows else httpx.Response(204)
        offset, limit = int(query["offset"]), int(query["limit"])
        if by_time:
            start, end = parse_ticks(query["startTime"]), parse_ticks(query["endTime"])
            window = [r for r in rows if start <= parse_ticks(r["timestamp"]) < end]
            return self._answer(window[offset : offset + limit], include)
        return self._answer([r for r in rows if offset < r["sequence"] <= offset + limit], include)

    def _answer(self, rows: list[dict[str, Any]] | dict[str, Any], include: bool) -> httpx.Response:
        """Rows as the service would write them, hostile ones as `served_as` says (raw text for depth)."""
        texts = [self._text(r, include) for r in (rows if isinstance(rows, list) else [rows])]
        body = f"[{','.join(texts)}]" if isinstance(rows, list) else texts[0]
        return httpx.Response(200, content=body.encode(), headers={"Content-Type": "application/json"})

    def _text(self, row: dict[str, Any], include: bool) -> str:
        shown = row if include else {k: v for k, v in row.items() if k != "metadata"}
        hostile = self.served_as.get(row["sequence"])
        served = hostile(shown) if hostile else shown
        return served if isinstance(served, str) else json.dumps(served)

    def feed_reads(self) -> list[httpx.QueryParams]:
        return [r.url.params for r in self.requests if r.url.path.endswith("/changefeed")]


def source(service: FakeService, version: int = 1, **options: Any) -> AzureChangeFeedSource:
    settings = DicomWebSettings(endpoint=f"{ROOT}/v{version}", **options.pop("settings", {}))
    options.setdefault("clock", lambda: NOW)
    return AzureChangeFeedSource(settings, transport=httpx.MockTransport(service.handle), **options)


def read_all(
    feed: AzureChangeFeedSource, cursor: str | None = None, pages: int = 1000
) -> tuple[list[ChangeEntry], str | None]:
    entries: list[ChangeEntry] = []
    for _ in range(pages):
        page = feed.read_page(cursor)
        entries.extend(page.entries)
        cursor = page.next_cursor
        if page.caught_up:
            return entries, cursor
    raise AssertionError("never caught up")


# ---- v1 ------------------------------------------------------------------------------------


def test_v1_reads_by_sequence_with_the_capped_limit() -> None:
    service = FakeService([row(n) for n in range(1, 6)])
    feed = source(service, batch_size=500)
    page = feed.read_page(None)
    assert [e.sequence for e in page.entries] == [1, 2, 3, 4, 5]
    assert page.next_cursor == "5" and page.caught_up
    assert service.feed_reads()[0]["limit"] == "100"
    assert service.feed_reads()[0]["offset"] == "0"
    assert service.feed_reads()[0]["includeMetadata"] == "true"


def test_v1_steps_over_a_gap_larger_than_the_limit_without_skipping() -> None:
    service = FakeService([row(1), row(2), row(1003), row(1004)])
    feed = source(service, batch_size=10)
    entries, cursor = read_all(feed)
    assert [e.sequence for e in entries] == [1, 2, 1003, 1004]
    assert cursor == "1004"
    offsets = [int(q["offset"]) for q in service.feed_reads()]
    assert offsets[:3] == [0, 2, 12] and offsets[-1] == 1002  # stepped by `limit` through the gap


def test_v1_empty_page_at_latest_is_caught_up() -> None:
    service = FakeService([row(1)])
    page = source(service).read_page("1")
    assert page.caught_up and page.next_cursor == "1" and not page.entries


def test_v1_empty_feed() -> None:
    service = FakeService([])
    feed = source(service)
    page = feed.read_page(None)
    assert page.caught_up and not page.entries and page.next_cursor == "0"
    assert feed.latest().sequence is None


def test_v1_full_page_below_latest_is_not_caught_up() -> None:
    service = FakeService([row(n) for n in range(1, 21)])
    page = source(service, batch_size=10).read_page(None)
    assert page.next_cursor == "10" and not page.caught_up


# ---- v2 ------------------------------------------------------------------------------------


def test_v2_window_is_zoned_and_ends_before_now() -> None:
    service = FakeService([row(1)])
    source(service, version=2).read_page(None)
    query = service.feed_reads()[0]
    assert query["startTime"] == "0001-01-01T00:00:00Z"
    assert query["endTime"].endswith("Z")
    assert parse_ticks(query["endTime"]) == ticks_of(NOW - timedelta(seconds=5))
    assert query["limit"] == "200"


def test_v2_orders_by_timestamp_then_sequence_and_resumes_without_rereading() -> None:
    base = ticks_of(NOW - timedelta(minutes=1))
    # Sequence order differs from time order; several rows share a timestamp; 7th digit matters.
    rows = [
        row(5, ticks=base + 1),
        row(3, ticks=base + 2),
        row(4, ticks=base + 2),
        row(1, ticks=base + 3),
        row(2, ticks=base + 3),
        row(9, ticks=base + 4),
    ]
    service = FakeService(rows)
    feed = source(service, version=2, batch_size=2)
    seen: list[int] = []
    cursor = None
    for _ in range(10):
        page = feed.read_page(cursor)
        seen.extend(e.sequence for e in page.entries)
        cursor = page.next_cursor
        # a new source from the stored cursor stands for a restart after every page
        feed = source(service, version=2, batch_size=2)
        if page.caught_up:
            break
    assert seen == [5, 3, 4, 1, 2, 9]


def test_v2_many_rows_at_the_cursor_timestamp_are_paged_by_offset() -> None:
    same = ticks_of(NOW - timedelta(minutes=1))
    service = FakeService([row(n, ticks=same) for n in range(1, 8)])
    feed = source(service, version=2, batch_size=3)
    entries, cursor = read_all(feed)
    assert [e.sequence for e in entries] == list(range(1, 8))
    assert cursor is not None and cursor.startswith("7@")
    # the last page re-anchors at that timestamp and skips the 6 rows already read by offset
    assert [q["offset"] for q in service.feed_reads()][-3:] == ["0", "3", "6"]


def test_v2_cursor_without_a_row_count_still_skips_nothing() -> None:
    same = ticks_of(NOW - timedelta(minutes=1))
    service = FakeService([row(n, ticks=same) for n in range(1, 8)])
    cursor = f"5@{format_ticks(same)}"  # no "#n": the rows at the timestamp are stepped over by offset
    entries, moved = read_all(source(service, version=2, batch_size=2), cursor)
    assert [e.sequence for e in entries] == [6, 7]
    assert moved == f"7@{format_ticks(same)}#7"
    assert [q["offset"] for q in service.feed_reads()] == ["0", "2", "4", "6"]


def test_v2_rows_newer_than_the_window_wait_for_the_safety_lag() -> None:
    service = FakeService([row(1, ticks=ticks_of(NOW - timedelta(seconds=2)))])
    page = source(service, version=2).read_page(None)
    assert not page.entries and page.caught_up
    later = source(service, version=2, clock=lambda: NOW + timedelta(seconds=10))
    assert [e.sequence for e in later.read_page(page.next_cursor or None).entries] == [1]


def test_v2_cursor_ahead_of_the_window_sends_no_bad_window() -> None:
    service = FakeService([])
    feed = source(service, version=2)
    cursor = f"4@{format_ticks(ticks_of(NOW))}"
    page = feed.read_page(cursor)
    assert page.caught_up and page.next_cursor == cursor
    assert service.feed_reads() == []


def test_v2_latest_and_cursor_words() -> None:
    service = FakeService([row(1), row(2)])
    feed = source(service, version=2)
    assert feed.latest().sequence == 2
    assert feed.describe_cursor("2@2026-01-01T00:00:00.0000000Z") == "sequence 2 at 2026-01-01T00:00:00.0000000Z"
    assert feed.describe_cursor(None) == "the start of the feed"
    with pytest.raises(ConfigError, match="not a v2 change-feed position"):
        feed.read_page("42")


def test_v1_rejects_a_v2_cursor() -> None:
    with pytest.raises(ConfigError, match="not a v1 change-feed sequence"):
        source(FakeService([])).read_page("2@2026-01-01T00:00:00Z")


# ---- entries ---------------------------------------------------------------------------------


def test_create_of_a_deleted_instance_is_skipped_and_delete_kept() -> None:
    service = FakeService(
        [
            row(1, state="Deleted", metadata=None, sop="9"),
            row(2, action="Delete", state="Deleted", metadata=None, sop="9"),
        ]
    )
    page = source(service).read_page(None)
    assert [(e.sequence, e.action) for e in page.entries] == [(2, ChangeAction.DELETE)]
    assert [(e.sequence, why) for e, why in page.skipped] == [
        (1, "create of an instance deleted since (its delete entry follows)")
    ]
    assert not [r for r in service.requests if r.url.path.endswith("/metadata")]


def test_missing_metadata_is_read_from_wado() -> None:
    service = FakeService([row(1, metadata=None), row(2, metadata=None)])
    service.wado["1.2.3.1"] = {"00100020": {"vr": "LO", "Value": ["FROM-WADO"]}}
    page = source(service).read_page(None)
    assert [e.metadata for e in page.entries] == [service.wado["1.2.3.1"]]
    assert [(e.sequence, why) for e, why in page.skipped] == [(2, "instance no longer exists")]
    wado = [r for r in service.requests if r.url.path.endswith("/metadata")]
    assert wado[0].url.path == "/v1/studies/1.2/series/1.2.3/instances/1.2.3.1/metadata"
    assert wado[0].headers["Accept"] == "application/dicom+json"


def test_partitions_filter_and_addresses() -> None:
    service = FakeService([row(1, partition="north"), row(2, partition="south"), row(3)], partitions=True)
    feed = source(service, settings={"Partitions": "north,Microsoft.Default"})
    page = feed.read_page(None)
    assert [(e.sequence, e.partition) for e in page.entries] == [(1, "north"), (3, "Microsoft.Default")]
    assert [(e.sequence, why) for e, why in page.skipped] == [(2, "partition south is not in DicomWeb:Partitions")]
    assert feed.endpoint_address("north") == f"{ROOT}/v1/partitions/north"


def test_without_data_partitions_the_default_partition_is_no_url_segment() -> None:
    service = FakeService([row(1, metadata=None)])
    service.wado["1.2.3.1"] = META
    feed = source(service, settings={"PrivateEndpoint": "http://internal:8080"})
    page = feed.read_page(None)
    assert page.entries[0].partition is None
    assert feed.endpoint_address(None) == f"{ROOT}/v1"
    wado = next(r for r in service.requests if r.url.path.endswith("/metadata"))
    assert str(wado.url).startswith("http://internal:8080/v1/studies/")
    assert feed.name == f"azure:{ROOT}/v1"


def _nested(depth: int) -> str:
    return '{"00400275": {"vr": "SQ", "Value": [' * depth + "{}" + "]}}" * depth


def _deep_metadata(shown: dict[str, Any]) -> str:
    if "metadata" not in shown:
        return json.dumps(shown)
    return json.dumps({**shown, "metadata": "@"}).replace('"@"', _nested(1200))


PHI = "Doe^Jane"
HOSTILE: dict[str, Callable[[dict[str, Any]], Any]] = {
    "impossible date": lambda r: {**r, "timestamp": "2024-02-30T00:00:00Z"},
    "timestamp of a wrong type": lambda r: {**r, "timestamp": 20240101},
    "metadata element a string": lambda r: {**r, "metadata": {**META, "00100010": PHI}},
    "metadata a string": lambda r: {**r, "metadata": PHI},
    "metadata a list": lambda r: {**r, "metadata": [PHI]},
    "uid over 64 characters": lambda r: {**r, "sopInstanceUid": "1." + "2" * 70},
    "uid that is text": lambda r: {**r, "studyInstanceUid": PHI},
    "uid a number": lambda r: {**r, "seriesInstanceUid": 1.2},
    "unknown action": lambda r: {**r, "action": "Teleport"},
    "action an object": lambda r: {**r, "action": {"name": PHI}},
    "null uid": lambda r: {**r, "sopInstanceUid": None},
    "partition of a wrong form": lambda r: {**r, "partitionName": "../" + PHI},
    "entry a list": lambda r: [PHI],
}


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_each_kind_of_unreadable_entry_is_reported_once_and_passed(kind: str, version: int) -> None:
    service = FakeService([row(1), row(2), row(3)])
    service.served_as[2] = HOSTILE[kind]
    feed = source(service, version)

    entries, cursor = read_all(feed)
    page = feed.read_page(None)

    assert [e.sequence for e in entries] == [1, 3]
    assert len(page.unreadable) == 1
    failed = page.unreadable[0]
    assert failed.sequence == (2 if kind != "entry a list" else -1)
    assert PHI not in failed.reason and "Doe" not in repr(failed)
    assert cursor == read_all(source(FakeService([row(1), row(2), row(3)]), version))[1]


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize(
    ("kind", "value"),
    [("missing", None), ("text", "two"), ("negative", -2), ("2^63", 2**63), ("huge", 10**40), ("true", True)],
)
def test_an_unreadable_sequence_is_reported_and_never_moves_the_cursor(kind: str, value: Any, version: int) -> None:
    service = FakeService([row(1), row(2), row(3)])
    service.served_as[2] = lambda r: (
        {k: v for k, v in r.items() if k != "sequence"} | ({"sequence": value} if value is not None else {})
    )
    page = source(service, version).read_page(None)
    assert [e.sequence for e in page.entries] == [1, 3]
    assert [(u.sequence, u.sop_instance_uid) for u in page.unreadable] == [(-1, "1.2.3.2")]
    assert page.next_cursor.split("@")[0] == "3"


@pytest.mark.parametrize("claimed", [101, 10**15, 2**63 - 1])
def test_a_v1_sequence_outside_the_range_asked_for_never_moves_the_cursor(claimed: int) -> None:
    service = FakeService([row(n) for n in range(1, 6)])
    service.served_as[3] = lambda r: {**r, "sequence": claimed}  # asked for (0, 100]
    page = source(service).read_page(None)
    assert [e.sequence for e in page.entries] == [1, 2, 4, 5]
    assert [(u.sequence, u.sop_instance_uid) for u in page.unreadable] == [(-1, "1.2.3.3")]
    assert "outside the range" in page.unreadable[0].reason
    assert page.next_cursor == "5" and page.caught_up


@pytest.mark.parametrize("version", [1, 2])
def test_an_entry_nested_too_deeply_is_isolated_and_the_others_are_read(version: int) -> None:
    service = FakeService([row(n) for n in range(1, 11)])
    service.served_as[6] = _deep_metadata
    feed = source(service, version)

    entries, _ = read_all(feed)
    unreadable = [u for p in _pages(source(service, version)) for u in p.unreadable]

    assert [e.sequence for e in entries] == [1, 2, 3, 4, 5, 7, 8, 9, 10]
    assert [(u.sequence, u.sop_instance_uid) for u in unreadable] == [(6, "1.2.3.6")]  # read without metadata
    assert "nested too deeply" in unreadable[0].reason


@pytest.mark.parametrize("version", [1, 2])
def test_an_entry_that_cannot_be_decoded_even_without_metadata_is_passed(version: int) -> None:
    service = FakeService([row(n) for n in range(1, 6)])
    service.served_as[3] = lambda r: json.dumps({**r, "action": "@"}).replace('"@"', _nested(1200))
    entries, _ = read_all(source(service, version))
    unreadable = [u for p in _pages(source(service, version)) for u in p.unreadable]
    assert [e.sequence for e in entries] == [1, 2, 4, 5]
    assert [u.sequence for u in unreadable] == [3 if version == 1 else -1]  # v1: the limit-1 read names it


def test_unreadable_entries_are_only_logged_when_ignored() -> None:
    service = FakeService([row(1), {**row(2), "action": "Teleport"}, row(3)])
    page = source(service, ignore_parsing_errors=True).read_page(None)
    assert [e.sequence for e in page.entries] == [1, 3] and page.next_cursor == "3"
    assert page.unreadable == []


def test_metadata_answers_that_are_no_metadata_fail_their_entry_only() -> None:
    service = FakeService([row(1, metadata=None), row(2, metadata=None), row(3, metadata=None)])
    service.wado = {"1.2.3.1": META, "1.2.3.2": {**META, "00100010": PHI}, "1.2.3.3": META}
    page = source(service).read_page(None)
    assert [e.sequence for e in page.entries] == [1, 3]
    assert [(u.sequence, u.reason) for u in page.unreadable] == [(2, "metadata element 00100010 is not a JSON object")]


def test_an_unreadable_latest_entry_reads_on_without_skipping() -> None:
    service = FakeService([row(1), row(2)])
    service.served_as[2] = lambda r: {**r, "timestamp": "2024-02-30T00:00:00Z", "sequence": "x"}
    feed = source(service)
    assert feed.latest().sequence is None
    entries, cursor = read_all(feed)
    assert [e.sequence for e in entries] == [1] and cursor == "1"  # stopped: nothing newer is known
    again = feed.read_page(cursor)  # the next cycle meets the unreadable entry again and passes it
    assert [u.sequence for u in again.unreadable] == [-1] and again.next_cursor == "2"


def _pages(feed: AzureChangeFeedSource) -> list[Any]:
    pages, cursor = [], None
    for _ in range(100):
        page = feed.read_page(cursor)
        pages.append(page)
        cursor = page.next_cursor
        if page.caught_up:
            return pages
    raise AssertionError("never caught up")


# ---- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [(503, TransientUpstreamError), (429, TransientUpstreamError), (401, AuthError), (400, PermanentUpstreamError)],
)
def test_statuses_become_dicomcast_errors(status: int, error: type[Exception]) -> None:
    service = FakeService([row(1)])
    service.status = status
    with pytest.raises(error):
        source(service).read_page(None)


def test_network_errors_are_transient() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    feed = AzureChangeFeedSource(DicomWebSettings(endpoint=f"{ROOT}/v2"), transport=httpx.MockTransport(refuse))
    with pytest.raises(TransientUpstreamError, match="could not be reached"):
        feed.latest()


def test_bare_service_url_reads_v1_as_dicom_cast_did(capsys: pytest.CaptureFixture[str]) -> None:
    feed = AzureChangeFeedSource(DicomWebSettings(endpoint=ROOT))
    assert (feed.version, feed.name) == (1, f"azure:{ROOT}/v1")  # the same name as an explicit /v1
    assert feed.name == AzureChangeFeedSource(DicomWebSettings(endpoint=f"{ROOT}/v1")).name
    said = capsys.readouterr().out
    assert said.count("has no API version") == 1 and "v2 is recommended" in said
