"""Failure sequences as 64-bit integers: the Azure change feed's Sequence is a bigint.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite's INTEGER is 64-bit already; batch mode keeps the one migration valid for both databases.
    with op.batch_alter_table("failures") as batch:
        batch.alter_column("sequence", type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("failures") as batch:
        batch.alter_column("sequence", type_=sa.Integer(), existing_type=sa.BigInteger(), existing_nullable=False)
