"""`python -m tests.fault_entry <dicomcast args>`: the `dicomcast` command with faults injected at the
moments of dicomcast/worker/hooks.py, for the crash-safety and logging tests. Never used in production.

`DICOMCAST_FAULT_HOLD=<moment>:<n>`: the n-th time the worker reaches `<moment>` it prints the line
`dicomcast-fault-hold <moment> <n>` and that thread stops there until the test kills the process
(`kill -9`). So a test kills at a known moment, whatever the machine's speed.

`DICOMCAST_FAULT_UNEXPECTED=1`: `run` raises a RuntimeError as it starts, standing in for a bug (the
logging test checks that it is logged as JSON with its type and stack).
"""

from __future__ import annotations

import os
import sys
import threading
from collections import Counter

from dicomcast.cli import main
from dicomcast.worker import hooks

HOLD = "DICOMCAST_FAULT_HOLD"
MARKER = "dicomcast-fault-hold"
POINTS: tuple[hooks.Moment, ...] = ("page-read", "study-written", "before-checkpoint", "after-checkpoint")
UNEXPECTED = "DICOMCAST_FAULT_UNEXPECTED"


class Hold:
    """Holds the thread that reaches the moment the `nth` time, after saying so on stdout."""

    def __init__(self, nth: int) -> None:
        self.nth = nth
        self.reached: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, moment: hooks.Moment) -> None:
        with self.lock:
            self.reached[moment] += 1
            count = self.reached[moment]
        if count == self.nth:
            sys.stdout.write(f"{MARKER} {moment} {count}\n")
            sys.stdout.flush()
            threading.Event().wait()  # held until the test's SIGKILL


def unexpected_at_start(moment: hooks.Moment) -> None:
    raise RuntimeError(f"fault injected by {UNEXPECTED}")


def register_from_environment() -> None:
    wanted = os.environ.get(HOLD)
    if wanted:
        name, _, nth = wanted.partition(":")
        moment = next((point for point in POINTS if point == name), None)
        if moment is None:
            raise SystemExit(f"{HOLD}: unknown moment {name!r}; one of {', '.join(POINTS)}")
        hooks.observe(moment, Hold(int(nth)))
    if os.environ.get(UNEXPECTED):
        hooks.observe("run-start", unexpected_at_start)


if __name__ == "__main__":
    register_from_environment()
    main()
