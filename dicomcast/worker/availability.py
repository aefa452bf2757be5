"""Staying up while a dependency is down: backoff, state-change logging, and safe reasons.

`dicomcast run` never exits because the FHIR server, the DICOM server or the store is unreachable,
refusing, or answering 401/403 (Azure role assignments take minutes to propagate after a
deployment): it waits with capped exponential backoff, logs each change of state once ("FHIR server
unavailable: ..., retrying", then "FHIR server available"), and /readyz answers 503 with the reason.
Only invalid configuration (ConfigError) ends it.

Reasons name the service, the error class and the status code, never text a server sent back (it
may hold PHI or echo secrets).
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from dicomcast.errors import AuthError, ConfigError, DicomcastError, LeaseLostError, StoreError, UpstreamError
from dicomcast.logs import get_logger

T = TypeVar("T")
log = get_logger("dicomcast.availability")

RETRY_CAP = timedelta(minutes=2)  # the longest wait between two attempts to reach a dependency
RETRY_FIRST = timedelta(seconds=1)
# Names an AuthError message may start with (auth flows, the HTTP boundary, Key Vault); only these
# are echoed, so nothing a server wrote can reach a reason.
KNOWN_SERVICES = ("FHIR server", "Fhir", "DICOMweb", "DicomWeb", "Orthanc", "Key Vault")


class StopRequested(Exception):  # noqa: N818 - a signal, not an error
    """A stop (SIGTERM/SIGINT) arrived while waiting for a dependency."""


class Backoff:
    """Capped exponential backoff with jitter: 1 s, 2 s, 4 s ... up to `cap`."""

    def __init__(self, first: timedelta = RETRY_FIRST, cap: timedelta = RETRY_CAP) -> None:
        self.first = first.total_seconds()
        self.cap = cap.total_seconds()
        self.failures = 0

    def next_delay(self) -> float:
        self.failures += 1
        delay = min(self.cap, self.first * 2 ** min(self.failures - 1, 30))
        return float(min(self.cap, delay * random.uniform(0.8, 1.2)))  # noqa: S311 - jitter, not crypto

    def reset(self) -> None:
        self.failures = 0


def safe_reason(exc: BaseException) -> str:
    """What went wrong, for logs' summary and /readyz: service, class, status; no server text."""
    kind = type(exc).__name__
    if isinstance(exc, UpstreamError):
        if exc.status is not None:
            return f"{exc.service} answered HTTP {exc.status} ({kind})"
        return f"{exc.service} unreachable ({kind})"
    if isinstance(exc, AuthError):
        text = str(exc)
        service = next((s for s in KNOWN_SERVICES if text.startswith(s)), "a server")
        status = next((code for code in ("401", "403") if re.search(rf"\b{code}\b", text)), None)
        answered = f" answered HTTP {status}" if status else " refused the credentials"
        return f"{service}{answered} ({kind})"
    if isinstance(exc, StoreError):
        return f"store unavailable ({kind})"
    if isinstance(exc, LeaseLostError):
        return f"lease taken by another worker ({kind})"
    return kind if isinstance(exc, DicomcastError) else f"unexpected {kind}"


class Availability:
    """Which dependencies are down and why; logs each change of state once. Thread-safe."""

    def __init__(self) -> None:
        self._problems: dict[str, str] = {}
        self._lock = threading.Lock()

    def down(self, name: str, exc: BaseException) -> None:
        reason = safe_reason(exc)
        with self._lock:
            changed = self._problems.get(name) != reason
            self._problems[name] = reason
        if changed:
            log.warning(f"{name} unavailable, retrying", dependency=name, reason=reason, error=str(exc))

    def up(self, name: str) -> None:
        with self._lock:
            was_down = self._problems.pop(name, None) is not None
        if was_down:
            log.info(f"{name} available", dependency=name)

    def problems(self) -> dict[str, str]:
        with self._lock:
            return dict(self._problems)


def wait_until_available(
    name: str,
    attempt: Callable[[], T],
    availability: Availability,
    stop_event: threading.Event,
    backoff: Backoff | None = None,
) -> T:
    """Call `attempt` until it succeeds. ConfigError propagates (configuration, not availability);
    every other dicomcast error (unreachable, refusing, 401/403, unsupported answer) is waited out."""
    delays = backoff or Backoff()
    while True:
        if stop_event.is_set():
            raise StopRequested(name)
        try:
            result = attempt()
        except ConfigError:
            raise
        except DicomcastError as exc:
            availability.down(name, exc)
            stop_event.wait(delays.next_delay())
            continue
        availability.up(name)
        return result
