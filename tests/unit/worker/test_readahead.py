"""Batches of feed pages, and the next batch read while the current one is written."""

from __future__ import annotations

import dataclasses
import threading

from dicomcast.dicom.models import ChangeAction, ChangeEntry, Page
from dicomcast.worker.readahead import BatchLimit, BatchReader, read_batch


def _entries(n: int) -> BatchLimit:
    return BatchLimit(n, 1 << 62)  # bytes not measured here: entries alone bound a batch


def _feed(total: int, page_size: int, reads: list[str | None], gate: threading.Event | None = None):  # type: ignore[no-untyped-def]
    def read_page(cursor: str | None) -> Page:
        if gate is not None and cursor not in (None, "0"):
            gate.wait(5)
        reads.append(cursor)
        start = int(cursor or 0)
        end = min(total, start + page_size)
        entries = [ChangeEntry(n, ChangeAction.CREATE, "1", "1.1", f"1.1.{n}") for n in range(start + 1, end + 1)]
        return Page(entries, str(end), caught_up=end >= total)

    return read_page


def _failing_once_at(failing: str, calls: list[str | None]):  # type: ignore[no-untyped-def]
    """A feed of 10 entries in pages of 5 whose read at `failing` fails the first time."""
    healthy = _feed(10, 5, [])

    def flaky(cursor: str | None) -> Page:
        calls.append(cursor)
        if cursor == failing and calls.count(failing) == 1:
            raise RuntimeError("network")
        return healthy(cursor)

    return flaky


def test_pages_join_into_batches_that_end_where_a_page_ends() -> None:
    reads: list[str | None] = []
    batch = read_batch(_feed(1000, 200, reads), None, _entries(500))
    assert [e.sequence for e in batch.entries] == list(range(1, 601))  # three whole pages
    assert batch.next_cursor == "600" and not batch.caught_up
    assert reads == [None, "200", "400"]


def test_the_next_batch_is_read_while_the_current_one_is_written() -> None:
    reads: list[str | None] = []
    gate = threading.Event()
    reader = BatchReader(_feed(10, 5, reads, gate), _entries(5))

    first = reader.read(None)
    assert reads == [None]  # the read-ahead of "5" waits at the gate, in the background
    gate.set()
    second = reader.read(first.next_cursor)

    assert [e.sequence for e in second.entries] == [6, 7, 8, 9, 10] and second.caught_up
    assert reads == [None, "5"]  # read once, ahead of time, not again


def test_a_failed_read_ahead_is_read_again_where_errors_are_handled() -> None:
    calls: list[str | None] = []
    reader = BatchReader(_failing_once_at("5", calls), _entries(5))
    first = reader.read(None)
    second = reader.read(first.next_cursor)
    assert second.caught_up and calls.count("5") == 2


def test_a_batch_read_ahead_is_prepared_in_the_background_and_a_direct_read_is_not() -> None:
    prepared: list[str] = []

    def prepare(page: Page) -> str:
        prepared.append(threading.current_thread().name)
        return f"looked up {page.entries[0].sequence}"

    reader = BatchReader(_feed(15, 5, []), _entries(5), prepare=prepare)
    first = reader.read_prepared(None)
    second = reader.read_prepared(first[0].next_cursor)
    third = reader.read_prepared("0")  # another cursor than the one read ahead: read directly

    assert first[1] is None and second[1] == "looked up 6" and third[1] is None
    assert prepared[0] == "read-ahead"


def test_a_batch_whose_preparation_raises_is_still_handed_over_unprepared() -> None:
    def prepare(page: Page) -> str:
        raise RuntimeError("a bug in the preparation")

    reader = BatchReader(_feed(10, 5, []), _entries(5), prepare=prepare)
    first = reader.read_prepared(None)
    got: list[tuple[Page, object]] = []
    waiting = threading.Thread(target=lambda: got.append(reader.read_prepared(first[0].next_cursor)), daemon=True)
    waiting.start()
    waiting.join(60)  # a bound against hanging; the batch comes at once when the code is right

    assert got, "the read-ahead batch was never handed over"
    assert [e.sequence for e in got[0][0].entries] == [6, 7, 8, 9, 10] and got[0][1] is None


def test_two_batches_are_read_ahead_and_the_next_is_there_to_look_at() -> None:
    reads: list[str | None] = []
    third_read = threading.Event()

    def read_page(cursor: str | None) -> Page:
        page = _feed(20, 5, reads)(cursor)
        if cursor == "10":
            third_read.set()
        return page

    reader = BatchReader(read_page, _entries(5))
    first = reader.read(None)

    following = reader.following()
    assert following is not None and [e.sequence for e in following.entries] == [6, 7, 8, 9, 10]
    assert third_read.wait(60)  # the batch after the next one is read too, before anyone asks
    second = reader.read(first.next_cursor)
    assert second.next_cursor == "10" and reads.count("5") == 1 and reads.count("10") == 1


def test_a_batch_is_prepared_only_once_the_batch_before_it_is_handed_over() -> None:
    """Preparation (the FHIR lookups) of batch n+1 may run beside batch n's writes, never beside n-1's:
    what n-1 wrote must be in FHIR when n+1 is looked up."""
    prepared: list[int] = []
    third_read = threading.Event()
    reads: list[str | None] = []
    feed = _feed(20, 5, reads)

    def read_page(cursor: str | None) -> Page:
        page = feed(cursor)
        if cursor == "10":
            third_read.set()
        return page

    reader = BatchReader(read_page, _entries(5), prepare=lambda page: prepared.append(page.entries[0].sequence))
    first = reader.read(None)
    assert third_read.wait(60)
    reader.following()
    before = list(prepared)
    second = reader.read_prepared(first.next_cursor)
    reader.read_prepared(second[0].next_cursor)

    assert before in ([], [6])  # batch 2 (6-10) at most: batch 3 waits for batch 2 to be handed over
    assert prepared[:2] == [6, 11]


def test_a_following_batch_that_cannot_be_read_is_none_and_is_read_again_directly() -> None:
    calls: list[str | None] = []
    reader = BatchReader(_failing_once_at("5", calls), _entries(5))
    first = reader.read(None)
    assert reader.following() is None
    assert reader.read(first.next_cursor).caught_up and calls.count("5") == 2


def test_following_read_says_whether_the_next_batch_would_answer_at_once() -> None:
    gate = threading.Event()
    reader = BatchReader(_feed(10, 5, [], gate), _entries(5))
    assert reader.following_read()  # nothing read ahead yet: `following` answers None at once

    reader.read(None)
    assert not reader.following_read()  # the read of "5" waits at the gate
    gate.set()
    following = reader.following()
    assert following is not None and reader.following_read()


def test_the_next_batchs_first_page_is_there_before_the_rest_of_it() -> None:
    gate = threading.Event()
    reads: list[str | None] = []

    def read_page(cursor: str | None) -> Page:
        if cursor == "15":
            gate.wait(60)  # the next batch's second page
        return _feed(20, 5, reads)(cursor)

    reader = BatchReader(read_page, _entries(10))
    reader.read(None)

    start = reader.following_start()
    assert start is not None and [e.sequence for e in start.entries] == [11, 12, 13, 14, 15]
    assert not reader.following_read()
    gate.set()
    following = reader.following()
    assert following is not None and [e.sequence for e in following.entries] == list(range(11, 21))


def test_a_batch_ends_once_its_pages_hold_max_batch_bytes_of_json() -> None:
    """Instances with much metadata (a CT image's) fill memory long before MaxBatchEntries."""
    plain = _feed(1000, 200, [])

    def heavy(cursor: str | None) -> Page:
        page = plain(cursor)
        return dataclasses.replace(page, size=2_500_000)  # 200 CT instances: about 12 KB each

    batch = read_batch(heavy, None, BatchLimit(1000, 4_000_000))
    assert len(batch.entries) == 400 and batch.next_cursor == "400"  # the second page reached the bound
    assert batch.size == 5_000_000
    assert batch.boundaries == [(200, "200"), (400, "400")]
    one = read_batch(heavy, None, BatchLimit(1000, 1_000))
    assert len(one.entries) == 200  # a batch is at least one page, however large
