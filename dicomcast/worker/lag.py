"""Feed lag: how far the stored checkpoint is behind the end of the source's change feed.

`update_lag(ctx, cursor)` asks the source for the feed's end (`latest()`: Azure's
`/changefeed/latest`, Orthanc's `/changes?last`) and sets the lag and checkpoint gauges.
`LagMonitor` does that for every source in a background thread, so a scrape of `/metrics`
never waits on the DICOM server.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from dicomcast.dicom.models import FeedPosition
from dicomcast.errors import DicomcastError
from dicomcast.logs import get_logger
from dicomcast.worker import metrics
from dicomcast.worker.context import SyncContext

log = get_logger("dicomcast.lag")
MIN_INTERVAL = timedelta(seconds=5)
MAX_INTERVAL = timedelta(seconds=60)


def cursor_sequence(cursor: str | None) -> int | None:
    """The sequence a cursor stands for: Orthanc's Seq and Azure v1 are numbers, Azure v2 is
    `<sequence>@<timestamp>#<n>`; no cursor means nothing was synced yet (0)."""
    if not cursor:
        return 0
    head = cursor.split("@", 1)[0]
    return int(head) if head.isdigit() else None


def lag_of(position: FeedPosition, cursor: str | None, now: datetime) -> tuple[int | None, float | None]:
    """(sequences behind, seconds since the newest unsynced change); None where unknown."""
    synced = cursor_sequence(cursor)
    if position.sequence is None or synced is None:
        return None, None
    behind = max(position.sequence - synced, 0)
    if behind == 0:
        return 0, 0.0
    if position.timestamp is None:
        return behind, None
    stamp = position.timestamp if position.timestamp.tzinfo else position.timestamp.replace(tzinfo=UTC)
    return behind, max((now - stamp).total_seconds(), 0.0)


def update_lag(ctx: SyncContext, cursor: str | None) -> None:
    """Set the lag and checkpoint gauges of `ctx`'s source; upstream trouble leaves them as they were."""
    name = ctx.source.name
    try:
        position = ctx.source.latest()
    except DicomcastError as exc:
        log.debug("feed end unknown", source=name, error=str(exc))
        return
    behind, seconds = lag_of(position, cursor, datetime.now(UTC))
    synced = cursor_sequence(cursor)
    if synced is not None:
        metrics.CHECKPOINT.labels(name).set(synced)
    if behind is not None:
        metrics.LAG_SEQUENCES.labels(name).set(behind)
    if seconds is not None:
        metrics.LAG_SECONDS.labels(name).set(seconds)


class LagMonitor:
    """Refreshes every source's lag from its stored checkpoint, every `interval` until `stop` is set."""

    def __init__(self, contexts: Sequence[SyncContext], interval: timedelta, stop: threading.Event) -> None:
        self.contexts = list(contexts)
        self.interval = min(max(interval, MIN_INTERVAL), MAX_INTERVAL)
        self.stop = stop
        self.thread = threading.Thread(target=self._run, name="lag-monitor", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def refresh(self) -> None:
        for ctx in self.contexts:
            try:
                cursor = ctx.store.read_checkpoint(ctx.source.name)
            except DicomcastError as exc:
                log.debug("checkpoint unreadable", source=ctx.source.name, error=str(exc))
                continue
            update_lag(ctx, cursor)

    def _run(self) -> None:
        while not self.stop.is_set():
            self.refresh()
            self.stop.wait(self.interval.total_seconds())
