"""Alembic environment for headrace's metadata store (SQLite and PostgreSQL, one stream).

headrace runs migrations itself (`Database.upgrade`) and passes the connection in
`config.attributes["connection"]`; batch mode lets ALTERs work on SQLite.
"""

from __future__ import annotations

from alembic import context

from headrace.store.orm import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("headrace migrations run through headrace.store.database.Database.upgrade")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
