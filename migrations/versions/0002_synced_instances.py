"""Synced instances: what a source delivered, so that Orthanc deletions can be reconciled.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "synced_instances",
        sa.Column("source", sa.String(512), nullable=False),
        sa.Column("study_uid", sa.String(64), nullable=False),
        sa.Column("sop_instance_uid", sa.String(64), nullable=False),
        sa.Column("series_uid", sa.String(64), nullable=False),
        sa.Column("partition", sa.String(128), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "study_uid", "sop_instance_uid", name=op.f("pk_synced_instances")),
    )


def downgrade() -> None:
    op.drop_table("synced_instances")
