"""schedules: recurrences and datastore triggers, the slots they fired, the listings they saw

Revision ID: 0011_schedules
Revises: 0010_notifications
Create Date: 2026-12-07 21:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import headrace.store.orm

revision = "0011_schedules"
down_revision = "0010_notifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    utc = headrace.store.orm.UtcDateTime(timezone=True)
    op.create_table(
        "schedules",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("pipeline_id", sa.String(length=36), nullable=True),
        sa.Column("pipeline_endpoint_id", sa.String(length=36), nullable=True),
        sa.Column("experiment_name", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("recurrence", sa.JSON(), nullable=True),
        sa.Column("datastore_name", sa.String(length=255), nullable=True),
        sa.Column("path_on_datastore", sa.String(length=1024), nullable=True),
        sa.Column("polling_interval", sa.Float(), nullable=False),
        sa.Column("data_path_parameter_name", sa.String(length=255), nullable=True),
        sa.Column("trigger", sa.JSON(), nullable=False),
        sa.Column("pipeline_parameters", sa.JSON(), nullable=False),
        sa.Column("continue_on_step_failure", sa.Boolean(), nullable=True),
        sa.Column("catch_up", sa.String(length=32), nullable=False),
        sa.Column("next_fire_at", utc, nullable=True),
        sa.Column("last_error", sa.JSON(), nullable=True),
        sa.Column("created_at", utc, nullable=False),
        sa.Column("updated_at", utc, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedules")),
    )
    op.create_index("ix_schedules_status_next", "schedules", ["status", "next_fire_at"])
    op.create_index(op.f("ix_schedules_pipeline_id"), "schedules", ["pipeline_id"])
    op.create_index(
        op.f("ix_schedules_pipeline_endpoint_id"), "schedules", ["pipeline_endpoint_id"]
    )
    op.create_table(
        "schedule_fires",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("schedule_id", sa.String(length=36), nullable=False),
        sa.Column("fire_key", sa.String(length=1100), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", utc, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_fires")),
        sa.UniqueConstraint("schedule_id", "fire_key", name="uq_schedule_fires_key"),
    )
    op.create_index("ix_schedule_fires_schedule", "schedule_fires", ["schedule_id", "id"])
    op.create_table(
        "schedule_listings",
        sa.Column("schedule_id", sa.String(length=36), nullable=False),
        sa.Column("listing", sa.LargeBinary(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("files", sa.Integer(), nullable=False),
        sa.Column("pending", sa.Integer(), nullable=False),
        sa.Column("updated_at", utc, nullable=False),
        sa.PrimaryKeyConstraint("schedule_id", name=op.f("pk_schedule_listings")),
    )


def downgrade() -> None:
    op.drop_table("schedule_listings")
    op.drop_index("ix_schedule_fires_schedule", table_name="schedule_fires")
    op.drop_table("schedule_fires")
    op.drop_index(op.f("ix_schedules_pipeline_endpoint_id"), table_name="schedules")
    op.drop_index(op.f("ix_schedules_pipeline_id"), table_name="schedules")
    op.drop_index("ix_schedules_status_next", table_name="schedules")
    op.drop_table("schedules")
