"""notifications, run triggers and the outbox a run's ending fills for them

Revision ID: 0010_notifications
Revises: 0008b
Create Date: 2026-12-07 21:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import headrace.store.orm

revision = "0010_notifications"
down_revision = "0008b"
branch_labels = None
depends_on = None

_TIME = headrace.store.orm.UtcDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("statuses", sa.JSON(), nullable=False),
        sa.Column("pipeline_id", sa.String(length=36), nullable=True),
        sa.Column("endpoint_id", sa.String(length=36), nullable=True),
        sa.Column("experiment_name", sa.String(length=255), nullable=True),
        sa.Column("on_request", sa.Boolean(), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_notifications")),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("run_status", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _TIME, nullable=False),
        sa.Column("lease_until", _TIME, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("done_at", _TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index("ix_outbox_once", "outbox", ["kind", "target", "run_id"], unique=True)
    op.create_index("ix_outbox_due", "outbox", ["state", "next_attempt_at"], unique=False)
    op.create_table(
        "run_triggers",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("source_pipeline_id", sa.String(length=36), nullable=True),
        sa.Column("source_endpoint_id", sa.String(length=36), nullable=True),
        sa.Column("statuses", sa.JSON(), nullable=False),
        sa.Column("target_pipeline_id", sa.String(length=36), nullable=True),
        sa.Column("target_endpoint_id", sa.String(length=36), nullable=True),
        sa.Column("experiment_name", sa.String(length=255), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_run_triggers")),
    )


def downgrade() -> None:
    op.drop_table("run_triggers")
    op.drop_index("ix_outbox_due", table_name="outbox")
    op.drop_index("ix_outbox_once", table_name="outbox")
    op.drop_table("outbox")
    op.drop_table("notifications")
