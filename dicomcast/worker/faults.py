"""Fault-injection points for the crash-safety tests. Off unless DICOMCAST_FAULT_* is set.

`DICOMCAST_FAULT_HOLD=<point>:<n>`: the n-th time the worker reaches `<point>` it prints the line
`dicomcast-fault-hold <point> <n>` and that thread stops there until the test kills the process
(`kill -9`). So a test kills at a known moment, whatever the machine's speed. Points:
`page-read` (a batch read, nothing written), `study-written` (one study's FHIR write done, others in
flight, the checkpoint not saved), `before-checkpoint` (every write of the batch done, its checkpoint
not saved: the worst moment) and `after-checkpoint`.

`DICOMCAST_FAULT_UNEXPECTED=1`: `run` raises a RuntimeError as it starts, standing in for a bug (the
logging test checks that it is logged as JSON with its type and stack).

Never set them in production.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import Counter

HOLD = "DICOMCAST_FAULT_HOLD"
MARKER = "dicomcast-fault-hold"
POINTS = ("page-read", "study-written", "before-checkpoint", "after-checkpoint")
UNEXPECTED = "DICOMCAST_FAULT_UNEXPECTED"

_reached: Counter[str] = Counter()
_lock = threading.Lock()


def reached(point: str) -> None:
    """Called where `point` happens; holds the calling thread when the test asked for this moment."""
    wanted = os.environ.get(HOLD)
    if not wanted or not wanted.startswith(f"{point}:"):
        return
    with _lock:
        _reached[point] += 1
        count = _reached[point]
    if count == int(wanted.partition(":")[2]):
        sys.stdout.write(f"{MARKER} {point} {count}\n")
        sys.stdout.flush()
        threading.Event().wait()  # held until the test's SIGKILL


def unexpected_at_start() -> None:
    """Called as `run` starts."""
    if os.environ.get(UNEXPECTED):
        raise RuntimeError(f"fault injected by {UNEXPECTED}")
