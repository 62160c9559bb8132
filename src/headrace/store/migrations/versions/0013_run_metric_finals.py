"""the last value of each scalar metric of a pipeline run (the portal's metric columns)

Revision ID: 0013_run_metric_finals
Revises: 0012_outbox_by_run
Create Date: 2026-12-08 00:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from headrace.store.metric_finals import backfill_finals

revision = "0013_run_metric_finals"
down_revision = "0012_outbox_by_run"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_metric_finals",
        sa.Column("pipeline_run_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=600), nullable=False),
        sa.Column("number", sa.Float(), nullable=True),
        sa.Column("text", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("pipeline_run_id", "name", name=op.f("pk_run_metric_finals")),
    )
    op.create_index(
        "ix_run_metric_finals_name_number", "run_metric_finals", ["name", "number"], unique=False
    )
    backfill_finals(op.get_bind())


def downgrade() -> None:
    op.drop_index("ix_run_metric_finals_name_number", table_name="run_metric_finals")
    op.drop_table("run_metric_finals")
