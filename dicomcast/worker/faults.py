"""Fault-injection points for the crash-safety tests. Off unless DICOMCAST_FAULT_* is set.

`DICOMCAST_FAULT_KILL_BEFORE_CHECKPOINT=N`: the process kills itself with SIGKILL (as `kill -9`
would) right after the FHIR writes of its N-th page and before that page's checkpoint is saved: the
worst moment for a crash, which a test cannot hit reliably from outside. Never set it in production.

`DICOMCAST_FAULT_UNEXPECTED=1`: `run` raises a RuntimeError as it starts, standing in for a bug (the
logging test checks that it is logged as JSON with its type and stack).
"""

from __future__ import annotations

import os
import signal

KILL_BEFORE_CHECKPOINT = "DICOMCAST_FAULT_KILL_BEFORE_CHECKPOINT"
UNEXPECTED = "DICOMCAST_FAULT_UNEXPECTED"

_pages_written = 0


def before_checkpoint() -> None:
    """Called between a page's FHIR writes and its checkpoint save."""
    global _pages_written
    wanted = os.environ.get(KILL_BEFORE_CHECKPOINT)
    if not wanted:
        return
    _pages_written += 1
    if _pages_written >= int(wanted):
        os.kill(os.getpid(), signal.SIGKILL)


def unexpected_at_start() -> None:
    """Called as `run` starts."""
    if os.environ.get(UNEXPECTED):
        raise RuntimeError(f"fault injected by {UNEXPECTED}")
