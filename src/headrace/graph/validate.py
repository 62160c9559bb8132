"""Structural checks of a `Graph` and its topological order. Pure functions, no I/O.

Every check returns problems as sentences that name the step and say how to fix it; callers
collect them all before raising, so a user sees every problem of a pipeline at once.
"""

from __future__ import annotations

import graphlib
import re
from collections.abc import Collection
from difflib import get_close_matches

from headrace.graph import placeholders
from headrace.graph.model import Graph, StepNode
from headrace.limits import IDENTIFIER_MAX_BYTES, MAX_RETRIES, TEXT_MAX_CHARS, TIMEOUT_MAX_SECONDS

__all__ = [
    "did_you_mean",
    "find_cycle",
    "step_texts",
    "structural_problems",
    "topological_order",
    "used_parameters",
]

WORD = re.compile(r"^\w+$")


def did_you_mean(name: str, candidates: list[str]) -> str:
    """' (did you mean 'x'?)' when a candidate is close to `name`, else ''."""
    close = get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def step_texts(node: StepNode) -> list[str]:
    """Every text of a step that may hold placeholders: arguments, command, params, env."""
    texts = list(node.arguments)
    if node.command:
        texts.append(node.command)
    texts.extend(value for _, value in node.params)
    texts.extend(value for _, value in node.environment_variables)
    return texts


def used_parameters(node: StepNode, graph: Graph) -> list[str]:
    """Names of the graph parameters a step refers to (in texts or as DataPath inputs)."""
    known = [p.name for p in graph.parameters]
    names: set[str] = set()
    for text in step_texts(node):
        names.update(placeholders.known_references(text, placeholders.PARAMETER, known))
    for binding in node.inputs:
        parameter = graph.data_node(binding.data).parameter
        if parameter:
            names.add(parameter)
    return sorted(names)


def find_cycle(graph: Graph) -> list[str] | None:
    """Step ids forming a cycle (first id repeated at the end), or None."""
    known = {n.id for n in graph.nodes}
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for node in graph.nodes:
        sorter.add(node.id, *[p for p in _predecessors(graph, node) if p in known])
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle: list[str] = list(exc.args[1])
        # graphlib lists the cycle backwards (each item depends on the next); read it forwards.
        return list(reversed(cycle))
    return None


def _predecessors(graph: Graph, node: StepNode) -> list[str]:
    preds = list(node.run_after)
    data_ids = {d.id for d in graph.data}
    for binding in node.inputs:
        if binding.data in data_ids:
            producer = graph.data_node(binding.data).producer
            if producer:
                preds.append(producer)
    return preds


def topological_order(graph: Graph) -> list[str]:
    """Step ids in an order where every step comes after its predecessors; stable otherwise."""
    position = {n.id: i for i, n in enumerate(graph.nodes)}
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for node in graph.nodes:
        sorter.add(node.id, *graph.predecessors(node.id))
    sorter.prepare()
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=position.__getitem__)
        order.extend(ready)
        sorter.done(*ready)
    return order


def structural_problems(graph: Graph, reported_names: Collection[str] = ()) -> list[str]:
    """Every structural problem of the graph (names, edges, placeholders, cycles).

    Invalid names in `reported_names` were already reported by the caller (with the kind of
    object they name) and are not reported again as port names.
    """
    problems: list[str] = []
    names = {n.id: n.name for n in graph.nodes}
    data_ids = {d.id for d in graph.data}
    param_names = [p.name for p in graph.parameters]
    producers: dict[str, str] = {}
    output_names: dict[str, str] = {}

    if not graph.nodes:
        problems.append(
            "The pipeline has no steps: pass at least one step to Pipeline(steps=[...])."
        )

    for node in graph.nodes:
        label = f"Step {node.name!r}"
        ports = [b.port for b in node.inputs] + [b.port for b in node.outputs]
        seen: set[str] = set()
        for port in ports:
            if not WORD.match(port) and port not in reported_names:
                problems.append(
                    f"{label}: port name {port!r} is invalid; use letters, digits and underscores."
                )
            if port in seen:
                problems.append(
                    f"{label}: port name {port!r} is used twice; give each input and output "
                    "its own name (for inputs: data.as_input('other_name'))."
                )
            seen.add(port)
        for out in node.outputs:
            owner = producers.get(out.data)
            if owner is not None and owner != node.id:
                problems.append(
                    f"{label}: output {out.port!r} is already an output of step "
                    f"{names[owner]!r}; each PipelineData may be produced by one step only, "
                    "create a second PipelineData."
                )
            producers.setdefault(out.data, node.id)
        for binding in node.inputs:
            if binding.data not in data_ids:
                problems.append(f"{label}: input {binding.port!r} refers to unknown data.")
                continue
            data = graph.data_node(binding.data)
            if data.kind == "pipeline_data" and (
                data.producer is None or data.producer not in names
            ):
                problems.append(
                    f"{label}: input {binding.port!r} (PipelineData {data.name!r}) is not "
                    "produced by any step of this pipeline; add the producing step, or list it "
                    "in that step's outputs=[...]."
                )
        for other in node.run_after:
            if other not in names:
                problems.append(
                    f"{label}: runs after a step that is not part of this pipeline; add it "
                    "to the pipeline's steps or build the Pipeline with resolve_closure=True."
                )
        invalid_ports = [p for p in ports if not WORD.match(p)]
        for text in step_texts(node):
            for port in placeholders.unknown_references(text, placeholders.DATA, ports):
                if any(p.startswith(port) for p in invalid_ports):
                    continue  # the start of an invalid port name, reported above
                problems.append(
                    f"{label}: data {port!r} appears in the arguments but is not in the "
                    f"step's inputs or outputs{did_you_mean(port, ports)}; add it to "
                    "inputs=[...] (data it reads) or outputs=[...] (data it writes)."
                )
            unknown = placeholders.unknown_references(text, placeholders.PARAMETER, param_names)
            for param in unknown:
                problems.append(
                    f"{label}: parameter {param!r} is used but not defined"
                    f"{did_you_mean(param, param_names)}; create it with "
                    f"PipelineParameter(name={param!r}, default_value=...)."
                )
        problems += _setting_problems(node, label)
        problems += [
            f"{label}: port name {port[:40]!r}... is {len(port.encode()):,} bytes; names are "
            f"limited to {IDENTIFIER_MAX_BYTES} bytes."
            for port in ports
            if len(port.encode()) > IDENTIFIER_MAX_BYTES
        ]

    for data in graph.data:
        if data.pipeline_output_name:
            first = output_names.get(data.pipeline_output_name)
            if first is not None:
                problems.append(
                    f"pipeline_output_name {data.pipeline_output_name!r} is used by both "
                    f"{first!r} and {data.name!r}; these names must be unique in a pipeline."
                )
            output_names[data.pipeline_output_name] = data.name

    for parameter in graph.parameters:
        if len(parameter.name.encode()) > IDENTIFIER_MAX_BYTES:
            problems.append(
                f"Parameter name {parameter.name[:40]!r}... is {len(parameter.name.encode()):,} "
                f"bytes; names are limited to {IDENTIFIER_MAX_BYTES} bytes."
            )

    cycle = find_cycle(graph)
    if cycle:
        path = " -> ".join(repr(names[c]) for c in cycle)
        problems.append(
            f"The steps form a cycle: {path}; remove one of the data or run_after edges."
        )
    return problems


def _setting_problems(node: StepNode, label: str) -> list[str]:
    """A step's name, retries and timeout out of range (a graph may come over REST)."""
    problems = []
    if not node.name.strip() or len(node.name) > TEXT_MAX_CHARS:
        problems.append(
            f"Step name {node.name[:40]!r} must be 1 to {TEXT_MAX_CHARS} characters long, not "
            f"{len(node.name):,}."
        )
    if node.max_retries < 0:
        problems.append(f"{label}: max_retries must be 0 or more, not {node.max_retries}.")
    elif node.max_retries > MAX_RETRIES:
        problems.append(
            f"{label}: max_retries must be at most {MAX_RETRIES}, not {str(node.max_retries)[:20]}."
        )
    timeout = node.timeout_seconds
    if timeout is not None and not 0 < timeout <= TIMEOUT_MAX_SECONDS:
        problems.append(
            f"{label}: timeout_seconds must be positive, a finite number of seconds up to "
            f"{TIMEOUT_MAX_SECONDS:,} (366 days), not {str(timeout)[:20]}."
        )
    return problems
