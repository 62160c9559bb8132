"""outbox rows of a run found by its id (a run's ending, its portal page)

Revision ID: 0012_outbox_by_run
Revises: 0011_schedules
Create Date: 2026-12-07 22:20:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0012_outbox_by_run"
down_revision = "0011_schedules"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_outbox_run", "outbox", ["run_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_outbox_run", table_name="outbox")
