"""Replay of recorded failures (`dicomcast failures retry`): re-read the instance from its DICOM
server (the data may have been corrected there) and send it through the same study sync as the
feed. A failure that now succeeds is marked resolved; one that fails again gets one more attempt on
the same row. The checkpoint is never touched."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import TypeVar

from dicomcast.dicom.models import ChangeAction, ChangeEntry, is_uid
from dicomcast.errors import DicomcastError
from dicomcast.failures import EntryFailure
from dicomcast.logs import get_logger
from dicomcast.store.models import Failure
from dicomcast.worker.context import SyncContext
from dicomcast.worker.page import sync_entries

log = get_logger("dicomcast.worker.replay")
T = TypeVar("T")


class ReplayOutcome(Enum):
    RESOLVED = "resolved"
    SOURCE_NOT_CONFIGURED = "source not configured"
    ENTRY_UNREADABLE = "entry unreadable"  # unknown action or UIDs: nothing to re-read
    INSTANCE_GONE = "instance gone"
    NOT_NOW = "not retried now"  # a dependency failed: the row is untouched
    STILL_FAILING = "still failing"


@dataclass(frozen=True)
class Replayed:
    failure: Failure
    outcome: ReplayOutcome
    detail: str = ""

    @property
    def resolved(self) -> bool:
        return self.outcome is ReplayOutcome.RESOLVED


def replay_failure(contexts: Mapping[str, SyncContext], row: Failure) -> Replayed:
    """Replay one recorded failure through its source's context."""
    ctx = contexts.get(row.source)
    if ctx is None:
        return Replayed(row, ReplayOutcome.SOURCE_NOT_CONFIGURED)
    found = entry_of(row)
    if found is None:
        return Replayed(row, ReplayOutcome.ENTRY_UNREADABLE)
    entry = found
    try:
        if entry.action is not ChangeAction.DELETE:
            metadata = _with_retry(ctx, lambda: ctx.source.read_metadata(found))
            if metadata is None:
                return Replayed(row, ReplayOutcome.INSTANCE_GONE)
            entry = replace(entry, metadata=metadata)
        problems = _sync_entry(ctx, entry)
    except DicomcastError as exc:
        return Replayed(row, ReplayOutcome.NOT_NOW, str(exc))
    if problems:
        ctx.store.record_failures(ctx.source.name, problems)
        return Replayed(row, ReplayOutcome.STILL_FAILING, problems[0].reason)
    ctx.store.resolve_failure(row.id)
    log.info("failure replayed", failure_id=row.id, source=row.source, sequence=row.sequence)
    return Replayed(row, ReplayOutcome.RESOLVED)


def entry_of(row: Failure) -> ChangeEntry | None:
    """The failed entry again, or None when too little of it was readable (unknown action or UIDs)."""
    if row.action not in {a.value for a in ChangeAction} or not all(
        is_uid(uid) for uid in (row.study_uid, row.series_uid, row.sop_instance_uid)
    ):
        return None
    return ChangeEntry(
        sequence=row.sequence,
        action=ChangeAction(row.action),
        study_uid=row.study_uid,
        series_uid=row.series_uid,
        sop_instance_uid=row.sop_instance_uid,
        partition=row.partition,
    )


def _sync_entry(ctx: SyncContext, entry: ChangeEntry) -> list[EntryFailure]:
    """The same path as the feed: the one entry through the study sync."""
    return sync_entries(ctx, [entry]).failures


def _with_retry(ctx: SyncContext, fn: Callable[[], T]) -> T:
    return ctx.retry(fn)
