"""Where a step's inputs are and what identifies them: shared by the orchestrator (deciding at
run time) and by submission (telling the user at submit which steps will be reused)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from headrace.engine.runtime import ResolvedData, pipeline_data_path
from headrace.graph.model import Graph, StepNode
from headrace.store.records import StepRunRecord
from headrace.store.workspace_store import WorkspaceStore

__all__ = ["ProducedData", "outputs_exist", "resolve_inputs", "workspace_default_datastore"]


@dataclass(frozen=True)
class ProducedData:
    """What a finished (or reused) producer step offers its consumers."""

    data_run_id: str
    outputs: dict[str, Any]


def workspace_default_datastore(ws: WorkspaceStore, graph: Graph) -> str:
    if graph.default_datastore:
        return graph.default_datastore
    defaults = [d.name for d in ws.meta.list_datastores() if d.is_default]
    return defaults[0] if defaults else "workspaceblobstore"


def resolve_inputs(
    ws: WorkspaceStore,
    graph: Graph,
    node: StepNode,
    parameters: dict[str, Any],
    producers: dict[str, ProducedData],
    default_datastore: str,
) -> tuple[tuple[ResolvedData, ...], dict[str, str]]:
    """Each input placed on a datastore, and its identity for the reuse fingerprint.

    `producers` maps producer node ids to their data; every producer of `node` must be there.
    """
    resolved: list[ResolvedData] = []
    identities: dict[str, str] = {}
    for binding in node.inputs:
        data = graph.data_node(binding.data)
        if data.kind == "pipeline_data":
            produced = producers[data.producer or ""]
            output = data.output_name or data.name
            datastore = (
                produced.outputs.get(output, {}).get("datastore")
                or data.datastore
                or default_datastore
            )
            path = pipeline_data_path(produced.data_run_id, output)
            identities[binding.port] = f"step-run:{produced.data_run_id}/{output}"
        else:
            if data.kind == "datapath_parameter":
                value = parameters.get(data.parameter or "") or {}
                datastore = value.get("datastore") or default_datastore
                path = value.get("path") or ""
            else:
                datastore = data.datastore or default_datastore
                path = data.path_on_datastore or ""
            content = ws.datastore_files(datastore).fingerprint(path)
            identities[binding.port] = f"datastore:{datastore}/{path}#{content}"
        resolved.append(
            ResolvedData(
                port=binding.port,
                data_name=data.name,
                datastore=datastore,
                path_on_datastore=path,
                mode=binding.mode,
                path_on_compute=binding.path_on_compute,
                overwrite=binding.overwrite,
            )
        )
    return tuple(resolved), identities


def outputs_exist(ws: WorkspaceStore, record: StepRunRecord) -> bool:
    """Whether every output of an earlier step run is still on its datastore (so it can be
    reused); outputs someone deleted mean the step must run again."""
    for out in record.outputs.values():
        try:
            if not ws.datastore_files(out["datastore"]).exists(out["path"]):
                return False
        except Exception:
            return False
    return True
