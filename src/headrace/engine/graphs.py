"""Pipeline graphs by id, read and parsed once per process.

A graph id is the hash of the graph's JSON (`SqlMetadataStore.graph_id`), so what an id names
never changes: the cache needs no invalidation and may be shared by every workspace a process
opens. Graphs are frozen dataclasses; callers must not change what they get.
"""

from __future__ import annotations

import threading

from headrace.graph.model import Graph
from headrace.store.metadata import SqlMetadataStore

__all__ = ["load_graph", "remember_graph"]

_LIMIT = 256
_cache: dict[str, Graph] = {}
_lock = threading.Lock()


def load_graph(meta: SqlMetadataStore, graph_id: str) -> Graph:
    """The graph stored under `graph_id` (NotFoundError when there is none)."""
    graph = _cache.get(graph_id)
    if graph is None:
        graph = Graph.from_dict(meta.get_graph(graph_id))
        with _lock:
            if len(_cache) >= _LIMIT:
                _cache.pop(next(iter(_cache)))  # the oldest entry
            _cache[graph_id] = graph
    return graph


def remember_graph(graph_id: str, graph: Graph) -> None:
    """Cache a graph this process just stored under `graph_id` (an agent that queued a
    submitted run claims it next: no need to read and parse it back)."""
    with _lock:
        if len(_cache) >= _LIMIT:
            _cache.pop(next(iter(_cache)))
        _cache[graph_id] = graph
