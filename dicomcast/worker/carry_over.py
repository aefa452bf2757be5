"""The first checkpoint of a source that has none: carried over, never a silent replay from 0.

In this order: the same Azure service's v1 checkpoint (a source moved from `/v1` to `/v2`), else
DICOM Cast's `SyncedSequence` from its Table Storage (when `TableStore:*` is set). The cursor is
saved through the store and said in one log line. A table that cannot be read fails the cycle
(retried next cycle) rather than starting the feed from its beginning.
"""

from __future__ import annotations

from dicomcast.config.settings import TableStoreSettings
from dicomcast.dicom.azure import AzureChangeFeedSource
from dicomcast.dicom.azure_cursor import parse_sequence_cursor
from dicomcast.dicom.azure_handover import cursor_after_sequence
from dicomcast.dicomcast_table import describe, read_sync_state
from dicomcast.logs import get_logger
from dicomcast.urls import redact_url
from dicomcast.worker.context import SyncContext

log = get_logger("dicomcast.carry_over")


def initial_cursor(ctx: SyncContext) -> str | None:
    """The cursor to start from when the store has none for this source (once per process)."""
    source = ctx.source
    if ctx.carry_over.done or not isinstance(source, AzureChangeFeedSource):
        return None
    cursor = _from_v1_checkpoint(ctx, source)
    if cursor is None and ctx.carry_over.table is not None:
        cursor = _from_dicomcast(ctx, ctx.carry_over.table, source)
    ctx.carry_over.done = True
    return cursor


def v1_source_name(source: AzureChangeFeedSource) -> str:
    return f"azure:{redact_url(source.public.with_version(1).url)}"  # as AzureChangeFeedSource names it


def _from_v1_checkpoint(ctx: SyncContext, source: AzureChangeFeedSource) -> str | None:
    if source.version == 1:
        return None
    old_name = v1_source_name(source)
    old = ctx.store.read_checkpoint(old_name)
    if not old:
        return None
    sequence = parse_sequence_cursor(old)
    cursor = cursor_after_sequence(source, sequence)
    if cursor is not None:
        ctx.store.save_page(source.name, cursor)
    log.warning(
        "checkpoint carried over from change feed v1",
        source=source.name,
        v1_source=old_name,
        v1_sequence=sequence,
        to=source.describe_cursor(cursor),
    )
    return cursor


def _from_dicomcast(ctx: SyncContext, table: TableStoreSettings, source: AzureChangeFeedSource) -> str | None:
    where = describe(table)
    state = read_sync_state(table)
    if state is None:
        log.warning("no DICOM Cast checkpoint found; starting at the feed's start", source=source.name, table=where)
        return None
    cursor = cursor_after_sequence(source, state.sequence)
    if cursor is not None:
        ctx.store.save_page(source.name, cursor)
    log.warning(
        "checkpoint carried over from DICOM Cast",
        source=source.name,
        table=where,
        synced_sequence=state.sequence,
        dicomcast_synced_at=state.synced_at.isoformat() if state.synced_at else None,
        to=source.describe_cursor(cursor),
    )
    return cursor
