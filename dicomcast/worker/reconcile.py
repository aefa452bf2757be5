"""Deletions a feed never reports (Orthanc erases the change rows of deleted resources, and its
`/changes` has no "Deleted" change: checked with Orthanc 1.10, test-peers.md 1.2).

While syncing, the worker remembers which instances a source delivered (store/synced.py). After
every good cycle the lease holder compares counts, at a cost that does not grow with the archive
(three or four requests and one COUNT in the store):

    unexplained = Orthanc's CountInstances (/statistics)
                  - NewInstance changes after the checkpoint (present, not synced yet)
                  - instances remembered as synced

With every present instance remembered, `unexplained` is minus the number of remembered instances
that are gone. Instances Orthanc holds that were never remembered (synced before the index existed,
skipped by moving the checkpoint) add a constant, the baseline, recorded after each full
reconciliation. When `unexplained` differs from the baseline, something was deleted: a full
reconciliation asks Orthanc which remembered instances are gone (QIDO-RS, per study, through
dicom/inventory.py as `dicomcast reconcile` asks) and applies them as `delete` ChangeEntries
through the normal page path (one write per study, an emptied study of ours
is deleted, permanent failures recorded). Only an explicit "this study has no such instance" counts
as gone, so new instances not synced yet never cause a delete. The counts are read between two
reads of the feed's last Seq; if the feed moved meanwhile the comparison is skipped (undecided) and
made after the next cycle. A full reconciliation also runs every DicomCastWorker:ReconcileInterval
(a safety net, 1 day by default).

Kept by the store (its reconciliations table): the time of the last full reconciliation (`dicomcast
checkpoint set reconcile:<source> 0` makes one due at once) and the baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dicomcast.dicom.inventory import Inventory, StudyRef, deletion
from dicomcast.dicom.models import ChangeAction, ChangeEntry, DeletionCheck
from dicomcast.errors import DicomcastError
from dicomcast.logs import get_logger
from dicomcast.store.synced import SyncedIndex, SyncedKey
from dicomcast.worker.availability import Availability
from dicomcast.worker.context import SyncContext
from dicomcast.worker.page import SyncResult, sync_entries

log = get_logger("dicomcast.reconcile")

STUDIES_PER_PAGE = 50  # deletions are applied in pages of this many studies


def supports_reconcile(ctx: SyncContext) -> bool:
    """Only feeds that lose their deletions need it; Azure's feed reports them itself."""
    return ctx.source.deletion_check() is not None


def _deletion_check(ctx: SyncContext) -> DeletionCheck:
    check = ctx.source.deletion_check()
    if check is None:  # guarded by supports_reconcile; never guess "gone"
        raise TypeError(f"{ctx.source.name} cannot be reconciled")
    return check


def remember_entries(ctx: SyncContext, entries: Sequence[ChangeEntry]) -> None:
    """Remember a batch's instances before they are written (see store/synced.py for why)."""
    if not supports_reconcile(ctx):
        return
    keys = [
        SyncedKey(e.study_uid, e.series_uid, e.sop_instance_uid, e.partition)
        for e in entries
        if e.action is not ChangeAction.DELETE
    ]
    ctx.store.synced.remember(ctx.source.name, keys)


@dataclass(frozen=True)
class InstanceCounts:
    orthanc: int  # instances Orthanc holds
    not_synced: int  # of them, NewInstance changes after the checkpoint
    synced: int  # instances remembered in the synced index

    @property
    def unexplained(self) -> int:
        """Never-remembered instances present minus remembered instances gone."""
        return self.orthanc - self.not_synced - self.synced


@dataclass
class ReconcileReport:
    source: str
    studies_checked: int = 0
    instances_deleted: int = 0
    failures: int = 0
    qido_requests: int = 0
    ran: bool = False
    ok: bool = True
    error: str | None = None


def reconcile_after_cycle(ctx: SyncContext, interval: timedelta, availability: Availability | None = None) -> bool:
    """After a good cycle (the caller holds the lease): compare the counts and reconcile when they
    say something was deleted, or when the last full reconciliation is older than `interval`.
    False when the comparison could not be made because the feed moved (the caller may sync again)."""
    if not supports_reconcile(ctx):
        return True
    name = ctx.source.name
    due = _due(ctx, interval)
    try:
        counts = count_instances(ctx)
    except DicomcastError as exc:  # the periodic reconciliation still covers it
        if availability is not None:
            availability.down(f"deletion check of {name}", exc)
        counts = None
        if not due:
            return True
    else:
        if availability is not None:
            availability.up(f"deletion check of {name}")
    if counts is None and not due:
        log.debug("deletion check undecided: the feed moved; checked after the next cycle", source=name)
        return False
    baseline = ctx.store.reconciliation_baseline(name)
    if counts is not None and counts.unexplained != baseline:
        log.info("deletions suspected", source=name, **vars(counts), baseline=baseline)
    elif not due:
        return True
    report = reconcile(ctx)
    if report.ok and not ctx.stop_event.is_set():
        settled = None
        if counts is not None:  # what remains unexplained now is the baseline
            settled = counts.orthanc - counts.not_synced - ctx.store.synced.count(name)
        ctx.store.record_reconciled(name, datetime.now(UTC), baseline=settled)
    return True


def count_instances(ctx: SyncContext) -> InstanceCounts | None:
    """The counts of the module docstring, or None when the feed moved while they were read."""
    source, check = ctx.source, _deletion_check(ctx)
    checkpoint = _sequence(ctx.store.read_checkpoint(source.name))
    last = source.latest().sequence or 0
    not_synced = check.new_instance_changes(checkpoint) if last > checkpoint else 0
    if not_synced is None:
        return None
    orthanc = check.instance_count()
    if (source.latest().sequence or 0) != last:
        return None
    return InstanceCounts(orthanc, not_synced, ctx.store.synced.count(source.name))


def _sequence(cursor: str | None) -> int:
    try:
        return int(cursor or 0)
    except ValueError:
        return 0


def _due(ctx: SyncContext, interval: timedelta) -> bool:
    last = ctx.store.last_reconciled(ctx.source.name)
    return last is None or datetime.now(UTC) - last >= interval


def reconcile(ctx: SyncContext) -> ReconcileReport:
    """Find remembered instances gone from the server and delete them from FHIR. Never raises for
    upstream trouble: the report says what happened; what was not done is done next time."""
    name = ctx.source.name
    report = ReconcileReport(name, ran=True)
    index, inventory = ctx.store.synced, Inventory(_deletion_check(ctx))
    try:
        pending: list[ChangeEntry] = []
        studies_in_page = 0
        for partition, study_uid in index.studies(name):
            if ctx.stop_event.is_set():
                break
            report.studies_checked += 1
            gone = _gone(ctx, inventory, StudyRef(partition or "", study_uid), index.instances(name, study_uid))
            if not gone:
                continue
            pending += gone
            studies_in_page += 1
            if studies_in_page >= STUDIES_PER_PAGE:
                _apply(ctx, index, pending, report)
                pending, studies_in_page = [], 0
        if pending:
            _apply(ctx, index, pending, report)
    except DicomcastError as exc:
        report.ok, report.error = False, str(exc)
        log.error("reconcile failed; retried next interval", source=name, error=str(exc))
    report.qido_requests = inventory.requests
    log.info("reconcile", **vars(report))
    return report


def _gone(ctx: SyncContext, inventory: Inventory, ref: StudyRef, remembered: Sequence[SyncedKey]) -> list[ChangeEntry]:
    """`delete` entries for the remembered instances the server does not list now. Transient trouble
    is retried and then raised: it must never read as "deleted"."""
    present = ctx.retry(lambda: inventory.sop_instance_uids(ref))
    return [
        deletion(ref, key.series_uid, key.sop_instance_uid) for key in remembered if key.sop_instance_uid not in present
    ]


def _apply(ctx: SyncContext, index: SyncedIndex, entries: list[ChangeEntry], report: ReconcileReport) -> None:
    """Write the deletions; forget what reached FHIR (what failed for good is recorded)."""
    result = write_reconciled(ctx, entries)
    failed = {failure.entry.sop_instance_uid for failure in result.failures}
    by_study: dict[str, list[str]] = {}
    for entry in entries:
        if entry.sop_instance_uid not in failed:
            by_study.setdefault(entry.study_uid, []).append(entry.sop_instance_uid)
    for study_uid, uids in by_study.items():
        index.forget(ctx.source.name, study_uid, uids)
    report.instances_deleted += sum(len(u) for u in by_study.values())
    report.failures += len(result.failures)


def write_reconciled(ctx: SyncContext, entries: Sequence[ChangeEntry]) -> SyncResult:
    """Entries made by reconciliation (this deletion pass, `dicomcast reconcile`) through the sync's
    write path; permanent failures recorded as the sync records them, the checkpoint left alone."""
    result = sync_entries(ctx, entries)
    if result.failures:
        ctx.store.record_failures(ctx.source.name, result.failures)
    return result
