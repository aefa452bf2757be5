"""Studies of a batch share FHIR transactions: each study is mapped, its entries join the open bundle
until DicomCastWorker:MaxBundleEntries or :MaxBundleBytes is reached, and full bundles are written
while the next studies are mapped (up to MaxConcurrentStudies bundles in flight).

A transaction is all or nothing, so a study's Patient and ImagingStudy still land together. When a
bundle fails for one of its studies (412 on If-Match, a 4xx for an invalid resource), nothing of it
was written: it is split in halves and each half is sent again, down to the study alone, which then
takes the one-study path of study_write.py (re-read and re-merge on 412; each entry alone on a
permanent error). One bad study among n costs about 2·log2(n) extra requests; the others land.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import copy_context
from dataclasses import dataclass, field
from functools import partial

import structlog

from dicomcast import telemetry
from dicomcast.dicom.models import ChangeEntry
from dicomcast.errors import ConflictError, MappingError, PermanentUpstreamError
from dicomcast.fhir.client import EncodedEntries, WriteResult, encode_entries, put_entry
from dicomcast.fhir.mapping.study import needs_dose_observations
from dicomcast.fhir.mapping.types import SourceContext, StudyInput, StudyOutput
from dicomcast.logs import get_logger
from dicomcast.worker import hooks, lookups, metrics
from dicomcast.worker.context import SyncContext
from dicomcast.worker.study_write import (
    StudyResult,
    StudyState,
    map_output,
    remember_written,
    sync_study,
    transaction_entries,
    write_alone,
)

log = get_logger("dicomcast.worker")
BUNDLE_OVERHEAD = 64  # bytes of the Bundle around its entries


@dataclass
class StudyJob:
    """One study of a batch: its entries in feed order and what FHIR holds for it (its lane's view)."""

    source_ctx: SourceContext
    study_uid: str
    partition: str | None
    entries: list[ChangeEntry]
    state: StudyState


@dataclass
class Planned:
    job: StudyJob
    result: StudyResult
    output: StudyOutput = field(default_factory=StudyOutput)
    encoded: EncodedEntries = field(default_factory=lambda: EncodedEntries(b"", 0))
    urls: frozenset[str] = frozenset()
    started: float = field(default_factory=time.perf_counter)
    started_ns: int = field(default_factory=time.time_ns)


class Once:
    """`wait` called before the first write to FHIR, once: what the writes refer to must exist first
    (the Endpoint), while the studies may already be mapped. If it raised, every later caller gets
    the same error at once (the batch fails once, not once per bundle after its own retries)."""

    def __init__(self, wait: Callable[[], None]) -> None:
        self._wait = wait
        self._lock = threading.Lock()
        self._done = False
        self._error: BaseException | None = None

    def __call__(self) -> None:
        with self._lock:
            if self._error is not None:
                raise self._error
            if not self._done:
                try:
                    self._wait()
                except BaseException as exc:
                    self._error = exc
                    raise
                self._done = True


def write_studies(
    ctx: SyncContext,
    jobs: Sequence[StudyJob],
    before_write: Callable[[], None] = lambda: None,
    *,
    mapped: Mapping[int, Planned] | None = None,
    meanwhile: Callable[[], None] | None = None,
) -> list[StudyResult]:
    """Map and write `jobs` (no two share a Patient); returns their results in the same order.
    `before_write` is called before anything is sent to FHIR; `mapped`: jobs mapped already (by id);
    `meanwhile` is called once every transaction is sent, while they are in flight (never raises)."""
    planned: list[Planned] = []
    workers = max(1, min(ctx.tuning.max_concurrent_studies, len(jobs)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bundle") as pool:
        futures: list[Future[None]] = []
        packer = _Packer(ctx.tuning.max_bundle_entries, ctx.tuning.max_bundle_bytes)
        for job in jobs:
            study = (mapped or {}).get(id(job)) or _plan(ctx, job, before_write)
            planned.append(study)
            for bundle in packer.add(study):  # each bundle in a copy of this context: spans nest
                futures.append(pool.submit(copy_context().run, _write_after, before_write, ctx, bundle))
        futures += [pool.submit(copy_context().run, _write_after, before_write, ctx, b) for b in packer.flush()]
        if meanwhile is not None:
            with contextlib.suppress(Exception):  # work ahead of time; the batch does it itself otherwise
                meanwhile()
        for future in futures:
            future.result()
    # Bound once: each study's line would otherwise bind the module's logger again.
    lines: structlog.stdlib.BoundLogger = log.bind(source=ctx.source.name)
    for study in planned:
        _report_study(ctx, study, lines)
    return [study.result for study in planned]


def _plan(ctx: SyncContext, job: StudyJob, before_write: Callable[[], None]) -> Planned:
    """Map the study; a study that cannot be mapped as a whole takes the one-study path at once."""
    study = Planned(job, StudyResult(job.study_uid, len(job.entries)))
    try:
        study.output = _map(ctx, job)
    except MappingError:
        before_write()
        study.result = _alone(ctx, job, conflict=False)
        return study
    return _encoded(study)


def plan_ahead(ctx: SyncContext, job: StudyJob) -> Planned | None:
    """The study mapped and encoded, to be written later; None when that needs FHIR (its dose
    Observations are read first) or the study cannot be mapped as a whole (the batch does both)."""
    if needs_dose_observations(job.entries, job.state.study):
        return None
    study = Planned(job, StudyResult(job.study_uid, len(job.entries)))
    try:
        study.output = _map(ctx, job)
    except MappingError:
        return None
    return _encoded(study)


def _encoded(study: Planned) -> Planned:
    study.result.failures = list(study.output.failures)
    study.result.warnings = list(study.output.warnings)
    entries = transaction_entries(study.output)
    study.encoded = encode_entries(entries)
    study.urls = frozenset(str(e["request"]["url"]) for e in entries)
    return study


def _map(ctx: SyncContext, job: StudyJob) -> StudyOutput:
    state = job.state
    if needs_dose_observations(job.entries, state.study):
        state.observations = ctx.retry(lambda: lookups.observations_of(ctx.fhir, state.study, job.study_uid))
    study = StudyInput(job.study_uid, job.partition, job.entries, state.study, state.patients, state.observations)
    return map_output(study, job.source_ctx, ctx)


class _Packer:
    """Fills bundles in feed order; a study whose entries are already in the open bundle (one
    Patient reached by two keys) starts the next one, since a transaction names a resource once."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self.open: list[Planned] = []
        self.entries = self.size = 0
        self.urls: set[str] = set()

    def add(self, study: Planned) -> Iterator[list[Planned]]:
        if not study.encoded.count:
            return
        count, size = study.encoded.count, len(study.encoded.body) + 1
        full = self.entries + count > self.max_entries or self.size + size > self.max_bytes - BUNDLE_OVERHEAD
        if self.open and (full or not self.urls.isdisjoint(study.urls)):
            yield from self.flush()
        self.open.append(study)
        self.entries, self.size = self.entries + count, self.size + size
        self.urls |= study.urls

    def flush(self) -> Iterator[list[Planned]]:
        if self.open:
            yield self.open
        self.open, self.entries, self.size, self.urls = [], 0, 0, set()


def _write_after(before_write: Callable[[], None], ctx: SyncContext, bundle: list[Planned]) -> None:
    try:
        if _carrying_endpoints(ctx, bundle):
            return
    except (ConflictError, PermanentUpstreamError) as exc:  # nothing of it was written
        before_write()  # the Endpoints alone, then the bundle in halves
        _split(ctx, bundle, exc)
        return
    before_write()  # outside `_write_bundle`: its failure is the batch's, never one study's
    _write_bundle(ctx, bundle)


def _carrying_endpoints(ctx: SyncContext, bundle: list[Planned]) -> bool:
    """Sends the bundle with the Endpoints its studies refer to at its head, when they are still to
    be written (the batch's first transaction: endpoints.py); True when it landed, False when it
    carries none. If it fails, nothing of it was written, and the Endpoints are to be written again."""
    taken = ctx.endpoints.take_unwritten({study.job.partition for study in bundle})
    if not taken:
        return False
    head = encode_entries([put_entry(endpoint, if_match=None) for endpoint in taken.values()])
    entries = head.count + sum(study.encoded.count for study in bundle)
    size = sum(len(part.body) + 1 for part in [head, *(study.encoded for study in bundle)]) + BUNDLE_OVERHEAD
    if entries > ctx.tuning.max_bundle_entries or size > ctx.tuning.max_bundle_bytes:
        ctx.endpoints.carried(taken, landed=False)  # no room: written alone
        return False
    landed = False
    try:
        with telemetry.span("dicomcast.bundle", source=ctx.source.name, studies=len(bundle), endpoints=len(taken)):
            outcomes = ctx.retry(lambda: ctx.fhir.transaction_of([head, *(study.encoded for study in bundle)]))
        landed = True
    finally:
        ctx.endpoints.carried(taken, landed)
    _landed(ctx, bundle, outcomes[len(taken) :])
    return True


def _write_bundle(ctx: SyncContext, bundle: list[Planned]) -> None:
    """Write the bundle; on a failure that is one study's (conflict, rejected), split and retry."""
    with telemetry.span("dicomcast.bundle", source=ctx.source.name, studies=len(bundle)) as note:
        try:
            outcomes = ctx.retry(partial(_send, ctx, bundle))
        except (ConflictError, PermanentUpstreamError) as exc:
            note(split=True)
            _split(ctx, bundle, exc)
            return
    _landed(ctx, bundle, outcomes)


def _split(ctx: SyncContext, bundle: list[Planned], exc: ConflictError | PermanentUpstreamError) -> None:
    """The bundle in halves, down to the study alone (the one-study path)."""
    if len(bundle) == 1:
        bundle[0].result = _alone(ctx, bundle[0].job, conflict=isinstance(exc, ConflictError))
        return
    half = len(bundle) // 2
    _write_bundle(ctx, bundle[:half])
    _write_bundle(ctx, bundle[half:])


def _landed(ctx: SyncContext, bundle: list[Planned], outcomes: list[WriteResult]) -> None:
    """The bundle's transaction was applied: each study's outcomes recorded."""
    metrics.BUNDLES.labels(ctx.source.name).inc()
    start = 0
    for study in bundle:
        remember_written(study.output, outcomes[start : start + study.encoded.count], study.job.state)
        start += study.encoded.count
        study.result.written = True
        hooks.reached("study-written")


def _send(ctx: SyncContext, bundle: list[Planned]) -> list[WriteResult]:
    if len(bundle) == 1 and bundle[0].encoded.count > ctx.tuning.max_bundle_entries:
        return write_alone(ctx, transaction_entries(bundle[0].output))  # one study past the entry limit
    return ctx.fhir.transaction_of([study.encoded for study in bundle])


def _alone(ctx: SyncContext, job: StudyJob, *, conflict: bool) -> StudyResult:
    """The one-study path (study_write.py), after a re-read when the bundle met a version conflict."""
    if conflict:
        ctx.retry(lambda: lookups.refresh(ctx.fhir, job.study_uid, job.source_ctx, job.state))
    result = ctx.retry(partial(sync_study, ctx, job.source_ctx, job.study_uid, job.partition, job.entries, job.state))
    if result.written:
        hooks.reached("study-written")
    return result


def _report_study(ctx: SyncContext, study: Planned, lines: structlog.stdlib.BoundLogger) -> None:
    """The study's span and log line, from its mapping to its write."""
    result, entries = study.result, study.job.entries
    telemetry.finished_span(
        "dicomcast.study",
        study.started_ns,
        source=ctx.source.name,
        study_uid=result.study_uid,
        entries=len(entries),
        written=result.written,
        failures=len(result.failures),
        warnings=len(result.warnings),
    )
    seconds = time.perf_counter() - study.started
    lines.info(
        "study",
        study_uid=result.study_uid,
        sequences=f"{entries[0].sequence}-{entries[-1].sequence}",
        entries=len(entries),
        written=result.written,
        failures=len(result.failures),
        warnings=len(result.warnings),
        ms=round(seconds * 1000, 1),
    )
    for warning in result.warnings:
        log.warning("mapping warning", sequence=warning.sequence, tag=warning.tag, detail=warning.message)
        if warning.kind:
            metrics.PATIENT_WARNINGS.labels(ctx.source.name, warning.kind).inc()
