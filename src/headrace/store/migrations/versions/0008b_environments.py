"""registered environments (Environment.register): named, versioned definitions

Revision ID: 0008b
Revises: 0006
Create Date: 2026-12-07 19:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import headrace.store.orm

revision = "0008b"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "environments",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("created_at", headrace.store.orm.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", "version", name=op.f("pk_environments")),
    )


def downgrade() -> None:
    op.drop_table("environments")
