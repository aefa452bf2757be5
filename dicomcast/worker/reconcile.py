"""Deletions a feed never reports (Orthanc erases the change rows of deleted resources).

While syncing, the worker remembers which instances a source delivered (store/synced.py). Every
DicomCastWorker:ReconcileInterval, the lease holder asks the server which of them are still there
and applies the missing ones as `delete` ChangeEntries through the normal page path, so deletion
follows the same rules as the feed: one write per study, an emptied study of ours is deleted,
permanent failures are recorded. A server that cannot answer deletes nothing: only an explicit
"this study has no such instance" counts as gone.

The time of the last completed reconciliation is kept in the checkpoints table under
`reconcile:<source>`, so restarts neither skip it nor repeat it; `dicomcast checkpoint set
reconcile:<source> 0` makes it due at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dicomcast.dicom.models import ChangeAction, ChangeEntry, Page
from dicomcast.dicom.orthanc import OrthancSource
from dicomcast.errors import DicomcastError
from dicomcast.logs import get_logger
from dicomcast.store import NewFailure
from dicomcast.store.synced import SyncedIndex, SyncedKey
from dicomcast.worker.context import SyncContext
from dicomcast.worker.page import sync_page
from dicomcast.worker.retry import call_with_retry

log = get_logger("dicomcast.reconcile")

STUDIES_PER_PAGE = 50  # deletions are applied in pages of this many studies
RECONCILE_SEQUENCE = 0  # reconciliation entries have no feed sequence


def supports_reconcile(ctx: SyncContext) -> bool:
    """Only feeds that lose their deletions need it; Azure's feed reports them itself."""
    return isinstance(ctx.source, OrthancSource)


def remember_page(ctx: SyncContext, page: Page) -> None:
    """Remember the page's instances before they are written (see store/synced.py for why)."""
    if not supports_reconcile(ctx):
        return
    keys = [
        SyncedKey(e.study_uid, e.series_uid, e.sop_instance_uid, e.partition)
        for e in page.entries
        if e.action is not ChangeAction.DELETE
    ]
    SyncedIndex(ctx.store.engine).remember(ctx.source.name, keys)


def marker(source_name: str) -> str:
    return f"reconcile:{source_name}"


@dataclass
class ReconcileReport:
    source: str
    studies_checked: int = 0
    instances_deleted: int = 0
    failures: int = 0
    ran: bool = False
    ok: bool = True
    error: str | None = None


def reconcile_if_due(ctx: SyncContext, interval: timedelta) -> ReconcileReport | None:
    """Run a reconciliation when the last one is older than `interval` (the caller holds the lease)."""
    if not supports_reconcile(ctx) or not _due(ctx, interval):
        return None
    report = reconcile(ctx)
    if report.ok and not ctx.stop_event.is_set():
        ctx.store.save_page(marker(ctx.source.name), datetime.now(UTC).isoformat())
    return report


def _due(ctx: SyncContext, interval: timedelta) -> bool:
    last = ctx.store.read_checkpoint(marker(ctx.source.name))
    if last is None:
        return True
    try:
        when = datetime.fromisoformat(last)
    except ValueError:
        return True
    return datetime.now(UTC) - when >= interval


def reconcile(ctx: SyncContext) -> ReconcileReport:
    """Find remembered instances gone from the server and delete them from FHIR. Never raises for
    upstream trouble: the report says what happened; what was not done is done next time."""
    name = ctx.source.name
    report = ReconcileReport(name, ran=True)
    index = SyncedIndex(ctx.store.engine)
    try:
        pending: list[ChangeEntry] = []
        studies_in_page = 0
        for partition, study_uid in index.studies(name):
            if ctx.stop_event.is_set():
                break
            report.studies_checked += 1
            gone = _gone(ctx, study_uid, index.instances(name, study_uid))
            if not gone:
                continue
            pending += [_delete_entry(key, partition) for key in gone]
            studies_in_page += 1
            if studies_in_page >= STUDIES_PER_PAGE:
                _apply(ctx, index, pending, report)
                pending, studies_in_page = [], 0
        if pending:
            _apply(ctx, index, pending, report)
    except DicomcastError as exc:
        report.ok, report.error = False, str(exc)
        log.error("reconcile failed; retried next interval", source=name, error=str(exc))
    log.info("reconcile", **vars(report))
    return report


def _gone(ctx: SyncContext, study_uid: str, remembered: Sequence[SyncedKey]) -> list[SyncedKey]:
    present = _present_instances(ctx, study_uid)
    return [key for key in remembered if key.sop_instance_uid not in present]


def _present_instances(ctx: SyncContext, study_uid: str) -> set[str]:
    """SOP Instance UIDs of the study the server holds now (QIDO-RS); an empty set when none.
    Transient trouble is retried and then raised: it must never read as "deleted"."""
    source = ctx.source
    if not isinstance(source, OrthancSource):  # guarded by supports_reconcile; never guess "gone"
        raise TypeError(f"{source.name} cannot be reconciled")
    return call_with_retry(
        lambda: source.present_instances(study_uid),
        max_attempts=ctx.retry_attempts,
        budget=ctx.retry_budget,
        stop_event=ctx.stop_event,
    )


def _delete_entry(key: SyncedKey, partition: str | None) -> ChangeEntry:
    return ChangeEntry(
        sequence=RECONCILE_SEQUENCE,
        action=ChangeAction.DELETE,
        study_uid=key.study_uid,
        series_uid=key.series_uid,
        sop_instance_uid=key.sop_instance_uid,
        partition=partition,
    )


def _apply(ctx: SyncContext, index: SyncedIndex, entries: list[ChangeEntry], report: ReconcileReport) -> None:
    """Write the deletions; forget what reached FHIR, record what failed for good."""
    result = sync_page(ctx, Page(entries=entries, next_cursor="", caught_up=True))
    failed = {entry.sop_instance_uid for entry, _, _ in result.failures}
    by_study: dict[str, list[str]] = {}
    for entry in entries:
        if entry.sop_instance_uid not in failed:
            by_study.setdefault(entry.study_uid, []).append(entry.sop_instance_uid)
    for study_uid, uids in by_study.items():
        index.forget(ctx.source.name, study_uid, uids)
    report.instances_deleted += sum(len(u) for u in by_study.values())
    report.failures += len(result.failures)
    if result.failures:
        record_failures(ctx, [NewFailure(e, cls, why) for e, cls, why in result.failures])


def record_failures(ctx: SyncContext, failures: Sequence[NewFailure]) -> None:
    """Record permanent failures without moving the source's checkpoint."""
    ctx.store.record_failures(ctx.source.name, failures)
