"""What the sync of one source needs, built once at start-up and shared by its threads: its
dependencies (`SyncContext`), how hard to work (`Tuning`), and what it learns while running
(`EndpointCache`, `CarryOver`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from dicomcast.config.settings import TableStoreSettings
from dicomcast.dicom.models import ChangeSource
from dicomcast.fhir.client import FhirClient
from dicomcast.fhir.mapping.types import MappingOptions, Resource
from dicomcast.store import Store
from dicomcast.worker.retry import call_with_retry

T = TypeVar("T")


@dataclass(frozen=True)
class Tuning:
    """DicomCastWorker:MaxConcurrentStudies, :MaxBatchEntries, :MaxBatchBytes, :MaxBundleEntries,
    :MaxBundleBytes and RetryConfiguration:*."""

    max_concurrent_studies: int = 8
    max_batch_entries: int = 1000
    max_batch_bytes: int = 2_097_152
    max_bundle_entries: int = 500
    max_bundle_bytes: int = 1_048_576
    retry_attempts: int = 8
    retry_budget: timedelta = timedelta(minutes=2)


class EndpointCache:
    """partition -> FHIR Endpoint id, found or written once per process (under a lock: the studies
    of a page run in parallel and must not write the Endpoint twice). The id is known once decided,
    before its write lands; a write the check left to be done (`unwritten`) is carried by the
    batch's first transaction or made alone before anything refers to it (worker/endpoints.py)."""

    def __init__(self) -> None:
        self._ids: dict[str | None, str] = {}
        self._lock = threading.Lock()  # held while an Endpoint is checked and written
        self._decided: dict[str | None, str] = {}
        self._deciding: dict[str | None, threading.Event] = {}  # a check in flight in a thread
        self._prefetched: set[str | None] = set()  # partitions endpoints.prefetch has seen
        self._unwritten: dict[str | None, Resource] = {}  # decided, still to be written
        self._carried: dict[str | None, threading.Event] = {}  # in a transaction in flight
        self._own_lock = threading.Lock()  # for the five above: never held while FHIR is called

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

    def unwritten(self, partition: str | None, endpoint: Resource) -> None:
        """The check decided `endpoint` must be written: by the first transaction that takes it, or
        by `write_unwritten`."""
        with self._own_lock:
            self._unwritten[partition] = endpoint

    def take_unwritten(self, partitions: set[str | None]) -> dict[str | None, Resource]:
        """The Endpoints of `partitions` still to be written, for one transaction to carry (each
        taken once; `carried` says how it went). None while one is being checked or written."""
        if not self._lock.acquire(blocking=False):
            return {}
        try:
            with self._own_lock:
                taken = {p: self._unwritten.pop(p) for p in partitions if p in self._unwritten}
                self._carried.update((p, threading.Event()) for p in taken)
                return taken
        finally:
            self._lock.release()

    def carried(self, taken: Mapping[str | None, Resource], landed: bool) -> None:
        """The transaction carrying `taken` landed (they are written) or failed (still to be written)."""
        with self._own_lock:
            events = [self._carried.pop(p) for p in taken]
            if not landed:
                self._unwritten.update(taken)
        for event in events:
            event.set()

    def write_unwritten(self, partition: str | None, write: Callable[[Resource], object]) -> None:
        """`partition`'s Endpoint is written: after the transaction carrying it, if one is in
        flight, or now with `write` if it is still to be written."""
        with self._lock:
            with self._own_lock:
                event = self._carried.get(partition)
            if event is not None:
                event.wait()
            with self._own_lock:
                endpoint = self._unwritten.get(partition)
            if endpoint is not None:
                write(endpoint)
                with self._own_lock:
                    self._unwritten.pop(partition, None)

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
