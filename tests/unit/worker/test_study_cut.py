"""Where a batch is cut: studies the next batch continues are held back, the checkpoint stops before them."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dicomcast.dicom.models import ChangeAction, ChangeEntry, Page
from dicomcast.worker.context import Tuning
from dicomcast.worker.loop import HELD_BATCHES_BEHIND, HELD_PER_BATCH, held_limits
from dicomcast.worker.study_cut import Held, Limits, cut

ENOUGH = Limits(entries=100, batches=100)


def _entry(sequence: int, study: str) -> ChangeEntry:
    return ChangeEntry(sequence, ChangeAction.CREATE, study, f"{study}.1", f"{study}.1.{sequence}")


def _batch(studies: str, first: int = 1, page_size: int = 2, caught_up: bool = False) -> Page:
    """One entry per letter (its study), sequences from `first`; pages of `page_size`; cursors are sequences."""
    entries = [_entry(first + i, study) for i, study in enumerate(studies)]
    ends = [(n, str(first + n - 1)) for n in range(page_size, len(entries), page_size)] + [
        (len(entries), str(first + len(entries) - 1))
    ]
    return Page(entries, str(first + len(entries) - 1), caught_up, boundaries=ends)


def _studies(entries: list[ChangeEntry]) -> str:
    return "".join(e.study_uid for e in entries)


def test_a_study_the_next_batch_continues_is_held_and_the_checkpoint_stops_at_the_page_before_it() -> None:
    batch = _batch("AABCBC")  # pages AA | BC | BC, sequences 1-6
    result = cut(batch, "0", Held(), [_entry(7, "C")], ENOUGH)

    assert _studies(result.entries) == "AABB"
    assert _studies(list(result.held.entries)) == "CC"
    assert result.checkpoint == "2"  # C starts in the second page: only the first is whole
    assert result.held.checkpoint == "2"


def test_nothing_is_held_at_the_end_of_the_feed_or_when_the_next_batch_is_unknown() -> None:
    batch = _batch("AB")
    assert cut(_batch("AB", caught_up=True), "0", Held(), [_entry(3, "B")], ENOUGH).checkpoint == "2"
    unknown = cut(batch, "0", Held(), None, ENOUGH)
    assert _studies(unknown.entries) == "AB" and unknown.checkpoint == "2" and not unknown.held.entries


def test_held_entries_come_first_in_the_next_batch_and_the_checkpoint_waits_for_them() -> None:
    first = cut(_batch("AACC"), "0", Held(), [_entry(5, "C")], ENOUGH)  # C held; checkpoint at page 1's end
    assert first.checkpoint == "2"

    again = cut(_batch("CCDD", first=5), "4", first.held, [_entry(9, "C")], ENOUGH)  # C goes on
    assert _studies(again.entries) == "DD" and _studies(list(again.held.entries)) == "CCCC"
    assert again.checkpoint == "2"  # still before C's first entry
    assert (first.held.behind, again.held.behind) == (1, 2)

    done = cut(_batch("CEEF", first=9), "8", again.held, [_entry(13, "F")], ENOUGH)
    assert _studies(done.entries) == "CCCCCEE"  # C in feed order, with the entries it waited for
    assert [e.sequence for e in done.entries][:5] == [3, 4, 5, 6, 9]
    assert done.checkpoint == "10"  # F starts in page 2 of this batch


def test_held_studies_are_the_latest_starting_ones_up_to_the_limit() -> None:
    batch = _batch("ABCD", page_size=1)  # each study starts a page
    following = [_entry(5, s) for s in "BCD"]

    result = cut(batch, "0", Held(), following, Limits(2, 8))

    assert _studies(list(result.held.entries)) == "CD"  # B would pass the limit: written now
    assert result.checkpoint == "2"


def test_a_study_starting_in_the_feeds_first_page_is_not_held_there_is_no_checkpoint_before_it() -> None:
    result = cut(_batch("ABAB"), None, Held(), [_entry(5, "A"), _entry(6, "B")], ENOUGH)
    assert _studies(result.entries) == "ABAB" and not result.held.entries and result.checkpoint == "4"


def test_a_study_going_on_in_every_batch_keeps_the_checkpoint_at_most_so_many_batches_behind() -> None:
    """A, stored beside the others in every batch: held two batches, then written in part so the
    checkpoint moves on; then held again."""
    limits = Limits(entries=100, batches=2)
    held, start, checkpoints, written = Held(), "0", [], []
    for n in range(6):
        batch = _batch(f"A{'BCDEFG'[n]}", first=1 + 2 * n, page_size=1)  # pages: A | B, sequences 2n+1, 2n+2
        result = cut(batch, start, held, [_entry(0, "A")], limits)
        checkpoints.append(result.checkpoint)
        written.append(_studies(result.entries))
        held, start = result.held, batch.next_cursor

    assert written == ["B", "C", "AAAD", "E", "F", "AAAG"]
    assert checkpoints == ["0", "0", "6", "6", "6", "12"]  # 1 or 2 batches behind the end of each


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from("ABCDEF"), min_size=1, max_size=40),
    st.integers(1, 7),
    st.integers(1, 5),
    st.integers(1, 30),
    st.integers(1, 4),
)
def test_every_entry_is_written_once_in_feed_order_per_study_and_checkpoints_never_pass_a_held_entry(
    feed: list[str], batch_size: int, page_size: int, limit: int, behind: int
) -> None:
    """The feed cut into batches one after another: each entry is written exactly once, each study's
    entries in feed order; every saved checkpoint is below every entry still held, never goes back,
    and is at most `behind` batches behind the end of the batch just written."""
    batches = [feed[i : i + batch_size] for i in range(0, len(feed), batch_size)]
    held, start, saved = Held(), None, 0
    written: list[ChangeEntry] = []
    first = 1
    for n, letters in enumerate(batches):
        last = n == len(batches) - 1
        batch = _batch("".join(letters), first, page_size, caught_up=last)
        following = None if last else [_entry(0, s) for s in batches[n + 1]]
        result = cut(batch, start, held, following, Limits(limit, behind))
        written += result.entries
        checkpoint = int(result.checkpoint)
        assert checkpoint >= saved
        assert all(e.sequence > checkpoint for e in result.held.entries)
        assert {e.sequence for e in written} >= set(range(1, checkpoint + 1))  # all before it is written
        ends = [sum(map(len, batches[: m + 1])) for m in range(n + 1)]
        assert sum(1 for end in ends if end > checkpoint) <= behind  # batches with entries after it
        saved, held, start, first = checkpoint, result.held, batch.next_cursor, first + len(letters)
    assert sorted(e.sequence for e in written) == list(range(1, len(feed) + 1))
    for study in set(feed):
        sequences = [e.sequence for e in written if e.study_uid == study]
        assert sequences == sorted(sequences)
    assert saved == len(feed) and not held.entries


def test_a_batch_bound_by_its_bytes_holds_back_fewer_entries() -> None:
    """Four batches' worth held at most, counted in entries of the batch as read: where its pages
    reached MaxBatchBytes first (much metadata per instance), that is fewer than MaxBatchEntries."""
    tuning = Tuning(max_batch_entries=1000, max_batch_bytes=2_000_000)
    light = Page([_entry(n, "A") for n in range(1, 1001)], "1000", caught_up=False, size=1_400_000)
    heavy = Page([_entry(n, "A") for n in range(1, 201)], "200", caught_up=False, size=2_400_000)
    assert held_limits(tuning, light).entries == HELD_PER_BATCH * 1000
    assert held_limits(tuning, heavy).entries == HELD_PER_BATCH * 200
    assert held_limits(tuning, light).batches == held_limits(tuning, heavy).batches == HELD_BATCHES_BEHIND
