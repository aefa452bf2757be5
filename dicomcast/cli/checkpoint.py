"""`dicomcast checkpoint show | set SOURCE CURSOR | import-dicomcast [SOURCE]`."""

from __future__ import annotations

from datetime import datetime

import click

from dicomcast.cli.common import log, operator_errors, settings_of
from dicomcast.store import Store
from dicomcast.store.models import aware
from dicomcast.urls import redact_text

# `checkpoint set reconcile:<source> 0` made the worker's next deletion reconciliation due when its
# time was a checkpoint row; it still does, on the store's reconciliations table (migration 0004).
RECONCILED_PREFIX = "reconcile:"


@click.group()
def checkpoint() -> None:
    """See or move a source's cursor."""


@checkpoint.command("show")
@click.pass_context
@operator_errors
def checkpoint_show(invocation: click.Context) -> None:
    from dicomcast.worker.build import open_store

    for row in open_store(settings_of(invocation).settings).checkpoints():
        click.echo(f"{redact_text(row.source)}\t{row.cursor}\t{row.updated_at.isoformat()}")  # old rows too


@checkpoint.command("set")
@click.argument("source")
@click.argument("cursor")
@click.pass_context
@operator_errors
def checkpoint_set(invocation: click.Context, source: str, cursor: str) -> None:
    """Move SOURCE's cursor to CURSOR (`0` or `none` replays from the start; `latest` jumps to the
    feed's current end, skipping everything in it)."""
    from dicomcast.cli.checkpoint_cursor import latest_cursor_of
    from dicomcast.worker.build import open_store

    settings = settings_of(invocation).settings
    store = open_store(settings)
    if source.startswith(RECONCILED_PREFIX):
        _set_reconciled(store, source.removeprefix(RECONCILED_PREFIX), cursor)
        return
    before = store.read_checkpoint(source)
    if cursor.lower() == "latest":
        cursor = latest_cursor_of(settings, source) or "none"
    store.set_checkpoint(source, None if cursor.lower() in ("0", "none", "") else cursor)
    log.warning("checkpoint moved by operator", source=source, before=before, after=cursor)
    click.echo(f"{source}: {before} -> {cursor}")


def _set_reconciled(store: Store, source: str, when: str) -> None:
    """An ISO time records the last reconciliation; anything else (`0`, `none`) makes it due now."""
    before = store.last_reconciled(source)
    try:
        completed = datetime.fromisoformat(when)
    except ValueError:
        store.record_reconciled(source, None)
    else:
        store.record_reconciled(source, aware(completed))
    log.warning("reconciliation time moved by operator", source=source, before=before, after=when)
    click.echo(f"{RECONCILED_PREFIX}{source}: {before.isoformat() if before else None} -> {when}")


@checkpoint.command("import-dicomcast")
@click.argument("source", required=False)
@click.pass_context
@operator_errors
def checkpoint_import_dicomcast(invocation: click.Context, source: str | None) -> None:
    """Set SOURCE's cursor from DICOM Cast's SyncedSequence in its Table Storage (TableStore:*
    settings; read only). SOURCE defaults to the single configured source."""
    from dicomcast.cli.checkpoint_cursor import import_dicomcast
    from dicomcast.worker.build import open_store

    settings = settings_of(invocation).settings
    store = open_store(settings)
    name, cursor, sequence = import_dicomcast(settings, source)
    before = store.read_checkpoint(name)
    store.set_checkpoint(name, cursor)
    log.warning(
        "checkpoint imported from DICOM Cast", source=name, synced_sequence=sequence, before=before, after=cursor
    )
    click.echo(f"{name}: {before} -> {cursor} (DICOM Cast SyncedSequence {sequence})")
