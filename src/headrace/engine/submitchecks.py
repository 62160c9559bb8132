"""What a submit checks beyond the graph's structure, so a run that could only fail at planning
or at its first step is refused with nothing written (400 over REST, ParameterError in the
SDK):

- every DataPath (parameter values and defaults, DataReference paths) names a datastore of
  the workspace and a path inside it: no `..`, no absolute path, no symbolic link that
  leads out (checked on this machine for a local datastore, by the path's form for an
  object store, which is not contacted);
- every step's arguments and environment, with the run's parameter values put in, fit
  Linux's limits for starting a process: one string at most `limits.ARG_STRLEN` bytes
  (MAX_ARG_STRLEN, 128 KiB with its NUL), all of them at most ARG_MAX (2 MiB by default).
  Parameters count twice: in the arguments that use them and as `AML_PARAMETER_<name>` in
  every step's environment. Data paths are not known before the run; a placeholder counts
  as its own length, so a step whose data paths are very long can still fail to start
  (it then says so, as before).
"""

from __future__ import annotations

import os
from typing import Any

from headrace.engine.planning import workspace_default_datastore
from headrace.engine.runtime import env_name, parameter_text
from headrace.errors import DatastorePathError, NotFoundError
from headrace.graph import placeholders
from headrace.graph.model import Graph, StepNode
from headrace.limits import ARG_STRLEN, arg_max
from headrace.store.datastores import clean_relative_path
from headrace.store.workspace_store import WorkspaceStore

__all__ = ["argument_problems", "data_path_problems"]

# Room for what the agent adds to a step's environment and argv besides the parameters: its
# own environment (measured when the check runs), headrace's variables, the interpreter.
_RESERVE_BYTES = 16 * 1024
_POINTER_BYTES = 8


def data_path_problems(ws: WorkspaceStore, graph: Graph, values: dict[str, Any]) -> list[str]:
    """Every DataPath of the run that names an unknown datastore or leaves its datastore."""
    default = workspace_default_datastore(ws, graph)
    problems: list[str] = []
    for definition in graph.parameters:
        if definition.type != "datapath":
            continue
        value = values.get(definition.name) or {}
        problem = _place_problem(ws, value.get("datastore") or default, value.get("path") or "")
        if problem:
            problems.append(f"DataPath parameter {definition.name!r}: {problem}")
    for data in graph.data:
        if data.kind == "datastore":
            problem = _place_problem(ws, data.datastore or default, data.path_on_datastore or "")
            if problem:
                problems.append(f"Data {data.name!r}: {problem}")
    return problems


def _place_problem(ws: WorkspaceStore, datastore: str, path: str) -> str | None:
    try:
        files = ws.datastore_files(datastore)
        if files.is_local:
            files.local_path(path)  # also refuses a symbolic link out of the datastore
        else:
            clean_relative_path(path)
    except (NotFoundError, DatastorePathError) as exc:
        return str(exc)
    return None


def _size(text: str) -> int:
    """Bytes the kernel copies for one argv or environment string (its NUL included)."""
    return len(text.encode("utf-8", "surrogateescape")) + 1


def _used(text: str, names: list[str]) -> str:
    used = placeholders.known_references(text, placeholders.PARAMETER, names)
    if not used:
        return ""
    return " once parameter " + ", ".join(repr(n) for n in dict.fromkeys(used)) + " is put in"


def argument_problems(graph: Graph, values: dict[str, Any]) -> list[str]:
    """Every step argument or environment variable too long to start the step's process."""
    texts = {name: parameter_text(value) for name, value in values.items()}
    names = list(texts)
    limit_words = (
        f"Linux allows at most {ARG_STRLEN:,} bytes in one argument or environment "
        "variable (MAX_ARG_STRLEN); pass large values in a file instead (a DataPath "
        "parameter, or data on a datastore)."
    )
    problems: list[str] = []
    parameter_env: list[str] = []
    for name, text in texts.items():
        entry = f"AML_PARAMETER_{env_name(name)}={text}"
        parameter_env.append(entry)
        if _size(entry) > ARG_STRLEN:
            problems.append(
                f"Pipeline parameter {name!r} is {_size(text) - 1:,} bytes long; every step "
                f"gets it as the environment variable AML_PARAMETER_{env_name(name)}, and "
                + limit_words
            )
    base = sum(_size(f"{k}={v}") + _POINTER_BYTES for k, v in os.environ.items())
    budget = arg_max() - base - _RESERVE_BYTES
    for node in graph.nodes:
        strings = list(parameter_env)
        for what, raw, text in _step_strings(node, texts):
            strings.append(text)
            if _size(text) > ARG_STRLEN:
                problems.append(
                    f"Step {node.name!r}: {what} would be {_size(text) - 1:,} bytes"
                    f"{_used(raw, names)}; " + limit_words
                )
        total = sum(_size(s) + _POINTER_BYTES for s in strings)
        if total > budget:
            problems.append(
                f"Step {node.name!r}: its arguments and parameters would take {total:,} bytes "
                f"when the step starts; with the agent's own environment this machine allows "
                f"{budget:,} (ARG_MAX {arg_max():,}). Pass large values in files instead (a "
                "DataPath parameter, or data on a datastore)."
            )
    return list(dict.fromkeys(problems))


def _step_strings(node: StepNode, texts: dict[str, str]) -> list[tuple[str, str, str]]:
    """(what, text with placeholders, text with the parameter values in) of each string a
    step's process gets from its definition."""
    found: list[tuple[str, str, str]] = []
    if node.kind == "command":
        found.append(("its command", node.command or "", node.command or ""))
    found += [(f"argument {i}", raw, raw) for i, raw in enumerate(node.arguments, 1)]
    for key, raw in node.params:
        found.append((f"params[{key!r}]", raw, f"AML_PARAMETER_{env_name(key)}={raw}"))
    for key, raw in node.environment_variables:
        found.append((f"environment variable {key}", raw, f"{key}={raw}"))
    return [(what, raw, placeholders.expand(full, {}, texts)) for what, raw, full in found]
