"""portal run indexes: the runs list sorted by submitted, started or ended time, and by graph;
running steps by compute target (the compute page, ComputeTarget.get_status)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 09:40:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_pipeline_runs_created": ["created_at", "id"],
    "ix_pipeline_runs_started": ["started_at", "id"],
    "ix_pipeline_runs_ended": ["ended_at", "id"],
    "ix_pipeline_runs_graph": ["graph_id"],
}
STEP_INDEXES = {"ix_step_runs_status_target": ["status", "compute_target"]}


def upgrade() -> None:
    with op.batch_alter_table("pipeline_runs", schema=None) as batch_op:
        for name, columns in INDEXES.items():
            batch_op.create_index(name, columns, unique=False)
    with op.batch_alter_table("step_runs", schema=None) as batch_op:
        for name, columns in STEP_INDEXES.items():
            batch_op.create_index(name, columns, unique=False)


def downgrade() -> None:
    with op.batch_alter_table("step_runs", schema=None) as batch_op:
        for name in STEP_INDEXES:
            batch_op.drop_index(name)
    with op.batch_alter_table("pipeline_runs", schema=None) as batch_op:
        for name in INDEXES:
            batch_op.drop_index(name)
