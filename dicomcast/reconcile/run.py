"""One source's reconciliation: list, compare, report, repair, in chunks of studies.

1. QIDO-RS lists the source's studies (every partition in use; the run's filters), sorted by
   (partition, Study Instance UID): the order the run works in and resumes by.
2. Per chunk: one FHIR search finds the chunk's ImagingStudies by identifier; one QIDO-RS request per
   study (per 200 instances) lists its instances, in parallel up to
   DicomCastWorker:MaxConcurrentStudies; compare.py finds the differences; studies that differ (all,
   with --full) have their WADO-RS metadata read and mapped (plan.py); a repair writes them
   (repair.py) and then saves the resume point.
3. FHIR's ImagingStudies of this source (`_source`: its DICOMweb address, and DICOM Cast's) whose
   study was not listed are checked the same way: gone from DICOM, they are removed.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TextIO, TypeVar

import httpx

from dicomcast.dicom.inventory import Inventory, StudyFilter, StudyRef, instance_of
from dicomcast.dicom.models import DicomWebSource
from dicomcast.errors import ConfigError
from dicomcast.fhir.mapping import ids, legacy
from dicomcast.fhir.mapping.types import SourceContext, StudyOutput
from dicomcast.logs import get_logger
from dicomcast.reconcile.compare import Difference, StudyCheck, compare
from dicomcast.reconcile.plan import evaluate, has_writes, study_context
from dicomcast.reconcile.progress import Progress
from dicomcast.reconcile.repair import RepairResult, repair
from dicomcast.reconcile.state import RunState, fingerprint
from dicomcast.worker import lookups
from dicomcast.worker.context import SyncContext

log = get_logger("dicomcast.reconcile")
T = TypeVar("T")
CHUNK_STUDIES = 50
# The DICOM client's connection pool (dicom/sources.py POOL_SIZE). More threads than connections
# only queue for them, and against a loopback server that queueing gave read errors and 60-s stalls.
DICOM_CONNECTIONS = 4


@dataclass(frozen=True)
class RunOptions:
    dry_run: bool = False
    filters: StudyFilter = field(default_factory=StudyFilter)
    full: bool = False  # map every study's metadata, not only those QIDO-RS shows differing
    chunk_studies: int = CHUNK_STUDIES


@dataclass
class SourceReport:
    source: str
    listed: int = 0
    checked: int = 0
    differing: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    studies_written: int = 0
    duplicates_deleted: int = 0
    references_moved: int = 0
    failures: int = 0
    unresolved: int = 0
    dicom_requests: int = 0
    fhir_requests: int = 0
    resumed_after: str | None = None
    interrupted: bool = False

    def summary(self) -> dict[str, Any]:
        per_study = max(self.checked, 1)
        return {
            **{k: v for k, v in vars(self).items() if k != "kinds"},
            "kinds": dict(sorted(self.kinds.items())),
            "dicom_requests_per_study": round(self.dicom_requests / per_study, 2),
            "fhir_requests_per_study": round(self.fhir_requests / per_study, 2),
        }


class _RequestCounter:
    """Counts the FHIR client's requests while a run lasts (an httpx request hook)."""

    def __init__(self, client: httpx.Client) -> None:
        self.client, self.count, self._lock = client, 0, threading.Lock()
        hooks = client.event_hooks
        client.event_hooks = {**hooks, "request": [*hooks.get("request", []), self._hook]}

    def _hook(self, request: httpx.Request) -> None:
        with self._lock:
            self.count += 1

    def close(self) -> None:
        hooks = self.client.event_hooks
        self.client.event_hooks = {**hooks, "request": [h for h in hooks.get("request", []) if h != self._hook]}


def reconcile_source(ctx: SyncContext, options: RunOptions, stream: TextIO | None = None) -> SourceReport:
    dicomweb = ctx.source.dicomweb()
    if dicomweb is None:
        raise ConfigError([f"{ctx.source.name}: this kind of source cannot be reconciled"])
    return _Run(ctx, options, dicomweb, stream).execute()


class _Run:
    def __init__(self, ctx: SyncContext, options: RunOptions, dicomweb: DicomWebSource, stream: TextIO | None) -> None:
        self.ctx, self.options, self.stream = ctx, options, stream
        self.dicomweb, self.inventory = dicomweb, Inventory(dicomweb)
        self.report = SourceReport(ctx.source.name)
        self.state = (
            None
            if options.dry_run
            else RunState(ctx.store, ctx.source.name, fingerprint(options.filters, options.full))
        )
        self.contexts: dict[str | None, SourceContext] = {}

    def execute(self) -> SourceReport:
        counter = _RequestCounter(self.ctx.fhir.http)
        if self.state:
            self.state.take_lease()
        try:
            self._execute()
        finally:
            counter.close()
            if self.state:
                self.state.release()
            self.report.dicom_requests = self.inventory.requests
            self.report.fhir_requests = counter.count
        log.info("reconcile summary", dry_run=self.options.dry_run, **self.report.summary())
        return self.report

    def _execute(self) -> None:
        refs = self._retry(lambda: self.inventory.studies(self.options.filters))
        after = self.state.resume_after() if self.state else None
        todo = [r for r in refs if after is None or r > after]
        if after is not None and len(todo) < len(refs):
            self.report.resumed_after = after.study_uid
            log.info("reconcile resumes", source=self.report.source, after=after.study_uid, left=len(todo))
        self.report.listed = len(refs)
        progress = Progress(self.report.source, len(refs), len(refs) - len(todo), self.stream)
        if not self._chunks(todo, progress):
            return
        listed = {(r.partition_key, r.study_uid) for r in refs}
        only_in_fhir = [r for r in self._fhir_studies() if (r.partition_key, r.study_uid) not in listed]
        progress.total += len(only_in_fhir)
        if self._chunks(only_in_fhir, progress):
            progress.finish()
            if self.state:
                self.state.finish()

    def _chunks(self, refs: Sequence[StudyRef], progress: Progress) -> bool:
        for chunk in _split(refs, self.options.chunk_studies):
            if self.ctx.stop_event.is_set():
                self.report.interrupted = True
                log.warning("reconcile interrupted; run it again to resume", source=self.report.source)
                return False
            differing = self._chunk(chunk)
            progress.advance(len(chunk), differing)
        return True

    def _chunk(self, chunk: list[StudyRef]) -> int:
        ctx = self.ctx
        found = self._retry(lambda: lookups.studies_by_uid(ctx.fhir, {r.study_uid for r in chunk}))
        listed = self._parallel(
            lambda ref: self._retry(lambda: self.inventory.instances(ref)), chunk, DICOM_CONNECTIONS
        )
        checks = []
        for ref, dicom in zip(chunk, listed, strict=True):
            source_ctx = self._context(ref.partition)
            checks.append(compare(ref, dicom, found.get(ref.study_uid, []), source_ctx, source_ctx.service_root))
        outputs = self._plan(checks)
        differing = [c for c in checks if c.differences]
        for check in differing:
            self._note(check, outputs.get(check.ref))
        if not self.options.dry_run and differing:
            self._account(repair(ctx, differing, outputs), differing, outputs)
        if self.state:
            self.state.save(chunk[-1])
        self.report.checked += len(chunk)
        return len(differing)

    def _plan(self, checks: list[StudyCheck]) -> dict[StudyRef, StudyOutput]:
        """Read and map the metadata of the studies that differ (all, with --full). A study QIDO-RS
        listed empty is gone only if WADO-RS says so too (an explicit 404): never guessed."""
        wanted = [c for c in checks if c.needs_rewrite or (self.options.full and not c.gone)]
        metadata = self._parallel(
            lambda c: self._retry(lambda: self.inventory.metadata(c.ref)), wanted, DICOM_CONNECTIONS
        )
        for check, items in zip(wanted, metadata, strict=True):
            check.metadata = items
            if check.gone and items:  # listed late (just stored): present after all
                check.dicom = [i for i in map(instance_of, items) if i is not None]
                check.differences = [Difference("missing-instances", "QIDO-RS listed none, WADO-RS has some")]
        return evaluate(self.ctx, wanted)

    def _note(self, check: StudyCheck, output: StudyOutput | None) -> None:
        self.report.differing += 1
        self.report.kinds.update(d.kind for d in check.differences)
        log.warning(
            "difference",
            source=self.report.source,
            study_uid=check.ref.study_uid,
            partition=check.ref.partition,
            differences=[str(d) for d in check.differences],
            repair="none (dry run)" if self.options.dry_run else _repair_plan(check, output),
        )

    def _account(self, result: RepairResult, differing: list[StudyCheck], outputs: dict[StudyRef, StudyOutput]) -> None:
        report = self.report
        report.studies_written += result.studies_written
        report.duplicates_deleted += result.duplicates_deleted
        report.references_moved += result.references_moved
        report.failures += result.failures
        stuck = [
            c
            for c in differing
            if c.ref.study_uid in result.failed_studies
            or (c.needs_rewrite and not c.gone and not has_writes(outputs.get(c.ref)))
        ]
        for check in stuck:
            log.error("difference not repaired", source=report.source, study_uid=check.ref.study_uid)
        report.unresolved += len(stuck)

    def _context(self, partition: str | None) -> SourceContext:
        if partition not in self.contexts:
            self.contexts[partition] = self._retry(
                lambda: study_context(self.ctx, partition, dry_run=self.options.dry_run)
            )
        return self.contexts[partition]

    def _fhir_studies(self) -> list[StudyRef]:
        """ImagingStudies FHIR holds for this source (by meta.source), within the run's filters."""
        filters, found = self.options.filters, set()
        source = self.dicomweb
        for partition in self._retry(source.partitions_in_use):
            address = source.endpoint_address(partition)
            params = {"_source": ",".join([address, *legacy.dicom_cast_addresses(address)])}
            params["_elements"] = "identifier,started"
            if filters.study_uid:
                params["identifier"] = ids.study_token(filters.study_uid)
            for study in self._retry(lambda p=params: self.ctx.fhir.search("ImagingStudy", p)):  # type: ignore[misc]
                uid = ids.study_uid_of(study)
                if uid and _within(study.get("started"), filters):
                    found.add(StudyRef(partition or "", uid))
        return sorted(found)

    def _parallel(self, fn: Callable[[Any], T], items: Sequence[Any], connections: int) -> list[T]:
        if not items:
            return []
        workers = max(1, min(self.ctx.tuning.max_concurrent_studies, connections, len(items)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconcile") as pool:
            return list(pool.map(fn, items))

    def _retry(self, fn: Callable[[], T]) -> T:
        return self.ctx.retry(fn)


def _repair_plan(check: StudyCheck, output: StudyOutput | None) -> str:
    from dicomcast.reconcile.plan import describe_writes

    steps = (
        [f"merge {len(check.extras)} duplicate(s) into {check.kept and check.kept.get('id')}"] if check.extras else []
    )
    if check.gone:
        steps.append("remove the ImagingStudy (gone from DICOM)")
    elif output is not None and has_writes(output):
        steps.append(describe_writes(output, check.kept))
    return "; ".join(steps) or "nothing the mapping can write"


def _within(started: Any, filters: StudyFilter) -> bool:
    if not (filters.date_from or filters.date_to):
        return True
    try:
        day = date.fromisoformat(str(started)[:10])
    except ValueError:
        return False
    return (filters.date_from is None or day >= filters.date_from) and (
        filters.date_to is None or day <= filters.date_to
    )


def _split(items: Sequence[StudyRef], size: int) -> Iterator[list[StudyRef]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
