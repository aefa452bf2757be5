"""Reading the feed ahead of the writes, in batches.

* Batches: feed pages are joined until DicomCastWorker:MaxBatchEntries entries (or caught up), so a
  study that spans pages (the v2 feed gives at most 200 entries a page) is merged and written once
  per batch, and more studies of a batch are written in parallel. Memory stays bounded by the batch.
* Read-ahead: while the worker writes a batch, the next one is read in a daemon thread (a read in
  flight never holds up a stop). A read for another cursor, or after a failed read-ahead, is made
  directly, so errors surface where the loop handles them.
* Prepared: `prepare` runs in that thread on the batch it read (the worker looks up what FHIR holds
  for it, beside the previous batch's writes). A batch read directly gets `prepare_first` with its
  first page instead, when more pages follow (the worker starts that page's lookups meanwhile).
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

from dicomcast.dicom.models import Page

ReadPage = Callable[[str | None], Page]
P = TypeVar("P")


def read_batch(read_page: ReadPage, cursor: str | None, max_entries: int) -> Page:
    """Pages from `cursor` joined up to `max_entries` entries; the batch ends where its last page ends."""
    return _read_batch(read_page, cursor, max_entries, None)[0]


def _read_batch(
    read_page: ReadPage, cursor: str | None, max_entries: int, first: Callable[[Page], P | None] | None
) -> tuple[Page, P | None]:
    """`read_batch`; `first` is called with the first page when more pages follow in the batch."""
    page = read_page(cursor)
    entries, skipped, unreadable = list(page.entries), list(page.skipped), list(page.unreadable)
    prepared = None
    if first is not None and not page.caught_up and len(entries) + len(skipped) + len(unreadable) < max_entries:
        prepared = first(page)
    while not page.caught_up and len(entries) + len(skipped) + len(unreadable) < max_entries:
        page = read_page(page.next_cursor)
        entries += page.entries
        skipped += page.skipped
        unreadable += page.unreadable
    return dataclasses.replace(page, entries=entries, skipped=skipped, unreadable=unreadable), prepared


class BatchReader(Generic[P]):
    def __init__(
        self,
        read_page: ReadPage,
        max_entries: int,
        *,
        read_ahead: bool = True,
        prepare: Callable[[Page], P | None] | None = None,
        prepare_first: Callable[[Page], P | None] | None = None,
    ) -> None:
        self._read_page = read_page
        self._max_entries = max_entries
        self._read_ahead = read_ahead
        self._prepare = prepare
        self._prepare_first = prepare_first
        self._ahead: tuple[str, Future[tuple[Page, P | None]]] | None = None

    def read(self, cursor: str | None) -> Page:
        return self.read_prepared(cursor)[0]

    def read_prepared(self, cursor: str | None) -> tuple[Page, P | None]:
        """The batch at `cursor` (prepared if it was read ahead); starts reading the following one
        before returning."""
        ahead, self._ahead = self._ahead, None
        batch: tuple[Page, P | None] | None = None
        if ahead is not None and ahead[0] == cursor:
            try:
                batch = ahead[1].result()
            except Exception:  # read again in the caller's thread, where errors are handled
                batch = None
        if batch is None:
            batch = _read_batch(self._read_page, cursor, self._max_entries, self._prepare_first)
        page = batch[0]
        if self._read_ahead and not page.caught_up:
            self._ahead = (page.next_cursor, self._start(page.next_cursor))
        return batch

    def _start(self, cursor: str) -> Future[tuple[Page, P | None]]:
        future: Future[tuple[Page, P | None]] = Future()

        def run() -> None:
            try:
                page = read_batch(self._read_page, cursor, self._max_entries)
            except BaseException as exc:  # handed to `read`, which reads again directly
                future.set_exception(exc)
                return
            prepared = None
            try:
                with contextlib.suppress(Exception):  # unprepared: the batch meets the error itself, where handled
                    prepared = self._prepare(page) if self._prepare else None
            finally:  # handed over whatever happens: the loop waits for it
                future.set_result((page, prepared))

        threading.Thread(target=run, name="read-ahead", daemon=True).start()
        return future
