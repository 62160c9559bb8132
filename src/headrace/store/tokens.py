"""API tokens of the server in the metadata store (only hashes of the secrets are kept).

`SqlMetadataStore` inherits these queries. (Filled in by the server work of issue 3.)
"""

from __future__ import annotations

from headrace.store.database import Database

__all__ = ["TokenQueries"]


class TokenQueries:
    db: Database
