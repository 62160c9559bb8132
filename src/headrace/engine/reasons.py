"""Why a step of a pipeline run runs, or is reused: the `run_reason` its step run records,
and the record of a reuse. Decided by the orchestrator (engine/orchestrator.py)."""

from __future__ import annotations

from typing import Any

from headrace.engine import fingerprint as fp
from headrace.graph.model import StepNode
from headrace.store.records import Status, StepRunRecord
from headrace.store.workspace_store import WorkspaceStore

__all__ = ["explain_run", "reuse_fields"]


def explain_run(
    ws: WorkspaceStore,
    node: StepNode,
    parts: dict[str, Any],
    earlier: StepRunRecord | None,
    previous: StepRunRecord | None = None,
) -> dict[str, Any]:
    """Why a step runs: the matching run's outputs are gone, or what changed since
    `previous` (the step's latest earlier run; None when there is none)."""
    if earlier is not None:
        return {
            "decision": "run",
            "summary": f"the outputs of the matching run {earlier.id} no longer exist",
            "compared_with": earlier.id,
        }
    if previous is None:
        return {"decision": "run", "summary": f"first run of step {node.name!r}"}
    source_changes = None
    old_source = previous.fingerprint_parts.get("source")
    if old_source and parts.get("source") and old_source != parts["source"]:
        from headrace.engine.snapshots import changed_files, read_manifest

        try:
            source_changes = changed_files(
                read_manifest(ws.artifacts, old_source),
                read_manifest(ws.artifacts, parts["source"]),
            )
        except Exception:
            source_changes = None
    changes = fp.explain(parts, previous.fingerprint_parts, source_changes)
    if changes:
        summary = "; ".join(changes)
    elif previous.status != Status.FINISHED:
        summary = f"the previous run of this step ({previous.id}) did not finish successfully"
    else:
        summary = "no earlier successful run with identical inputs"
    return {
        "decision": "run",
        "summary": summary,
        "changes": changes,
        "compared_with": previous.id,
    }


def reuse_fields(
    pipeline_run_id: str,
    node: StepNode,
    key: str,
    parts: dict[str, Any],
    earlier: StepRunRecord,
    summary: str | None = None,
) -> dict[str, Any]:
    """The fields of the step run that records `node` reusing `earlier`'s outputs (its id
    and times aside)."""
    original = earlier.data_run_id
    return dict(
        pipeline_run_id=pipeline_run_id,
        node_id=node.id,
        name=node.name,
        status=Status.FINISHED,
        compute_target=node.compute_target,
        fingerprint=key,
        fingerprint_parts=parts,
        run_reason={
            "decision": "reused",
            "summary": summary
            or f"reused the outputs of step run {original} (nothing it depends on changed)",
            "reused_run_id": original,
        },
        reused_run_id=original,
        command=earlier.command,
        outputs=earlier.outputs,
        properties={
            "azureml.reusedrunid": original,
            "azureml.reusednodeid": node.id,
            "azureml.reusedpipeline": earlier.pipeline_run_id,
            "azureml.nodeid": node.id,
            "azureml.pipeline": pipeline_run_id,
        },
    )
