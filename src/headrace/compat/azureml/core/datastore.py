"""`azureml.core.datastore`: named storage locations (local folders by default)."""

from __future__ import annotations

from headrace.sdk.datastore import Datastore

__all__ = ["Datastore"]
