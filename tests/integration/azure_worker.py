"""Runs the real worker (build → SourceWorker → run_once) against the loopback Azure DICOM server."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dicomcast.config import load_settings
from dicomcast.dicom.azure import AzureChangeFeedSource
from dicomcast.worker.build import build
from dicomcast.worker.loop import CycleReport
from dicomcast.worker.runner import make_workers, run_once
from dicomcast.worker.state import WorkerState


def _now_plus_one() -> datetime:
    return datetime.now(UTC) + timedelta(seconds=1)


def azure_env(endpoint: str, fhir_url: str, store: Path, **extra: str) -> dict[str, str]:
    return {
        "DicomWeb__Endpoint": endpoint,
        "Fhir__Endpoint": fhir_url,
        "Store__ConnectionString": f"sqlite:///{store}",
        "Patient__PatientSystemId": "urn:oid:1.2.3.4.5",
        **extra,
    }


def sync_once(
    env: dict[str, str],
    *,
    after_page: Callable[[int], None] | None = None,
    stop_event: threading.Event | None = None,
) -> CycleReport:
    """One `run --once` of the real worker. The source reads windows ending 1 s in the future with no
    safety lag (the production lag of a few seconds would make each test wait for it)."""
    settings = load_settings(environ=env).settings
    parts = build(settings, stop_event)
    try:
        for ctx in parts.contexts:
            ctx.source.close()
            ctx.source = AzureChangeFeedSource(
                settings.dicom_web, batch_size=settings.worker.batch_size, clock=_now_plus_one, safety_lag=timedelta(0)
            )
            if after_page is not None:
                ctx.source = _Counting(ctx.source, after_page)
        workers = make_workers(parts.contexts, WorkerState(), settings.worker.lease_duration)
        return run_once(workers)[0]
    finally:
        parts.close()


class _Counting:
    """Wraps a source to call `after_page(n)` after its n-th page is read (to stop mid-window)."""

    def __init__(self, inner: AzureChangeFeedSource, after_page: Callable[[int], None]) -> None:
        self._inner = inner
        self._after_page = after_page
        self._pages = 0
        self.name = inner.name

    def read_page(self, cursor: str | None):  # type: ignore[no-untyped-def]
        page = self._inner.read_page(cursor)
        self._pages += 1
        self._after_page(self._pages)
        return page

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._inner, name)
