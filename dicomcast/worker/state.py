"""The worker's live status per source, read by /healthz, /readyz and the status line."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass
class SourceStatus:
    source: str
    lease_held: bool = False
    last_cycle_ok: bool | None = None
    last_cycle_at: datetime | None = None
    last_error: str | None = None
    last_progress_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    checkpoint: str | None = None


@dataclass
class WorkerState:
    sources: dict[str, SourceStatus] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def status(self, source: str) -> SourceStatus:
        with self.lock:
            return self.sources.setdefault(source, SourceStatus(source))

    def progressed(self, source: str) -> None:
        self.status(source).last_progress_at = datetime.now(UTC)
