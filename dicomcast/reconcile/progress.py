"""Progress of a run: one redrawn line on a terminal (stderr), `reconcile progress` log lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from dicomcast.logs import get_logger

log = get_logger("dicomcast.reconcile")
LOG_EVERY_S = 10.0


class Progress:
    def __init__(self, source: str, total: int, done: int = 0, stream: TextIO | None = None) -> None:
        self.source = source
        self.total = total
        self.done = done
        self.differing = 0
        self.stream = stream or sys.stderr
        self.on_terminal = self.stream.isatty()
        self._started = time.monotonic()
        self._first = done
        self._last_log = 0.0

    def advance(self, studies: int, differing: int) -> None:
        self.done += studies
        self.differing += differing
        self._show(final=False)

    def finish(self) -> None:
        self._show(final=True)
        if self.on_terminal:
            self.stream.write("\n")
            self.stream.flush()

    def rate(self) -> float:
        elapsed = max(time.monotonic() - self._started, 1e-6)
        return (self.done - self._first) / elapsed

    def seconds_left(self) -> float | None:
        rate = self.rate()
        return (self.total - self.done) / rate if rate > 0 else None

    def _show(self, *, final: bool) -> None:
        left = self.seconds_left()
        if self.on_terminal:
            eta = f"{left:.0f} s left" if left is not None else "time left unknown"
            self.stream.write(
                f"\r{self.source}: {self.done} of {self.total} studies checked, {self.rate():.1f}/s, {eta}, "
                f"{self.differing} differing   "
            )
            self.stream.flush()
            return
        now = time.monotonic()
        if final or now - self._last_log >= LOG_EVERY_S:
            self._last_log = now
            log.info(
                "reconcile progress",
                source=self.source,
                checked=self.done,
                total=self.total,
                per_second=round(self.rate(), 1),
                seconds_left=round(left) if left is not None else None,
                differing=self.differing,
            )
