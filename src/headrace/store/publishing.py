"""Published pipelines and pipeline endpoints in the metadata store.

`SqlMetadataStore` inherits these queries. (Filled in by the publishing work of issue 3.)
"""

from __future__ import annotations

from headrace.store.database import Database

__all__ = ["PublishingQueries"]


class PublishingQueries:
    db: Database
