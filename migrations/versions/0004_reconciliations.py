"""Reconciliations: a source's deletion reconciliation (the time of the last full one and its
instance-count baseline) in a table of its own, instead of the `reconcile:<source>` and
`reconcile-baseline:<source>` rows that stood in checkpoints as if they were sources (moved here).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TIME, BASELINE = "reconcile:", "reconcile-baseline:"  # `reconcile-run:` rows (dicomcast reconcile) stay
checkpoints = sa.table(
    "checkpoints",
    sa.column("source", sa.String),
    sa.column("cursor", sa.String),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
reconciliations = sa.table(
    "reconciliations",
    sa.column("source", sa.String),
    sa.column("completed_at", sa.DateTime(timezone=True)),
    sa.column("baseline", sa.BigInteger),
)


def _time(cursor: str) -> datetime | None:
    """The row's ISO time; None for one that never parsed (the worker took it as due)."""
    try:
        when = datetime.fromisoformat(cursor)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _int(cursor: str) -> int:
    try:
        return int(cursor)
    except ValueError:
        return 0  # what the worker read from a row it could not parse


def upgrade() -> None:
    op.create_table(
        "reconciliations",
        sa.Column("source", sa.String(512), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("baseline", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_reconciliations")),
    )
    bind = op.get_bind()
    fake = checkpoints.c.source.like(f"{TIME}%") | checkpoints.c.source.like(f"{BASELINE}%")
    moved: dict[str, dict[str, Any]] = {}
    for source, cursor in bind.execute(sa.select(checkpoints.c.source, checkpoints.c.cursor).where(fake)):
        prefix = TIME if source.startswith(TIME) else BASELINE
        row = moved.setdefault(source[len(prefix) :], {"completed_at": None, "baseline": 0})
        if prefix == TIME:
            row["completed_at"] = _time(cursor)
        else:
            row["baseline"] = _int(cursor)
    if moved:
        bind.execute(reconciliations.insert(), [{"source": source, **row} for source, row in moved.items()])
    bind.execute(checkpoints.delete().where(fake))


def downgrade() -> None:
    bind = op.get_bind()
    restored = []
    now = datetime.now(UTC)
    for source, completed_at, baseline in bind.execute(sa.select(reconciliations)):
        if completed_at is not None:
            when = completed_at if completed_at.tzinfo else completed_at.replace(tzinfo=UTC)
            restored.append({"source": f"{TIME}{source}", "cursor": when.isoformat(), "updated_at": when})
        if baseline:
            restored.append({"source": f"{BASELINE}{source}", "cursor": str(baseline), "updated_at": now})
    if restored:
        bind.execute(checkpoints.insert(), restored)
    op.drop_table("reconciliations")
