"""`dicomcast failures list | show ID | retry [ID|--all] | resolve ID`: the operator's view of entries
that could not be synced for a permanent reason, and their replay once the cause is fixed.

`retry` re-reads the instance from its DICOM server (the data may have been corrected there) and
sends it through the same study sync as the feed; a failure that now succeeds is marked resolved,
one that fails again gets one more attempt on the same row.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TypeVar

import click

from dicomcast.cli import operator_errors, settings_of
from dicomcast.dicom.models import ChangeAction, ChangeEntry, Page, is_uid
from dicomcast.errors import DicomcastError
from dicomcast.logs import get_logger
from dicomcast.store import NewFailure, Store
from dicomcast.store.models import Failure
from dicomcast.urls import redact_text
from dicomcast.worker.context import SyncContext
from dicomcast.worker.retry import call_with_retry

log = get_logger("dicomcast.cli")
STILL_FAILING_EXIT = 1
T = TypeVar("T")


@click.group()
def failures() -> None:
    """List, inspect, replay or resolve entries that failed for a permanent reason."""


@failures.command("list")
@click.option("--source", help="Only this source (as `checkpoint show` names it).")
@click.option("--class", "failure_class", help="Only this class: dicom, fhir, ...")
@click.option("--study", "study_uid", help="Only this StudyInstanceUID.")
@click.option("--all", "include_resolved", is_flag=True, help="Include resolved failures.")
@click.pass_context
@operator_errors
def list_failures(
    ctx: click.Context, source: str | None, failure_class: str | None, study_uid: str | None, include_resolved: bool
) -> None:
    """One line per failure: id, source, class, sequence, action, study, instance, attempts, state."""
    rows = _store(ctx).failures(
        source=source, failure_class=failure_class, study_uid=study_uid, include_resolved=include_resolved
    )
    for row in rows:
        state = "resolved" if row.resolved_at else "open"
        click.echo(  # redact_text: rows written before URLs were redacted at their origin
            f"{row.id}\t{redact_text(row.source)}\t{row.failure_class}\t{row.sequence}\t{row.action}\t"
            f"{row.study_uid}\t{row.sop_instance_uid}\t{row.attempts}\t{state}\t{row.message[:120]}"
        )
    click.echo(f"{len(rows)} failure(s)", err=True)


@failures.command("show")
@click.argument("failure_id", type=int)
@click.pass_context
@operator_errors
def show_failure(ctx: click.Context, failure_id: int) -> None:
    """Every field of one failure."""
    row = _one(_store(ctx), failure_id)
    for name in (
        "id",
        "source",
        "failure_class",
        "sequence",
        "action",
        "partition",
        "study_uid",
        "series_uid",
        "sop_instance_uid",
        "attempts",
        "first_seen",
        "last_seen",
        "resolved_at",
        "message",
    ):
        click.echo(f"{name}: {redact_text(str(getattr(row, name)))}")


@failures.command("resolve")
@click.argument("failure_id", type=int)
@click.pass_context
@operator_errors
def resolve_failure(ctx: click.Context, failure_id: int) -> None:
    """Mark a failure resolved without replaying it (fixed by other means, or not to be synced)."""
    store = _store(ctx)
    _one(store, failure_id)
    store.resolve_failure(failure_id)
    log.warning("failure resolved by operator", failure_id=failure_id)
    click.echo(f"failure {failure_id} resolved")


@failures.command("retry")
@click.argument("failure_id", type=int, required=False)
@click.option("--all", "retry_all", is_flag=True, help="Every open failure (with --source: of that source).")
@click.option("--source", help="With --all: only this source.")
@click.pass_context
@operator_errors
def retry_failures(ctx: click.Context, failure_id: int | None, retry_all: bool, source: str | None) -> None:
    """Re-read the instance from the DICOM server and sync it again; resolved when it lands."""
    from dicomcast.worker.build import build

    if (failure_id is None) == (not retry_all):
        raise click.UsageError("give one failure ID or --all")
    parts = build(settings_of(ctx).settings)
    try:
        rows = parts.store.failures(source=source) if retry_all else [_one(parts.store, failure_id or 0)]
        contexts = {c.source.name: c for c in parts.contexts}
        remaining = sum(0 if _retry_one(contexts, row) else 1 for row in rows)
    finally:
        parts.close()
    click.echo(f"{len(rows) - remaining} resolved, {remaining} still failing")
    if remaining:
        sys.exit(STILL_FAILING_EXIT)


def _retry_one(contexts: dict[str, SyncContext], row: Failure) -> bool:
    ctx = contexts.get(row.source)
    if ctx is None:
        click.echo(f"{row.id}: source {row.source} is not configured; skipped", err=True)
        return False
    found = _entry_of(row)
    if found is None:
        click.echo(
            f"{row.id}: the change-feed entry could not be read, so it cannot be replayed from here; "
            "check the instance in the DICOM server, then `dicomcast failures resolve`",
            err=True,
        )
        return False
    entry = found
    try:
        if entry.action is not ChangeAction.DELETE:
            metadata = _with_retry(ctx, lambda: ctx.source.read_metadata(found))
            if metadata is None:
                click.echo(f"{row.id}: instance no longer in the DICOM server; resolve it if that is expected")
                return False
            entry = replace(entry, metadata=metadata)
        problems = _sync_entry(ctx, entry)
    except DicomcastError as exc:
        click.echo(f"{row.id}: not retried now: {exc}", err=True)
        return False
    if problems:
        _record_again(ctx, problems)
        click.echo(f"{row.id}: still failing: {problems[0].message[:200]}")
        return False
    ctx.store.resolve_failure(row.id)
    log.info("failure replayed", failure_id=row.id, source=row.source, sequence=row.sequence)
    click.echo(f"{row.id}: synced, resolved")
    return True


def _sync_entry(ctx: SyncContext, entry: ChangeEntry) -> list[NewFailure]:
    """The same path as the feed: a one-entry page through the study sync."""
    from dicomcast.worker.page import sync_page

    result = sync_page(ctx, Page(entries=[entry], next_cursor="", caught_up=True))
    return [NewFailure(e, cls, why) for e, cls, why in result.failures]


def _record_again(ctx: SyncContext, problems: Sequence[NewFailure]) -> None:
    """One more attempt on the same rows; the checkpoint is not touched."""
    from dicomcast.worker.reconcile import record_failures

    record_failures(ctx, problems)


def _entry_of(row: Failure) -> ChangeEntry | None:
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


def _with_retry(ctx: SyncContext, fn: Callable[[], T]) -> T:
    return call_with_retry(fn, max_attempts=ctx.retry_attempts, budget=ctx.retry_budget, stop_event=ctx.stop_event)


def _store(ctx: click.Context) -> Store:
    from dicomcast.worker.build import open_store

    return open_store(settings_of(ctx).settings)


def _one(store: Store, failure_id: int) -> Failure:
    row = store.failure(failure_id)
    if row is None:
        click.echo(f"dicomcast: no failure with id {failure_id} (see `dicomcast failures list`)", err=True)
        sys.exit(2)
    return row
