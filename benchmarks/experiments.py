"""Experiments measured next to dicomcast as configured (`--experiments`), not part of it: two
`ChangeSource` decorators that show what a change to the worker loop would gain.

- `PrefetchingSource`: while the worker writes a page, the next one is already being read (issue 7
  asks for this; the loop reads and writes one after the other today).
- `BatchingSource`: several feed pages become one batch, so a study that spans pages is merged and
  written once per batch instead of once per page (the v2 feed gives at most 200 entries a page).
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from dicomcast.dicom.models import ChangeSource, Page


class PrefetchingSource:
    """Reads the page after the one it returns in the background; a read for another cursor, or
    after a failed read-ahead, goes to the source directly."""

    def __init__(self, inner: ChangeSource) -> None:
        self.inner = inner
        self.name = inner.name
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead")
        self._ahead: tuple[str, Future[Page]] | None = None

    def read_page(self, cursor: str | None) -> Page:
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == cursor:
            try:
                page = ahead[1].result()
            except Exception:
                page = self.inner.read_page(cursor)
        else:
            page = self.inner.read_page(cursor)
        if not page.caught_up:
            self._ahead = (page.next_cursor, self._reader.submit(self.inner.read_page, page.next_cursor))
        return page

    def close(self) -> None:
        self._reader.shutdown(wait=True, cancel_futures=True)
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class BatchingSource:
    """Joins pages until `max_entries` entries or caught up; the batch's cursor is its last page's."""

    def __init__(self, inner: ChangeSource, max_entries: int) -> None:
        self.inner = inner
        self.name = inner.name
        self.max_entries = max_entries

    def read_page(self, cursor: str | None) -> Page:
        page = self.inner.read_page(cursor)
        entries, skipped = list(page.entries), list(page.skipped)
        while not page.caught_up and len(entries) + len(skipped) < self.max_entries:
            page = self.inner.read_page(page.next_cursor)
            entries += page.entries
            skipped += page.skipped
        return dataclasses.replace(page, entries=entries, skipped=skipped)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def decorate(source: ChangeSource, experiment: str) -> ChangeSource:
    """`prefetch`, `batch` (1,000 entries) or `batch+prefetch`."""
    decorated: Any = source
    if "prefetch" in experiment:
        decorated = PrefetchingSource(decorated)
    if "batch" in experiment:
        decorated = BatchingSource(decorated, max_entries=1000)
    result: ChangeSource = decorated
    return result
