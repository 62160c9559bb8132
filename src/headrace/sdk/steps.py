"""Steps: `PythonScriptStep` and `CommandStep`, with their full SDK v1 signatures.

A step checks the types of its arguments (a UserError naming the argument, at once) and
records them; `Pipeline` turns steps into the pure-data graph and reports every problem of
the definition at once. Extensions beyond SDK v1: `max_retries`, `timeout_seconds` and
`resources` (what one attempt asks of a node: `{"cpu": 2, "gpu": 1, "memory": "4GB",
"<custom Ray resource>": 1}`; a Ray target schedules by it, see headrace.sdk.ray).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from headrace.errors import UserError
from headrace.graph import placeholders
from headrace.sdk.checks import (
    check_bool,
    check_dict,
    check_folder,
    check_list,
    check_retries,
    check_seconds,
    check_text,
)
from headrace.sdk.data import PipelineData
from headrace.sdk.dataset_outputs import OutputFileDatasetConfig
from headrace.sdk.datasets import DatasetConsumptionConfig
from headrace.sdk.parameters import PipelineParameter, referenced_parameters
from headrace.sdk.runconfig import RunConfiguration, ScriptRunConfig

__all__ = ["CommandStep", "PipelineStep", "PythonScriptStep", "formatted_parameters"]


def formatted_parameters(values: Sequence[Any]) -> dict[str, PipelineParameter]:
    """The parameters formatted into these texts (`f"--lr={lr}"`), by name, as they are now.

    Taken when the step is made, so a later PipelineParameter with the same name (another
    pipeline, a re-run notebook cell) cannot change which one this step's text means.
    """
    registry = referenced_parameters()
    found: dict[str, PipelineParameter] = {}
    for value in values:
        if not isinstance(value, str):
            continue
        for kind, word, _braced in placeholders.references(value):
            if kind != placeholders.PARAMETER:
                continue
            for name in [word] + [n for n in registry if word.startswith(n)]:
                if name in registry:
                    found.setdefault(name, registry[name])
                    break
    return found


def _target_name(target: Any) -> str | None:
    """A compute target given as an object, a name, or a (name, type) tuple."""
    if target is None:
        return None
    if isinstance(target, str):
        return target
    if isinstance(target, tuple) and target and isinstance(target[0], str):
        return target[0]
    name = getattr(target, "name", None)
    if isinstance(name, str):
        return name
    raise UserError(
        f"compute_target must be a compute target, its name, or None, not {target!r} "
        f"({type(target).__name__})."
    )


class PipelineStep:
    """What every step has: a name, data in and out, arguments, where and how it runs."""

    kind = "step"
    # True for a step whose process reads object storage itself (SqlStep): its mount-mode
    # inputs on an object-store datastore are given as URIs, not downloaded.
    reads_object_storage = False

    def __init__(
        self,
        name: str,
        inputs: Sequence[Any] | None = None,
        outputs: Sequence[Any] | None = None,
        arguments: Sequence[Any] | None = None,
        *,
        compute_target: Any = None,
        source_directory: str | None = None,
        allow_reuse: bool = True,
        version: str | None = None,
        params: dict[str, Any] | None = None,
        runconfig: RunConfiguration | None = None,
        max_retries: int = 0,
        timeout_seconds: float | None = None,
        resources: dict[str, Any] | None = None,
    ) -> None:
        self.name = check_text(name, "The step's name")
        self.inputs = check_list(inputs, f"Step {name!r}: inputs")
        self.outputs = check_list(outputs, f"Step {name!r}: outputs")
        self.arguments = check_list(arguments, f"Step {name!r}: arguments")
        self.compute_target = _target_name(compute_target)
        self.source_directory = check_folder(source_directory, f"Step {name!r}: source_directory")
        self.allow_reuse = check_bool(allow_reuse, f"Step {name!r}: allow_reuse")
        self.version = check_text(version, f"Step {name!r}: version", optional=True)
        self.params = check_dict(params, f"Step {name!r}: params", "a dict of name to value")
        self.runconfig = runconfig
        self.max_retries = check_retries(max_retries, f"Step {name!r}: max_retries")
        self.timeout_seconds = check_seconds(timeout_seconds, f"Step {name!r}: timeout_seconds")
        self.resources = (
            check_dict(resources, f"Step {name!r}: resources", "a dict like {'cpu': 2}")
            if resources is not None
            else None
        )
        self._predecessors: list[PipelineStep] = []
        self._id = uuid.uuid4().hex[:8]
        texts = [*self.arguments, *self.params.values()]
        command = getattr(self, "command", None)
        texts += list(command) if isinstance(command, (list, tuple)) else [command]
        self._formatted_parameters = formatted_parameters(texts)
        self._adopt_dataset_arguments()
        for output in self.outputs:
            if isinstance(output, PipelineData) and output._producer is None:
                output._producer = self
            elif isinstance(output, OutputFileDatasetConfig) and output._origin._producer is None:
                output._origin._producer = self

    def _adopt_dataset_arguments(self) -> None:
        """As in SDK v1, an OutputFileDatasetConfig in the arguments is an output of this
        step, and a DatasetConsumptionConfig (`dataset.as_named_input('x')`,
        `output.as_input()`) an input, without being listed in outputs/inputs."""
        texts = [*self.arguments, *self.params.values()]
        named = {getattr(i, "name", None) for i in self.inputs}
        for value in texts:
            if isinstance(value, OutputFileDatasetConfig):
                if not any(
                    isinstance(o, OutputFileDatasetConfig) and o._origin is value._origin
                    for o in self.outputs
                ):
                    self.outputs.append(value)
            elif isinstance(value, DatasetConsumptionConfig) and value.name not in named:
                self.inputs.append(value)
                named.add(value.name)

    def run_after(self, step: PipelineStep) -> None:
        """Run this step after `step`, even without data between them."""
        if step not in self._predecessors:
            self._predecessors.append(step)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class PythonScriptStep(PipelineStep):
    """Runs `python <script_name> <arguments>` in a snapshot of `source_directory`."""

    kind = "python_script"

    def __init__(
        self,
        script_name: str,
        name: str | None = None,
        arguments: Sequence[Any] | None = None,
        compute_target: Any = None,
        runconfig: RunConfiguration | None = None,
        runconfig_pipeline_params: dict[str, Any] | None = None,
        inputs: Sequence[Any] | None = None,
        outputs: Sequence[Any] | None = None,
        params: dict[str, Any] | None = None,
        source_directory: str | None = None,
        allow_reuse: bool = True,
        version: str | None = None,
        hash_paths: list[str] | None = None,
        *,
        target: Any = None,
        max_retries: int = 0,
        timeout_seconds: float | None = None,
        resources: dict[str, Any] | None = None,
    ) -> None:
        # The seed document passes `target=`; accept it as the alias it was meant to be.
        if compute_target is None and target is not None:
            compute_target = target
        check_text(
            script_name, "PythonScriptStep: script_name (the script to run, e.g. 'train.py')"
        )
        outputs = check_list(outputs, f"Step {name or script_name!r}: outputs")
        output_names = {
            getattr(o, "output_name", None) or getattr(o, "name", None) for o in outputs
        }
        renamed: list[Any] = []
        for item in check_list(inputs, f"Step {name or script_name!r}: inputs"):
            if isinstance(item, PipelineData) and item.name in output_names:
                # SDK v1 renames an input named like an output of the same step.
                renamed.append(item.as_input(f"INPUT_{item.name}"))
            else:
                renamed.append(item)
        super().__init__(
            name or script_name,
            renamed,
            outputs,
            arguments,
            compute_target=compute_target,
            source_directory=source_directory,
            allow_reuse=allow_reuse,
            version=version,
            params=params,
            runconfig=runconfig,
            max_retries=max_retries,
            timeout_seconds=timeout_seconds,
            resources=resources,
        )
        self.script_name = script_name
        self.runconfig_pipeline_params = check_dict(
            runconfig_pipeline_params, f"Step {self.name!r}: runconfig_pipeline_params"
        )
        self.hash_paths = hash_paths


class CommandStep(PipelineStep):
    """Runs a shell command in a snapshot of `source_directory`.

    `command` is a string, or a list mixing text, data and PipelineParameters (joined with
    spaces). `runconfig` may be a ScriptRunConfig carrying the command, folder and environment.
    """

    kind = "command"

    def __init__(
        self,
        command: str | Sequence[Any] | None = None,
        name: str | None = None,
        compute_target: Any = None,
        runconfig: RunConfiguration | ScriptRunConfig | None = None,
        runconfig_pipeline_params: dict[str, Any] | None = None,
        inputs: Sequence[Any] | None = None,
        outputs: Sequence[Any] | None = None,
        params: dict[str, Any] | None = None,
        source_directory: str | None = None,
        allow_reuse: bool = True,
        version: str | None = None,
        *,
        max_retries: int = 0,
        timeout_seconds: float | None = None,
        resources: dict[str, Any] | None = None,
    ) -> None:
        run_config: RunConfiguration | None
        if isinstance(runconfig, ScriptRunConfig):
            command = command if command is not None else runconfig.command
            source_directory = source_directory or runconfig.source_directory
            compute_target = compute_target or runconfig.compute_target
            run_config = runconfig.run_config
        else:
            run_config = runconfig
        if command is not None and not isinstance(command, (str, list, tuple)):
            raise UserError(
                "CommandStep: command must be text ('python train.py') or a list of text, data "
                f"and PipelineParameters, not {command!r} ({type(command).__name__})."
            )
        self.command = command
        inputs, outputs = _datasets_in_command(command, inputs, outputs)
        super().__init__(
            name or "command_step",
            inputs,
            outputs,
            None,
            compute_target=compute_target,
            source_directory=source_directory,
            allow_reuse=allow_reuse,
            version=version,
            params=params,
            runconfig=run_config,
            max_retries=max_retries,
            timeout_seconds=timeout_seconds,
            resources=resources,
        )
        self.runconfig_pipeline_params = check_dict(
            runconfig_pipeline_params, f"Step {self.name!r}: runconfig_pipeline_params"
        )


def _datasets_in_command(
    command: Any, inputs: Sequence[Any] | None, outputs: Sequence[Any] | None
) -> tuple[Sequence[Any] | None, Sequence[Any] | None]:
    """A CommandStep's inputs and outputs with the datasets written into its command list
    added, as SDK v1 took them: `command=['Rscript train.R --data', dataset.as_mount()]`
    needs no `inputs=[...]`. Other data (PipelineData, DataReference) must still be listed."""
    if not isinstance(command, (list, tuple)):
        return inputs, outputs
    found_in = [i for i in command if isinstance(i, DatasetConsumptionConfig)]
    found_out = [o for o in command if isinstance(o, OutputFileDatasetConfig)]
    listed_in, listed_out = list(inputs or []), list(outputs or [])
    listed_in += [i for i in found_in if not any(i is x for x in listed_in)]
    listed_out += [o for o in found_out if not any(o is x for x in listed_out)]
    return (listed_in or inputs), (listed_out or outputs)
