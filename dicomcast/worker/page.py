"""Sync a batch of change entries (a feed page, a replayed failure, reconciled deletions): group by study, read what FHIR holds once, write studies in shared transactions.

Studies that share a Patient go one after another in a "lane" (so the Patient is written with the
version the previous study left). The batch is written in rounds: round n holds the n-th study of
every lane, so no two studies of a round touch the same Patient and they can share transactions
(bundles.py); most batches are one round. Within a study, entries stay in feed order. The caller
advances the checkpoint only when every study of the page is written or recorded as a permanent failure.
Once the last round's transactions are sent, `meanwhile` prepares the next batch (premap.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from dataclasses import dataclass, field
from functools import partial

from dicomcast.dicom.models import ChangeEntry, by_study
from dicomcast.failures import EntryFailure
from dicomcast.fhir.mapping.types import MappingWarning, PatientKey, SourceContext
from dicomcast.worker import batch_lookups, endpoints, premap
from dicomcast.worker import lanes as study_lanes
from dicomcast.worker.batch_lookups import EarlyLookups, Lookups, StudyKey, Written
from dicomcast.worker.bundles import Once, Planned, StudyJob, write_studies
from dicomcast.worker.context import SyncContext
from dicomcast.worker.study_write import StudyResult


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


# Called once the batch's transactions are sent, with the Patient keys of its studies (premap.py).
Meanwhile = Callable[[dict[StudyKey, list[PatientKey]]], None]


def sync_entries(
    ctx: SyncContext,
    entries: Sequence[ChangeEntry],
    *,
    early: EarlyLookups | None = None,
    carried: Written | None = None,
    mapped: Mapping[StudyKey, Planned] | None = None,
    meanwhile: Meanwhile | None = None,
) -> SyncResult:
    """Write `entries` to FHIR, study by study; the caller records the failures and moves any checkpoint.

    `early`: lookups started before this call (batch_lookups.py); `carried`: what the previous batch
    wrote, which they may not have seen; `mapped`: studies mapped ahead of time (premap.py), used
    when what they were mapped from still holds."""
    groups = by_study(entries)
    if not groups:
        return SyncResult()
    partitions = list(dict.fromkeys(p for p, _ in groups))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lookup") as pool:  # Endpoints beside the searches
        early_contexts = partial(endpoints.early_source_context, ctx)
        contexts_of = pool.submit(copy_context().run, lambda: {p: early_contexts(p) for p in partitions})
        found = batch_lookups.complete(ctx, groups, early, carried)
        contexts = contexts_of.result()
    ahead = premap.still_valid(mapped or {}, groups, found, contexts, carried)
    then = partial(meanwhile, found.keys) if meanwhile is not None else None
    return _write_batch(ctx, groups, found, contexts, ahead, then)


def _write_batch(
    ctx: SyncContext,
    groups: dict[StudyKey, list[ChangeEntry]],
    found: Lookups,
    contexts: dict[str | None, SourceContext],
    mapped: Mapping[StudyKey, Planned],
    meanwhile: Callable[[], None] | None,
) -> SyncResult:
    lanes = study_lanes.lanes(groups, found.keys)
    views = [
        study_lanes.view(found.patients, lane, found.keys) for lane in lanes
    ]  # only a lane's own studies touch its patients
    before_write = Once(partial(endpoints.ensure_written, ctx, contexts))  # mapped meanwhile, sent after
    results: list[StudyResult] = []
    jobs: list[StudyJob] = []
    depths = max(len(lane) for lane in lanes)
    ready = {id(plan.job): plan for plan in mapped.values()}  # write_studies knows jobs, not keys
    for depth in range(depths):
        round_jobs = [
            mapped[lane[0]].job
            if len(lane) == 1 and lane[0] in mapped
            else study_lanes.job(lane[depth], groups, contexts, found, view)
            for lane, view in zip(lanes, views, strict=True)
            if depth < len(lane)
        ]
        last = depth == depths - 1
        results += write_studies(ctx, round_jobs, before_write, mapped=ready, meanwhile=meanwhile if last else None)
        jobs += round_jobs
    before_write()  # a batch that wrote nothing still has its Endpoint written before its checkpoint
    written = Written(
        {(job.partition, job.study_uid): job.state.study for job in jobs},
        {
            k: job.state.patients[k]
            for job in jobs
            for k in found.keys[(job.partition, job.study_uid)]
            if k in job.state.patients
        },
    )
    return SyncResult(results, written)
