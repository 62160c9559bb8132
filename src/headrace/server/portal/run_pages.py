"""A pipeline run's page (its graph, live) and a step run's page (issue 4). Being built."""

from __future__ import annotations

__all__: list[str] = []
