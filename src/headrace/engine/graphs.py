"""Pipeline graphs by id, read and parsed once per process.

A graph id is the hash of the graph's JSON (`SqlMetadataStore.graph_id`), so what an id names
never changes: the cache needs no invalidation and may be shared by every workspace a process
opens (the agent, the server's API and portal, the CLI's read path). Graphs are frozen
dataclasses; callers must not change what they get. A graph read back from a store is one
headrace checked before it stored it, so its fields' types are not checked again
(`Graph.from_dict(stored=True)`). This module imports no store: the CLI's SQLite reader
(store/fastread.py) uses it without SQLAlchemy.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Protocol

from headrace.graph.model import Graph

__all__ = ["GraphSource", "cached_graphs", "graph_from_store", "load_graph", "remember_graph"]

_LIMIT = 256
_cache: dict[str, Graph] = {}
_lock = threading.Lock()


class GraphSource(Protocol):
    """What stores graphs by id: `SqlMetadataStore`, the CLI's `FastReader`."""

    def get_graph(self, graph_id: str) -> dict[str, Any]: ...


def cached_graphs() -> Mapping[str, Graph]:
    """The graphs held now, by id (the portal tells the store not to read these again)."""
    return _cache


def load_graph(source: GraphSource, graph_id: str) -> Graph:
    """The graph stored under `graph_id` (NotFoundError when there is none)."""
    graph = _cache.get(graph_id)
    if graph is None:
        graph = graph_from_store(graph_id, source.get_graph(graph_id))
    return graph


def graph_from_store(graph_id: str, raw: dict[str, Any]) -> Graph:
    """The graph `raw` as a store returned it under `graph_id`, parsed and held."""
    return remember_graph(graph_id, Graph.from_dict(raw, stored=True))


def remember_graph(graph_id: str, graph: Graph) -> Graph:
    """Hold a graph parsed or stored under `graph_id` (an agent that queued a submitted run
    claims it next: no need to read and parse it back); returns it."""
    with _lock:
        if len(_cache) >= _LIMIT:
            _cache.pop(next(iter(_cache)))  # the oldest entry
        _cache[graph_id] = graph
    return graph
