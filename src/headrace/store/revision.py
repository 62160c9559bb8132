"""The schema revision this headrace works with: the newest migration in
store/migrations/versions (tests/test_store.py keeps the two in step).

It imports nothing, so a reader that does not load SQLAlchemy or Alembic (store/fastread.py)
can tell whether a database is at this revision before trusting it.
"""

from __future__ import annotations

__all__ = ["HEAD_REVISION"]

HEAD_REVISION = "0013_run_metric_finals"
