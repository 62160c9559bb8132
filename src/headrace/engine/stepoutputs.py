"""A step attempt's outputs, for the orchestrator (engine/orchestrator.py): where the
attempt writes them (`step_outputs`), how its step run record names them
(`output_records`), and registering those asked for with `register_on_complete` once it
succeeded (`register_outputs`)."""

from __future__ import annotations

from typing import Any

from headrace.engine.planning import output_path
from headrace.engine.runtime import ResolvedData, StepTask
from headrace.graph.model import Graph, StepNode
from headrace.store.workspace_store import WorkspaceStore

__all__ = ["output_records", "register_outputs", "step_outputs"]


def step_outputs(
    graph: Graph, node: StepNode, step_run_id: str, default_datastore: str
) -> tuple[ResolvedData, ...]:
    outputs = []
    for binding in node.outputs:
        data = graph.data_node(binding.data)
        outputs.append(
            ResolvedData(
                port=binding.port,
                data_name=data.name,
                datastore=data.datastore or default_datastore,
                path_on_datastore=output_path(data, step_run_id, binding.port),
                mode=binding.mode,
                path_on_compute=binding.path_on_compute,
            )
        )
    return tuple(outputs)


def output_records(
    graph: Graph, outputs: tuple[ResolvedData, ...], node: StepNode
) -> dict[str, Any]:
    records = {}
    for item, binding in zip(outputs, node.outputs, strict=True):
        data = graph.data_node(binding.data)
        records[item.port] = {
            "datastore": item.datastore,
            "path": item.path_on_datastore,
            "data_name": data.name,
            "pipeline_output_name": data.pipeline_output_name,
        }
    return records


def register_outputs(
    ws: WorkspaceStore, graph: Graph, task: StepTask, pipeline_run_id: str
) -> str | None:
    """Register the outputs a step asked for with register_on_complete, now that it
    succeeded and they are committed; an error message when one cannot be."""
    from headrace.engine.datasets import register
    from headrace.errors import HeadraceError

    for item, binding in zip(task.outputs, task.node.outputs, strict=True):
        wanted = graph.data_node(binding.data).register_as
        if not wanted:
            continue
        read_as = dict(wanted.get("read_as") or {"kind": "file"})
        definition = {
            **read_as,
            "sources": [{"datastore": item.datastore, "path": item.path_on_datastore}],
        }
        try:
            register(
                ws,
                definition,
                name=str(wanted["name"]),
                description=wanted.get("description"),
                tags=dict(wanted.get("tags") or {}),
                create_new_version=True,
                produced_by=task.step_run_id,
                pipeline_run_id=pipeline_run_id,
            )
        except HeadraceError as exc:
            return f"register_on_complete({wanted['name']!r}) of output {item.port!r}: {exc}"
    return None
