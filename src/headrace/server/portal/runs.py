"""Experiments and the runs list (issue 4). Being built."""

from __future__ import annotations

__all__: list[str] = []
