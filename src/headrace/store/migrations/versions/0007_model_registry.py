"""model registry: a row per registered model version (files live in the artifact store)

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-07 18:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import headrace.store.orm

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("datasets", sa.JSON(), nullable=False),
        sa.Column("run_id", sa.String(length=128), nullable=True),
        sa.Column("experiment_name", sa.String(length=255), nullable=True),
        sa.Column("root", sa.String(length=255), nullable=False),
        sa.Column("is_folder", sa.Boolean(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", headrace.store.orm.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", "version", name=op.f("pk_models")),
    )
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_models_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_models_run_id"))

    op.drop_table("models")
