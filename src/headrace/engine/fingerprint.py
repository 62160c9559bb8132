"""Reuse fingerprints of steps, and the sentences that explain why a step ran.

A step's fingerprint is the hash of its parts: step settings, arguments, the values of the
parameters it uses, the content hash of its source snapshot, its environment, and the
identity of every input. An input that is a previous step's output is identified by the step
run that produced the data (so a rerun upstream means new data downstream, as in SDK v1); data
on a datastore by its location and a content fingerprint (size and mtime of every file), so a
changed file behind an unchanged path is noticed, which SDK v1 never did.

Every step run records its parts; `explain` compares them with an earlier run of the step.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from headrace.engine.interpreters import Interpreter, current, describe
from headrace.graph.model import Graph, StepNode
from headrace.graph.validate import used_parameters

__all__ = ["explain", "fingerprint", "fingerprint_parts", "interpreter_environment"]


def interpreter_environment(interpreter: Interpreter | None = None) -> dict[str, Any]:
    """The environment of a step that names none: the run's interpreter (its submitter's,
    engine/interpreters.py), else this process's."""
    chosen = interpreter or current()
    return chosen.identity() if chosen is not None else {}


def fingerprint_parts(
    node: StepNode,
    graph: Graph,
    parameters: dict[str, Any],
    input_identities: dict[str, str],
    environment: dict[str, Any],
) -> dict[str, Any]:
    """Everything a step's result depends on, as plain JSON data."""
    step: dict[str, Any] = {
        "kind": node.kind,
        "name": node.name,
        "script_name": node.script_name,
        "command": node.command,
        "compute_target": node.compute_target,
        "version": node.version,
        "params": [list(p) for p in node.params],
        "environment_variables": [list(p) for p in node.environment_variables],
        "inputs": [[b.port, b.mode, b.path_on_compute] for b in node.inputs],
        "outputs": [
            [b.port, b.mode, b.path_on_compute, graph.data_node(b.data).datastore]
            for b in node.outputs
        ],
    }
    if node.step_kind is not None:
        # Only for steps of a kind package, so other steps' fingerprints stay as they were.
        step["step_kind"] = node.step_kind
        step["settings"] = node.settings
    return {
        "step": step,
        "arguments": list(node.arguments),
        "parameters": {name: parameters.get(name) for name in used_parameters(node, graph)},
        "source": node.snapshot_id,
        "environment": environment,
        "inputs": dict(sorted(input_identities.items())),
    }


def fingerprint(parts: dict[str, Any]) -> str:
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_interpreter(environment: dict[str, Any] | None) -> bool:
    """Whether a fingerprint's environment is a plain interpreter (a step without one)."""
    if not environment:
        return False
    return "interpreter" in environment and "name" not in environment


def explain(
    parts: dict[str, Any],
    previous: dict[str, Any] | None,
    source_changes: list[str] | None = None,
) -> list[str]:
    """What differs between `parts` and an earlier run's parts, one sentence per change."""
    if not previous:
        return []
    changes: list[str] = []
    old_step, new_step = previous.get("step", {}), parts.get("step", {})
    for key in sorted(set(old_step) | set(new_step)):
        if old_step.get(key) != new_step.get(key):
            changes.append(
                f"step setting {key} changed: {_short(old_step.get(key))} -> "
                f"{_short(new_step.get(key))}"
            )
    if previous.get("arguments") != parts.get("arguments"):
        changes.append(
            f"arguments changed: {_short(previous.get('arguments'))} -> "
            f"{_short(parts.get('arguments'))}"
        )
    old_params, new_params = previous.get("parameters", {}), parts.get("parameters", {})
    for name in sorted(set(old_params) | set(new_params)):
        if old_params.get(name) != new_params.get(name):
            changes.append(
                f"parameter {name} changed: {_short(old_params.get(name))} -> "
                f"{_short(new_params.get(name))}"
            )
    if previous.get("source") != parts.get("source"):
        detail = ", ".join(source_changes[:5]) if source_changes else "files changed"
        more = (
            f" and {len(source_changes) - 5} more"
            if source_changes and len(source_changes) > 5
            else ""
        )
        changes.append(f"source changed: {detail}{more}")
    old_env, new_env = previous.get("environment"), parts.get("environment")
    if old_env != new_env:
        if _is_interpreter(old_env) and _is_interpreter(new_env):
            changes.append(
                f"environment changed: {describe(old_env or {})} -> {describe(new_env or {})}"
            )
        else:
            changes.append("environment changed")
    old_inputs, new_inputs = previous.get("inputs", {}), parts.get("inputs", {})
    for port in sorted(set(old_inputs) | set(new_inputs)):
        old, new = old_inputs.get(port), new_inputs.get(port)
        if old == new:
            continue
        if old is None or new is None:
            changes.append(f"input {port} {'added' if old is None else 'removed'}")
        elif new.startswith("step-run:"):
            changes.append(f"input {port} changed: its producing step ran again (new data)")
        elif new.startswith("dataset:"):
            changes.append(
                f"input {port} changed: the dataset's files (or how they are read) changed"
            )
        elif old.split("#")[0] == new.split("#")[0]:
            changes.append(f"input {port} changed: the data under {new.split('#')[0][10:]} changed")
        else:
            changes.append(
                f"input {port} changed: {old.split('#')[0][10:]} -> {new.split('#')[0][10:]}"
            )
    return changes
