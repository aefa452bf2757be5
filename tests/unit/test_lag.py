"""Feed lag from the source's latest() against the checkpoint."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from dicomcast.dicom.models import FeedPosition
from dicomcast.errors import TransientUpstreamError
from dicomcast.worker import metrics
from dicomcast.worker.lag import LagMonitor, cursor_sequence, lag_of, update_lag

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cursor", "sequence"),
    [(None, 0), ("", 0), ("42", 42), ("17@638761234567890000#3", 17), ("garbage", None)],
)
def test_cursor_sequence_reads_every_source_form(cursor: str | None, sequence: int | None) -> None:
    assert cursor_sequence(cursor) == sequence


def test_lag_counts_sequences_and_the_age_of_the_newest_change() -> None:
    position = FeedPosition(50, NOW - timedelta(seconds=90))
    assert lag_of(position, "42", NOW) == (8, 90.0)


def test_caught_up_is_zero_lag_whatever_the_feed_time() -> None:
    assert lag_of(FeedPosition(42, NOW - timedelta(days=3)), "42", NOW) == (0, 0.0)


def test_unknown_feed_end_or_cursor_gives_no_lag() -> None:
    assert lag_of(FeedPosition(None, None), "42", NOW) == (None, None)
    assert lag_of(FeedPosition(50, None), "garbage", NOW) == (None, None)
    assert lag_of(FeedPosition(50, None), "40", NOW) == (10, None)


class _Source:
    def __init__(self, name: str, position: FeedPosition | Exception) -> None:
        self.name = name
        self.position = position

    def latest(self) -> FeedPosition:
        if isinstance(self.position, Exception):
            raise self.position
        return self.position


def _ctx(source: _Source, cursor: str | None = None) -> Any:
    return SimpleNamespace(source=source, store=SimpleNamespace(read_checkpoint=lambda name: cursor))


def _value(gauge: Any, source: str) -> float:
    return float(gauge.labels(source)._value.get())


def test_update_lag_sets_the_gauges() -> None:
    update_lag(_ctx(_Source("lag-a", FeedPosition(30, datetime.now(UTC) - timedelta(seconds=5)))), "10")
    assert _value(metrics.LAG_SEQUENCES, "lag-a") == 20
    assert _value(metrics.LAG_SECONDS, "lag-a") >= 5
    assert _value(metrics.CHECKPOINT, "lag-a") == 10


def test_upstream_trouble_leaves_the_gauges_as_they_were() -> None:
    update_lag(_ctx(_Source("lag-b", FeedPosition(9, None))), "4")
    update_lag(_ctx(_Source("lag-b", TransientUpstreamError("Orthanc", "GET /changes: ConnectError"))), "9")
    assert _value(metrics.LAG_SEQUENCES, "lag-b") == 5


def test_monitor_refreshes_from_the_stored_checkpoint_and_bounds_its_interval() -> None:
    monitor = LagMonitor([_ctx(_Source("lag-c", FeedPosition(12, None)), "12")], timedelta(0), threading.Event())
    monitor.refresh()
    assert _value(metrics.LAG_SEQUENCES, "lag-c") == 0
    assert monitor.interval == timedelta(seconds=5)
