"""`dicomcast failures list | show ID | retry [ID|--all] | resolve ID`: the operator's view of entries
that could not be synced for a permanent reason, and their replay once the cause is fixed
(worker/replay.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from dicomcast.cli.common import exit_with, log, operator_errors, settings_of
from dicomcast.errors import ExitCode
from dicomcast.failures import FailureClass
from dicomcast.store import Store
from dicomcast.store.models import Failure
from dicomcast.urls import redact_text

if TYPE_CHECKING:
    from dicomcast.worker.replay import Replayed


@click.group()
def failures() -> None:
    """List, inspect, replay or resolve entries that failed for a permanent reason."""


@failures.command("list")
@click.option("--source", help="Only this source (as `checkpoint show` names it).")
@click.option("--class", "failure_class", help=f"Only this class: {', '.join(FailureClass)}")
@click.option("--study", "study_uid", help="Only this StudyInstanceUID.")
@click.option("--all", "include_resolved", is_flag=True, help="Include resolved failures.")
@click.pass_context
@operator_errors
def list_failures(
    invocation: click.Context,
    source: str | None,
    failure_class: str | None,
    study_uid: str | None,
    include_resolved: bool,
) -> None:
    """One line per failure: id, source, class, sequence, action, study, instance, attempts, state."""
    rows = _store(invocation).failures(
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
def show_failure(invocation: click.Context, failure_id: int) -> None:
    """Every field of one failure."""
    row = _one(_store(invocation), failure_id)
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
def resolve_failure(invocation: click.Context, failure_id: int) -> None:
    """Mark a failure resolved without replaying it (fixed by other means, or not to be synced)."""
    store = _store(invocation)
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
def retry_failures(invocation: click.Context, failure_id: int | None, retry_all: bool, source: str | None) -> None:
    """Re-read the instance from the DICOM server and sync it again; resolved when it lands."""
    from dicomcast.worker.build import build
    from dicomcast.worker.replay import replay_failure

    if (failure_id is None) == (not retry_all):
        raise click.UsageError("give one failure ID or --all")
    parts = build(settings_of(invocation).settings)
    try:
        rows = parts.store.failures(source=source) if retry_all else [_one(parts.store, failure_id or 0)]
        contexts = {c.source.name: c for c in parts.contexts}
        remaining = 0
        for row in rows:
            replayed = replay_failure(contexts, row)
            _echo(replayed)
            remaining += 0 if replayed.resolved else 1
    finally:
        parts.close()
    click.echo(f"{len(rows) - remaining} resolved, {remaining} still failing")
    if remaining:
        exit_with(ExitCode.STILL_FAILING)


def _echo(replayed: Replayed) -> None:
    """One line per replayed failure: errors to stderr, outcomes to stdout."""
    from dicomcast.worker.replay import ReplayOutcome

    row_id, detail = replayed.failure.id, replayed.detail
    match replayed.outcome:
        case ReplayOutcome.SOURCE_NOT_CONFIGURED:
            click.echo(f"{row_id}: source {replayed.failure.source} is not configured; skipped", err=True)
        case ReplayOutcome.ENTRY_UNREADABLE:
            click.echo(
                f"{row_id}: the change-feed entry could not be read, so it cannot be replayed from here; "
                "check the instance in the DICOM server, then `dicomcast failures resolve`",
                err=True,
            )
        case ReplayOutcome.INSTANCE_GONE:
            click.echo(f"{row_id}: instance no longer in the DICOM server; resolve it if that is expected")
        case ReplayOutcome.NOT_NOW:
            click.echo(f"{row_id}: not retried now: {detail}", err=True)
        case ReplayOutcome.STILL_FAILING:
            click.echo(f"{row_id}: still failing: {detail[:200]}")
        case ReplayOutcome.RESOLVED:
            click.echo(f"{row_id}: synced, resolved")


def _store(invocation: click.Context) -> Store:
    from dicomcast.worker.build import open_store

    return open_store(settings_of(invocation).settings)


def _one(store: Store, failure_id: int) -> Failure:
    row = store.failure(failure_id)
    if row is None:
        click.echo(f"dicomcast: no failure with id {failure_id} (see `dicomcast failures list`)", err=True)
        exit_with(ExitCode.USAGE)
    return row
