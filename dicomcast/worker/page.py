"""Sync a batch of change entries (a feed page, a replayed failure, reconciled deletions): group by study, read what FHIR holds once, write studies in shared transactions.

Studies that share a Patient go one after another in a "lane" (so the Patient is written with the
version the previous study left). The batch is written in rounds: round n holds the n-th study of
every lane, so no two studies of a round touch the same Patient and they can share transactions
(bundles.py); most batches are one round. Within a study, entries stay in feed order. The caller
advances the checkpoint only when every study of the page is written or recorded as a permanent failure.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from dicomcast.dicom.models import ChangeEntry, by_study
from dicomcast.failures import EntryFailure
from dicomcast.fhir.mapping import endpoint_resource, legacy
from dicomcast.fhir.mapping.types import MappingWarning, PatientKey, Resource, SourceContext
from dicomcast.worker import batch_lookups, lookups
from dicomcast.worker.batch_lookups import EarlyLookups, Lookups, StudyKey, Written
from dicomcast.worker.bundles import StudyJob, write_studies
from dicomcast.worker.context import SyncContext
from dicomcast.worker.study_write import StudyResult, StudyState

T = TypeVar("T")


@dataclass
class SyncResult:
    studies: list[StudyResult] = field(default_factory=list)
    written: Written = field(default_factory=Written)

    @property
    def failures(self) -> list[EntryFailure]:
        return [f for s in self.studies for f in s.failures]

    @property
    def warnings(self) -> list[MappingWarning]:
        return [w for s in self.studies for w in s.warnings]


def sync_entries(
    ctx: SyncContext,
    entries: Sequence[ChangeEntry],
    *,
    early: EarlyLookups | None = None,
    carried: Written | None = None,
) -> SyncResult:
    """Write `entries` to FHIR, study by study; the caller records the failures and moves any checkpoint.

    `early`: lookups started before this call (batch_lookups.py); `carried`: what the previous batch
    wrote, which they may not have seen."""
    groups = by_study(entries)
    if not groups:
        return SyncResult()
    partitions = list(dict.fromkeys(p for p, _ in groups))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lookup") as pool:  # Endpoints beside the searches
        endpoints = pool.submit(copy_context().run, lambda: {p: source_context(ctx, p) for p in partitions})
        found = batch_lookups.complete(ctx, groups, early, carried)
        contexts = endpoints.result()
    return _write_batch(ctx, groups, found, contexts)


def _write_batch(
    ctx: SyncContext,
    groups: dict[StudyKey, list[ChangeEntry]],
    found: Lookups,
    contexts: dict[str | None, SourceContext],
) -> SyncResult:
    lanes = _lanes(groups, found.keys)
    views = [_view(found.patients, lane, found.keys) for lane in lanes]  # only a lane's own studies touch its patients
    results: list[StudyResult] = []
    jobs: list[StudyJob] = []
    for depth in range(max(len(lane) for lane in lanes)):
        round_jobs = [
            _job(lane[depth], groups, contexts, found, view)
            for lane, view in zip(lanes, views, strict=True)
            if depth < len(lane)
        ]
        results += write_studies(ctx, round_jobs)
        jobs += round_jobs
    written = Written(
        {(job.partition, job.study_uid): job.state.study for job in jobs},
        {k: view[k] for lane, view in zip(lanes, views, strict=True) for s in lane for k in found.keys[s] if k in view},
    )
    return SyncResult(results, written)


def _job(
    key: StudyKey,
    groups: dict[StudyKey, list[ChangeEntry]],
    contexts: dict[str | None, SourceContext],
    found: Lookups,
    patients: dict[PatientKey, Resource],
) -> StudyJob:
    partition, study_uid = key
    source_ctx = contexts[partition]
    if key in found.chosen:  # as the batch before left it
        study = found.chosen[key]
    else:
        study = lookups.pick_study(found.existing.get(study_uid, []), source_ctx, source_ctx.service_root)
    return StudyJob(source_ctx, study_uid, partition, groups[key], StudyState(study, patients))


def source_context(ctx: SyncContext, partition: str | None) -> SourceContext:
    address = ctx.source.endpoint_address(partition)
    return SourceContext(source_uri=address, endpoint_reference=f"Endpoint/{ensure_endpoint(ctx, partition)}")


def prefetch_endpoints(ctx: SyncContext, entries: Sequence[ChangeEntry]) -> None:
    """Find (or write) the Endpoints of a page's partitions beside the rest of its batch's read, the
    first time each is seen (the batch would otherwise wait for them after its read). Errors are the
    batch's to report: this tries once, without retries (the cache's lock would hold the batch while
    they ran), and the batch asks the EndpointCache again, with its retries."""
    partitions = ctx.endpoints.first_seen({entry.partition for entry in entries})
    if not partitions:
        return

    def run() -> None:
        for partition in partitions:
            with contextlib.suppress(Exception):  # the batch meets the same error again, where it is handled
                ensure_endpoint(ctx, partition, once=True)

    threading.Thread(target=copy_context().run, args=(run,), name="endpoint", daemon=True).start()


def ensure_endpoint(ctx: SyncContext, partition: str | None, *, once: bool = False) -> str:
    """The source's (partition's) Endpoint exists in FHIR: read once per process, written if missing.
    `once`: each request tried once, without the retry policy."""
    return ctx.endpoints.get(partition, partial(_write_endpoint, ctx, partition, _once if once else ctx.retry))


def _once(fn: Callable[[], T]) -> T:
    return fn()


def _write_endpoint(ctx: SyncContext, partition: str | None, call: Callable[[Callable[[], Any]], Any]) -> str:
    address = ctx.source.endpoint_address(partition)
    wanted = endpoint_resource(address, f"{legacy.ENDPOINT_NAME} {address}", ctx.options)
    names = (str(wanted["name"]), *legacy.dicom_cast_endpoint_names(address))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="endpoint") as pool:  # one round trip, not two
        by_name = pool.submit(copy_context().run, call, lambda: lookups.wado_endpoint(ctx.fhir, names))
        current = call(lambda: ctx.fhir.read("Endpoint", str(wanted["id"])))
        if current is None:  # one with a server id: adopted (written before by DICOM Cast, or by us for it)
            current = by_name.result()
            wanted["id"] = current["id"] if current is not None else wanted["id"]
    if current is None or _differs(current, wanted):
        call(lambda: ctx.fhir.put(wanted))
    return str(wanted["id"])


def _differs(current: Resource, wanted: Resource) -> bool:
    return any(current.get(k) != v for k, v in wanted.items() if k not in ("meta", "id"))


def _view(
    patients: dict[PatientKey, Resource], lane: list[StudyKey], keys: dict[StudyKey, list[PatientKey]]
) -> dict[PatientKey, Resource]:
    """The Patients of the lane's own keys: the mapping looks Patients up by these keys alone, and a
    copy of every Patient of the batch for every lane was quadratic in the batch."""
    return {k: patients[k] for study in lane for k in keys[study] if k in patients}


def _lanes(groups: dict[StudyKey, list[ChangeEntry]], keys: dict[StudyKey, list[PatientKey]]) -> list[list[StudyKey]]:
    """Studies that share any patient key go into the same lane, in feed order. Union-find over the
    studies: linear in the batch, where merging lanes study by study was quadratic (1,000 one-instance
    studies of 1,000 patients cost a million steps)."""
    studies = list(groups)
    parent = list(range(len(studies)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_with: dict[PatientKey, int] = {}
    for i, study in enumerate(studies):
        for key in keys[study]:
            a, b = root(i), root(first_with.setdefault(key, i))
            parent[max(a, b)] = min(a, b)  # the root is a lane's first study
    lanes: dict[int, list[StudyKey]] = {}
    for i, study in enumerate(studies):
        lanes.setdefault(root(i), []).append(study)
    return list(lanes.values())
