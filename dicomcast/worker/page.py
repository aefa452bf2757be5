"""Sync a batch of change entries (a feed page, a replayed failure, reconciled deletions): group by study, read what FHIR holds once, write studies in shared transactions.

Studies that share a Patient go one after another in a "lane" (so the Patient is written with the
version the previous study left). The batch is written in rounds: round n holds the n-th study of
every lane, so no two studies of a round touch the same Patient and they can share transactions
(bundles.py); most batches are one round. Within a study, entries stay in feed order. The caller
advances the checkpoint only when every study of the page is written or recorded as a permanent failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from dataclasses import dataclass, field
from functools import partial

from dicomcast.dicom.models import ChangeEntry, by_study
from dicomcast.failures import EntryFailure
from dicomcast.fhir.mapping.types import MappingWarning, PatientKey, Resource, SourceContext
from dicomcast.worker import batch_lookups, endpoints, lookups
from dicomcast.worker.batch_lookups import EarlyLookups, Lookups, StudyKey, Written
from dicomcast.worker.bundles import Once, StudyJob, write_studies
from dicomcast.worker.context import SyncContext
from dicomcast.worker.study_write import StudyResult, StudyState


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
        early_contexts = partial(endpoints.early_source_context, ctx)
        contexts_of = pool.submit(copy_context().run, lambda: {p: early_contexts(p) for p in partitions})
        found = batch_lookups.complete(ctx, groups, early, carried)
        contexts = contexts_of.result()
    return _write_batch(ctx, groups, found, contexts)


def _write_batch(
    ctx: SyncContext,
    groups: dict[StudyKey, list[ChangeEntry]],
    found: Lookups,
    contexts: dict[str | None, SourceContext],
) -> SyncResult:
    lanes = _lanes(groups, found.keys)
    views = [_view(found.patients, lane, found.keys) for lane in lanes]  # only a lane's own studies touch its patients
    before_write = Once(partial(endpoints.ensure_written, ctx, contexts))  # mapped meanwhile, sent after
    results: list[StudyResult] = []
    jobs: list[StudyJob] = []
    for depth in range(max(len(lane) for lane in lanes)):
        round_jobs = [
            _job(lane[depth], groups, contexts, found, view)
            for lane, view in zip(lanes, views, strict=True)
            if depth < len(lane)
        ]
        results += write_studies(ctx, round_jobs, before_write)
        jobs += round_jobs
    before_write()  # a batch that wrote nothing still has its Endpoint written before its checkpoint
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
