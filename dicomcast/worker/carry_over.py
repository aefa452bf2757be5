"""The first checkpoint of a source that has none: carried over, never a silent replay from 0.

For a source that can continue a checkpoint kept elsewhere (`ChangeSource.carry_over()`; Azure), in
this order: its predecessor's checkpoint in the store (an Azure source moved from `/v1` to `/v2`),
else DICOM Cast's `SyncedSequence` from its Table Storage (when `TableStore:*` is set). The cursor
is saved through the store and said in one log line. A table that cannot be read fails the cycle
(retried next cycle) rather than starting the feed from its beginning.
"""

from __future__ import annotations

from dicomcast.config.settings import TableStoreSettings
from dicomcast.dicom.models import CheckpointCarryOver
from dicomcast.dicomcast_table import describe, read_sync_state
from dicomcast.logs import get_logger
from dicomcast.worker.context import SyncContext

log = get_logger("dicomcast.carry_over")


def initial_cursor(ctx: SyncContext) -> str | None:
    """The cursor to start from when the store has none for this source (once per process)."""
    carry_over = None if ctx.carry_over.done else ctx.source.carry_over()
    if carry_over is None:
        return None
    cursor = _from_predecessor(ctx, carry_over)
    if cursor is None and ctx.carry_over.table is not None:
        cursor = _from_dicomcast(ctx, ctx.carry_over.table, carry_over)
    ctx.carry_over.done = True
    return cursor


def _from_predecessor(ctx: SyncContext, carry_over: CheckpointCarryOver) -> str | None:
    old_name = carry_over.predecessor
    old = ctx.store.read_checkpoint(old_name) if old_name else None
    if not old:
        return None
    sequence = carry_over.predecessor_sequence(old)
    cursor = carry_over.cursor_after_sequence(sequence)
    if cursor is not None:
        ctx.store.save_page(ctx.source.name, cursor)
    log.warning(
        "checkpoint carried over from change feed v1",
        source=ctx.source.name,
        v1_source=old_name,
        v1_sequence=sequence,
        to=ctx.source.describe_cursor(cursor),
    )
    return cursor


def _from_dicomcast(ctx: SyncContext, table: TableStoreSettings, carry_over: CheckpointCarryOver) -> str | None:
    where = describe(table)
    state = read_sync_state(table)
    if state is None:
        log.warning("no DICOM Cast checkpoint found; starting at the feed's start", source=ctx.source.name, table=where)
        return None
    cursor = carry_over.cursor_after_sequence(state.sequence)
    if cursor is not None:
        ctx.store.save_page(ctx.source.name, cursor)
    log.warning(
        "checkpoint carried over from DICOM Cast",
        source=ctx.source.name,
        table=where,
        synced_sequence=state.sequence,
        dicomcast_synced_at=state.synced_at.isoformat() if state.synced_at else None,
        to=ctx.source.describe_cursor(cursor),
    )
    return cursor
