"""Published pipelines and pipeline endpoints, with a submit form (issue 4). Being built."""

from __future__ import annotations

__all__: list[str] = []
