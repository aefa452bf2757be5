"""Where a batch is cut: a study that the next batch continues is held back and written with it.

An ImagingStudy is one resource, so a study written in every batch it touches is sent whole each
time. Where several modalities store at once, studies interleave in the feed and a large one crosses
many batches. While a backlog is read, the studies of a batch that the next batch (already read
ahead) continues are held back and joined to that batch, so each is written once it is complete in
what has been read.

The checkpoint then stops at the last page end before the first held entry: everything before it is
written, and a restart replays from there (every write is idempotent). At most `limits.entries`
entries are held, so memory stays bounded, and the checkpoint stays at most `limits.batches` batches
behind what is written, so a restart replays a bounded stretch of the feed (a longer study, or one
going on in every batch, is written in parts). A batch that reaches the end of the feed holds nothing
back: a caught-up worker's checkpoint is exact and no study waits for a poll.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dicomcast.dicom.models import ChangeEntry, Page

StudyKey = tuple[str | None, str]  # (partition, study uid)


@dataclass(frozen=True)
class Limits:
    entries: int  # held back at most
    batches: int  # the checkpoint is at most this many batches behind the end of what is written


@dataclass(frozen=True)
class Held:
    """Entries held back for the next batch, and the saved checkpoint (every one of them follows it)."""

    entries: Sequence[ChangeEntry] = ()
    checkpoint: str | None = None
    behind: int = 0  # batches cut so far with entries after `checkpoint`


@dataclass(frozen=True)
class Cut:
    entries: list[ChangeEntry]  # to write now, in feed order
    checkpoint: str  # to save once they are written
    held: Held

    @property
    def held_entries(self) -> int:
        return len(self.held.entries)


def cut(batch: Page, start: str | None, held: Held, following: Sequence[ChangeEntry] | None, limits: Limits) -> Cut:
    """Batch `batch`, read from `start`, after the entries `held` from the batch before; `following`:
    the next batch's entries, or its first ones (None: not known, or the feed ends here)."""
    entries = [*held.entries, *batch.entries]
    if batch.caught_up or following is None:
        return Cut(entries, batch.next_cursor, Held())
    boundaries = _boundaries(batch, start, held, limits.batches)
    continuing = {(e.partition, e.study_uid) for e in following}
    keep = _held_studies(entries, continuing, boundaries[0][0] if boundaries else len(entries), limits.entries)
    if not keep:
        return Cut(entries, batch.next_cursor, Held())
    first = next(i for i, e in enumerate(entries) if (e.partition, e.study_uid) in keep)
    checkpoint = [cursor for n, cursor in boundaries if n <= first][-1]
    behind = held.behind + 1 if held.entries and checkpoint == held.checkpoint else 1
    now = [e for e in entries if (e.partition, e.study_uid) not in keep]
    later = [e for e in entries if (e.partition, e.study_uid) in keep]
    return Cut(now, checkpoint, Held(later, checkpoint, behind))


def _boundaries(batch: Page, start: str | None, held: Held, batches: int) -> list[tuple[int, str]]:
    """(n, cursor): where the checkpoint may stand once the first n entries are written. It stays
    where the held entries keep it only while that leaves it fewer than `batches` batches behind."""
    before = len(held.entries)
    ends = batch.boundaries or [(len(batch.entries), batch.next_cursor)]
    points = [(0, held.checkpoint)] if before and held.behind < batches else []
    points += [(before, start), *((before + n, cursor) for n, cursor in ends)]
    return [(n, cursor) for n, cursor in points if cursor]  # no cursor: the feed's start, never saved


def _held_studies(entries: list[ChangeEntry], continuing: set[StudyKey], earliest: int, limit: int) -> set[StudyKey]:
    """The studies to hold: those the next batch continues, the latest-starting first (each one held
    keeps the checkpoint before its first entry), up to `limit` entries, none starting before `earliest`
    (the first place a checkpoint can stand)."""
    first: dict[StudyKey, int] = {}
    sizes: dict[StudyKey, int] = {}
    for i, entry in enumerate(entries):
        key = (entry.partition, entry.study_uid)
        first.setdefault(key, i)
        sizes[key] = sizes.get(key, 0) + 1
    keep: set[StudyKey] = set()
    total = 0
    for key in sorted((k for k in first if k in continuing), key=first.__getitem__, reverse=True):
        if first[key] < earliest or total + sizes[key] > limit:
            break
        keep.add(key)
        total += sizes[key]
    return keep
