"""datasets: registered dataset versions with their content identity, and their lineage

Revision ID: 0006
Revises: 0007
Create Date: 2026-12-07 18:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import headrace.store.orm

revision = "0006"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("definition_hash", sa.String(length=64), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("produced_by", sa.String(length=36), nullable=True),
        sa.Column("created_at", headrace.store.orm.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
    )
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.create_index("ix_datasets_name_version", ["name", "version"], unique=True)
    op.create_table(
        "dataset_lineage",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dataset_id", sa.String(length=36), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("step_run_id", sa.String(length=36), nullable=False),
        sa.Column("pipeline_run_id", sa.String(length=36), nullable=False),
        sa.Column("port", sa.String(length=255), nullable=False),
        sa.Column("created_at", headrace.store.orm.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_lineage")),
    )
    with op.batch_alter_table("dataset_lineage", schema=None) as batch_op:
        batch_op.create_index("ix_dataset_lineage_dataset", ["dataset_id", "id"], unique=False)
        batch_op.create_index("ix_dataset_lineage_step_run", ["step_run_id"], unique=False)


def downgrade() -> None:
    op.drop_table("dataset_lineage")
    op.drop_table("datasets")
