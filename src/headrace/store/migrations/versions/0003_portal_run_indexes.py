"""portal run indexes: the runs list sorted by submitted, started or ended time, and by graph

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


def upgrade() -> None:
    with op.batch_alter_table("pipeline_runs", schema=None) as batch_op:
        for name, columns in INDEXES.items():
            batch_op.create_index(name, columns, unique=False)


def downgrade() -> None:
    with op.batch_alter_table("pipeline_runs", schema=None) as batch_op:
        for name in INDEXES:
            batch_op.drop_index(name)
