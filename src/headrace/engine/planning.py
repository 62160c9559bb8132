"""Where a step's inputs are and what identifies them: shared by the orchestrator (deciding at
run time) and by submission (telling the user at submit which steps will be reused)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from headrace.engine.runtime import ResolvedData, pipeline_data_path
from headrace.graph.model import DataNode, Graph, StepNode
from headrace.store.records import RECOVER_FROM, RERUN_OF, StepRunRecord
from headrace.store.workspace_store import WorkspaceStore

__all__ = [
    "RECOVER_FROM",
    "RERUN_OF",
    "ProducedData",
    "input_datasets",
    "output_path",
    "outputs_exist",
    "resolve_inputs",
    "workspace_default_datastore",
]


@dataclass(frozen=True)
class ProducedData:
    """What a finished (or reused) producer step offers its consumers."""

    data_run_id: str
    outputs: dict[str, Any]


def workspace_default_datastore(ws: WorkspaceStore, graph: Graph) -> str:
    if graph.default_datastore:
        return graph.default_datastore
    return ws.meta.default_datastore_name() or "workspaceblobstore"


def resolve_inputs(
    ws: WorkspaceStore,
    graph: Graph,
    node: StepNode,
    parameters: dict[str, Any],
    producers: dict[str, ProducedData],
    default_datastore: str,
    identities_seen: dict[str, str] | None = None,
) -> tuple[tuple[ResolvedData, ...], dict[str, str]]:
    """Each input placed on a datastore, and its identity for the reuse fingerprint.

    `producers` maps producer node ids to their data; every producer of `node` must be there.
    `identities_seen` keeps dataset identities across the steps decided together (one wave
    of the orchestrator, one submit's preview), so a dataset that several steps read has
    its files looked at once.
    """
    resolved: list[ResolvedData] = []
    identities: dict[str, str] = {}
    for binding in node.inputs:
        data = graph.data_node(binding.data)
        definition = None
        if data.kind in ("dataset", "dataset_parameter"):
            from headrace.engine.datasets import input_identity

            definition = (
                data.dataset if data.kind == "dataset" else parameters.get(data.parameter or "")
            )
            assert isinstance(definition, dict)
            datastore, path = "", ""
            key = json.dumps(
                {k: v for k, v in definition.items() if k != "registration"},
                sort_keys=True,
                default=str,
            )
            seen = identities_seen if identities_seen is not None else {}
            if key not in seen:
                seen[key] = input_identity(ws, definition)
            identities[binding.port] = seen[key]
        elif data.kind == "pipeline_data":
            produced = producers[data.producer or ""]
            output = data.output_name or data.name
            record = produced.outputs.get(output, {})
            datastore = record.get("datastore") or data.datastore or default_datastore
            path = record.get("path") or pipeline_data_path(produced.data_run_id, output)
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
                dataset=definition,
                read_as=binding.read_as,
            )
        )
    return tuple(resolved), identities


def output_path(data: DataNode, step_run_id: str, port: str) -> str:
    """Where a step run's output lives on its datastore: SDK v1's PipelineData path, or an
    OutputFileDatasetConfig's destination with `{run-id}` and `{output-name}` filled in."""
    if data.path_on_datastore:
        return (
            data.path_on_datastore.replace("{run-id}", step_run_id)
            .replace("{output-name}", port)
            .strip("/")
        )
    return pipeline_data_path(step_run_id, port)


def input_datasets(graph: Graph, node: StepNode, parameters: dict[str, Any]) -> dict[str, str]:
    """The registered dataset versions a step consumes, as {port: dataset id} (lineage)."""
    found = {}
    for binding in node.inputs:
        data = graph.data_node(binding.data)
        definition: Any = None
        if data.kind == "dataset":
            definition = data.dataset
        elif data.kind == "dataset_parameter":
            definition = parameters.get(data.parameter or "")
        registration = (
            (definition or {}).get("registration") if isinstance(definition, dict) else None
        )
        if isinstance(registration, dict) and isinstance(registration.get("id"), str):
            found[binding.port] = registration["id"]
    return found


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
