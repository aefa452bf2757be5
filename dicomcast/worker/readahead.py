"""Reading the feed ahead of the writes, in batches.

* Batches: feed pages are joined until DicomCastWorker:MaxBatchEntries entries or
  DicomCastWorker:MaxBatchBytes bytes of JSON (or caught up), so a study that spans pages (the v2
  feed gives at most 200 entries a page) is merged and written once per batch, and more studies of a
  batch are written in parallel. Memory stays bounded by the batch: in entries, and in bytes where
  instances carry much metadata (a CT image's is ten times the size of a plain one's); a batch is
  at least one page.
* Read-ahead: while the worker writes a batch, the next one has been read and the one after it is
  being read, each in a daemon thread (a read in flight never holds up a stop). The worker looks at
  the next batch (`following`, or only its first page: `following_start`) to hold back the studies
  it continues (study_cut.py). A read for
  another cursor, or after a failed read-ahead, is made directly, so errors surface where the loop
  handles them.
* Prepared: `prepare` runs on the next batch once the current one is handed over, so it starts after
  the batch before is written (the worker looks up what FHIR holds for it, beside the current
  batch's writes). A batch read directly gets `prepare_first` with its first page instead, when more
  pages follow (the worker starts that page's lookups meanwhile).
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from dicomcast.dicom.models import Page

ReadPage = Callable[[str | None], Page]
P = TypeVar("P")


@dataclass(frozen=True)
class BatchLimit:
    entries: int  # DicomCastWorker:MaxBatchEntries
    bytes: int  # DicomCastWorker:MaxBatchBytes (of JSON read: Page.size)

    def reached(self, batch: Page) -> bool:
        return entries_of(batch) >= self.entries or batch.size >= self.bytes


def entries_of(batch: Page) -> int:
    """The feed entries a batch handles: synced, skipped or unreadable."""
    return len(batch.entries) + len(batch.skipped) + len(batch.unreadable)


def read_batch(
    read_page: ReadPage, cursor: str | None, limit: BatchLimit, seen: Callable[[Page], None] | None = None
) -> Page:
    """Pages from `cursor` joined up to `limit`; the batch ends where its last page ends. `seen` is
    called with the first page as soon as it is read."""
    return _read_batch(read_page, cursor, limit, None, seen)[0]


def _read_batch(
    read_page: ReadPage,
    cursor: str | None,
    limit: BatchLimit,
    first: Callable[[Page], P | None] | None,
    seen: Callable[[Page], None] | None = None,
) -> tuple[Page, P | None]:
    """`read_batch`; `first` is called with the first page when more pages follow in the batch."""
    page = read_page(cursor)
    if seen is not None:
        seen(page)
    entries, skipped, unreadable = list(page.entries), list(page.skipped), list(page.unreadable)
    boundaries = [(len(entries), page.next_cursor)]
    size = page.size

    def joined() -> Page:  # the pages so far, as one; lists grow in place (a batch may be many pages)
        return dataclasses.replace(
            page, entries=entries, skipped=skipped, unreadable=unreadable, boundaries=boundaries, size=size
        )

    batch = joined()
    prepared = None
    if first is not None and not page.caught_up and not limit.reached(batch):
        prepared = first(page)
    while not batch.caught_up and not limit.reached(batch):
        page = read_page(page.next_cursor)
        entries += page.entries
        skipped += page.skipped
        unreadable += page.unreadable
        boundaries.append((len(entries), page.next_cursor))
        size += page.size
        batch = joined()
    return batch, prepared


@dataclass
class _Read:
    """A batch being read ahead, and (once its read has started) the one after it."""

    cursor: str
    page: Future[Page]
    first_page: Future[Page]
    after: _Read | None = None
    after_known: threading.Event = field(default_factory=threading.Event)  # `after` is set (or stays None)


class BatchReader(Generic[P]):
    def __init__(
        self,
        read_page: ReadPage,
        limit: BatchLimit,
        *,
        read_ahead: bool = True,
        prepare: Callable[[Page], P | None] | None = None,
        prepare_first: Callable[[Page], P | None] | None = None,
    ) -> None:
        self._read_page = read_page
        self._limit = limit
        self._read_ahead = read_ahead
        self._prepare = prepare
        self._prepare_first = prepare_first
        self._next: _Read | None = None  # the batch to hand over next
        self._prepared: Future[P | None] | None = None  # its preparation

    def read(self, cursor: str | None) -> Page:
        return self.read_prepared(cursor)[0]

    def read_prepared(self, cursor: str | None) -> tuple[Page, P | None]:
        """The batch at `cursor` (prepared if it was read ahead); the next ones are being read when it returns."""
        ahead, preparing = self._next, self._prepared
        self._next, self._prepared = None, None
        batch: tuple[Page, P | None] | None = None
        if ahead is not None and ahead.cursor == cursor:
            page = _page(ahead)
            if page is not None:  # else read again in the caller's thread, where errors are handled
                prepared = preparing.result() if preparing is not None else None  # never raises
                batch, self._next = (page, prepared), ahead.after  # `after` is set before `prepared`
        if batch is None:
            batch = _read_batch(self._read_page, cursor, self._limit, self._prepare_first)
        if self._read_ahead and not batch[0].caught_up:
            self._follow(batch[0])
        return batch

    def following(self) -> Page | None:
        """The batch after the one last handed over, once read (it waits for the read); None when the
        feed ended there, nothing is read ahead, or the read failed."""
        return _page(self._next) if self._next is not None else None

    def following_read(self) -> bool:
        """Whether `following` would answer at once (its read ended, or nothing is read ahead)."""
        return self._next is None or self._next.page.done()

    def following_start(self) -> Page | None:
        """The first page of `following`, once read (it waits for that page only); None as for
        `following`."""
        if self._next is None:
            return None
        try:
            return self._next.first_page.result()
        except Exception:
            return None

    def following_after(self) -> Page | None:
        """The batch after `following`, once read (it waits); None as for `following`."""
        if self._next is None:
            return None
        self._next.after_known.wait()
        return _page(self._next.after) if self._next.after is not None else None

    def following_prepared(self) -> P | None:
        """What preparing `following` gave (it waits); None when it is not prepared."""
        return self._prepared.result() if self._prepared is not None else None  # never raises

    def _follow(self, page: Page) -> None:
        """Have the next batch read (if it is not already), then the one after it, and prepare the next."""
        if self._next is None or self._next.cursor != page.next_cursor:
            self._next = self._start(page.next_cursor)
        if self._next is None:
            return
        self._prepared = Future()
        if not _thread(self._advance, self._next, self._prepared):
            self._next.after_known.set()
            self._prepared.set_result(None)  # unprepared: the batch looks up itself

    def _advance(self, read: _Read, prepared: Future[P | None]) -> None:
        """Once `read` is read: start reading the batch after it, and prepare it."""
        result = None
        try:
            page = _page(read)
            if page is None:
                return
            if not page.caught_up:
                read.after = self._start(page.next_cursor)
            read.after_known.set()
            with contextlib.suppress(Exception):  # unprepared: the batch meets the error itself, where handled
                result = self._prepare(page) if self._prepare else None
        finally:  # handed over whatever happens: the loop waits for it
            read.after_known.set()
            prepared.set_result(result)

    def _start(self, cursor: str) -> _Read | None:
        future: Future[Page] = Future()
        first_page: Future[Page] = Future()

        def run() -> None:
            try:
                future.set_result(read_batch(self._read_page, cursor, self._limit, first_page.set_result))
            except BaseException as exc:  # handed to `read`, which reads again directly
                future.set_exception(exc)
                if not first_page.done():
                    first_page.set_exception(exc)

        return _Read(cursor, future, first_page) if _thread(run) else None


def _page(read: _Read) -> Page | None:
    try:
        return read.page.result()
    except Exception:
        return None


def _thread(target: Callable[..., None], *args: object) -> bool:
    """Run `target` in a daemon thread; False when no thread can be had (then nothing is read ahead)."""
    try:
        threading.Thread(target=target, args=args, name="read-ahead", daemon=True).start()
    except RuntimeError:
        return False
    return True
