"""What the sync of one source needs, built once at start-up and shared by its threads: its
dependencies (`SyncContext`), how hard to work (`Tuning`), and what it learns while running
(`EndpointCache`, `CarryOver`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from dicomcast.config.settings import TableStoreSettings
from dicomcast.dicom.models import ChangeSource
from dicomcast.fhir.client import FhirClient
from dicomcast.fhir.mapping.types import MappingOptions
from dicomcast.store import Store
from dicomcast.worker.retry import call_with_retry

T = TypeVar("T")


@dataclass(frozen=True)
class Tuning:
    """DicomCastWorker:MaxConcurrentStudies, :MaxBatchEntries, :MaxBundleEntries, :MaxBundleBytes
    and RetryConfiguration:*."""

    max_concurrent_studies: int = 8
    max_batch_entries: int = 1000
    max_bundle_entries: int = 500
    max_bundle_bytes: int = 1_048_576
    retry_attempts: int = 8
    retry_budget: timedelta = timedelta(minutes=2)


class EndpointCache:
    """partition -> FHIR Endpoint id, found or written once per process (under a lock: the studies
    of a page run in parallel and must not write the Endpoint twice). The id is known once decided,
    before its write lands (worker/endpoints.py)."""

    def __init__(self) -> None:
        self._ids: dict[str | None, str] = {}
        self._lock = threading.Lock()  # held while an Endpoint is checked and written
        self._decided: dict[str | None, str] = {}
        self._deciding: dict[str | None, threading.Event] = {}  # a check in flight in a thread
        self._prefetched: set[str | None] = set()  # partitions endpoints.prefetch has seen
        self._own_lock = threading.Lock()  # for the three above: never held while FHIR is called

    def first_seen(self, partitions: set[str | None]) -> set[str | None]:
        """Those of `partitions` not seen before (each is prefetched once; pages are read in two threads)."""
        with self._own_lock:
            new = partitions - self._prefetched
            self._prefetched |= new
            return new

    def get(self, partition: str | None, ensure: Callable[[], str]) -> str:
        with self._lock:
            if partition not in self._ids:
                self._ids[partition] = ensure()
            return self._ids[partition]

    def deciding(self, partition: str | None) -> None:
        """A check of `partition` started in a thread: `decided` waits for its decision."""
        with self._own_lock:
            self._deciding.setdefault(partition, threading.Event())

    def decide(self, partition: str | None, endpoint_id: str) -> None:
        with self._own_lock:
            self._decided[partition] = endpoint_id
            event = self._deciding.get(partition)
        if event is not None:
            event.set()

    def settled(self, partition: str | None) -> None:
        """The threaded check ended, decided or not (a failed one decides nothing)."""
        with self._own_lock:
            event = self._deciding.get(partition)
        if event is not None:
            event.set()

    def decided(self, partition: str | None) -> str | None:
        """The Endpoint id chosen for `partition` (perhaps not written yet), after a threaded check in
        flight has decided; None when no check has decided one."""
        with self._own_lock:
            event = self._deciding.get(partition)
        if event is not None:
            event.wait()
        with self._own_lock:
            return self._decided.get(partition)


@dataclass
class CarryOver:
    """DICOM Cast's Table Storage, whose checkpoint seeds this source's first start (carry_over.py)."""

    table: TableStoreSettings | None = None
    done: bool = False


@dataclass
class SyncContext:
    source: ChangeSource
    fhir: FhirClient
    store: Store
    options: MappingOptions
    tuning: Tuning = field(default_factory=Tuning)
    stop_event: threading.Event = field(default_factory=threading.Event)
    endpoints: EndpointCache = field(default_factory=EndpointCache)
    carry_over: CarryOver = field(default_factory=CarryOver)

    def retry(self, fn: Callable[[], T]) -> T:
        """`fn` under the transient-failure policy (worker/retry.py), ended early by a stop request."""
        return call_with_retry(
            fn, max_attempts=self.tuning.retry_attempts, budget=self.tuning.retry_budget, stop_event=self.stop_event
        )
