"""Repair runs: the resume point of a repairing `dicomcast reconcile` in a table of its own, instead
of the `reconcile-run:<source>` rows (a JSON body) that stood in checkpoints as if they were sources
(moved here; a row whose body never parsed is dropped: the run it stood for starts over, as before).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

PREFIX = "reconcile-run:"
checkpoints = sa.table(
    "checkpoints",
    sa.column("source", sa.String),
    sa.column("cursor", sa.String),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
repair_runs = sa.table(
    "repair_runs",
    sa.column("source", sa.String),
    sa.column("fingerprint", sa.String),
    sa.column("partition_key", sa.String),
    sa.column("study_uid", sa.String),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)


def _resume_point(source: str, cursor: str, updated_at: datetime | None) -> dict[str, Any] | None:
    """The row as reconcile/state.py read it: JSON {"f": fingerprint, "p": partition, "u": study UID}."""
    try:
        saved = json.loads(cursor)
    except ValueError:
        return None
    if not isinstance(saved, dict) or not isinstance(saved.get("f"), str):
        return None
    return {
        "source": source.removeprefix(PREFIX),
        "fingerprint": saved["f"][:64],
        "partition_key": str(saved.get("p", ""))[:128],
        "study_uid": str(saved.get("u", ""))[:64],
        "updated_at": updated_at or datetime.now(UTC),
    }


def upgrade() -> None:
    op.create_table(
        "repair_runs",
        sa.Column("source", sa.String(512), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("partition_key", sa.String(128), nullable=False),
        sa.Column("study_uid", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_repair_runs")),
    )
    bind = op.get_bind()
    fake = checkpoints.c.source.like(f"{PREFIX}%")
    rows = bind.execute(sa.select(checkpoints.c.source, checkpoints.c.cursor, checkpoints.c.updated_at).where(fake))
    moved = [point for point in (_resume_point(*row) for row in rows) if point is not None]
    if moved:
        bind.execute(repair_runs.insert(), moved)
    bind.execute(checkpoints.delete().where(fake))


def downgrade() -> None:
    bind = op.get_bind()
    restored = [
        {
            "source": f"{PREFIX}{source}",
            "cursor": json.dumps({"f": fingerprint, "p": partition_key, "u": study_uid}, separators=(",", ":")),
            "updated_at": updated_at,
        }
        for source, fingerprint, partition_key, study_uid, updated_at in bind.execute(sa.select(repair_runs))
    ]
    if restored:
        bind.execute(checkpoints.insert(), restored)
    op.drop_table("repair_runs")
