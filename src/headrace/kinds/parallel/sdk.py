"""`ParallelRunConfig` and `ParallelRunStep` with SDK v1's signatures, defaults and checks.

Imports the SDK layer only (never the engine): the step is a CommandStep running
`python -m headrace.kinds`, and its settings travel as a `ParallelSpec` (spec.py).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from typing import Any

from headrace.errors import UserError
from headrace.kinds.parallel.spec import ParallelSpec, parse_size
from headrace.sdk.data import PipelineData
from headrace.sdk.dataset_outputs import OutputFileDatasetConfig
from headrace.sdk.datasets import (
    AbstractDataset,
    DatasetConsumptionConfig,
    FileDataset,
    TabularDataset,
)
from headrace.sdk.parameters import PipelineParameter
from headrace.sdk.runconfig import RunConfiguration
from headrace.sdk.steps import CommandStep

__all__ = ["ParallelRunConfig", "ParallelRunStep"]

_OUTPUT_ACTIONS = ("append_row", "summary_only")
_LOGGING_LEVELS = ("WARNING", "INFO", "DEBUG")
# SDK v1's rule for a ParallelRunStep's name.
_STEP_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def _int(value: Any, what: str, *, minimum: int, none_ok: bool = False, param_ok: bool = False):  # type: ignore[no-untyped-def]
    if value is None and none_ok:
        return None
    if param_ok and isinstance(value, PipelineParameter):
        _int(
            value.default_value,
            f"{what} (the default of parameter {value.name!r})",
            minimum=minimum,
        )
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
        return value
    raise UserError(
        f"ParallelRunConfig: {what} must be an int of at least {minimum}, not {value!r}."
    )


def _mini_batch_size(value: Any) -> Any:
    """None, a positive int (files), or text: a count ('5') or a size ('1MB', '10KB')."""
    if value is None:
        return None
    if isinstance(value, PipelineParameter):
        _mini_batch_size(value.default_value)
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and parse_size(value) is not None:
        return value.strip()
    raise UserError(
        f"ParallelRunConfig: mini_batch_size {value!r} does not parse; give a number of files "
        "for a FileDataset (e.g. 10) or a size for a TabularDataset (e.g. '1MB', '10KB', "
        "'1024')."
    )


class ParallelRunConfig:
    """How a ParallelRunStep runs (SDK v1 `azureml.pipeline.steps.ParallelRunConfig`)."""

    def __init__(
        self,
        environment: Any,
        entry_script: str,
        error_threshold: int,
        output_action: str,
        compute_target: Any,
        node_count: Any,
        process_count_per_node: Any = None,
        mini_batch_size: Any = None,
        source_directory: str | None = None,
        description: str | None = None,
        logging_level: str = "INFO",
        run_invocation_timeout: int = 60,
        run_max_try: int = 3,
        append_row_file_name: str | None = None,
        allowed_failed_count: int | None = None,
        allowed_failed_percent: float | None = None,
        partition_keys: list[str] | None = None,
        environment_variables: dict[str, str] | None = None,
    ) -> None:
        if not isinstance(entry_script, str) or not entry_script.strip():
            raise UserError(
                "ParallelRunConfig: entry_script must name the Python file with init() and "
                f"run(mini_batch), e.g. 'score.py', not {entry_script!r}."
            )
        self.environment = environment
        self.entry_script = entry_script
        self.error_threshold = _int(
            error_threshold, "error_threshold (-1 ignores failures)", minimum=-1
        )
        if output_action not in _OUTPUT_ACTIONS:
            raise UserError(
                f"ParallelRunConfig: output_action must be 'append_row' or 'summary_only', "
                f"not {output_action!r}."
            )
        self.output_action = output_action
        self.compute_target = compute_target
        self.node_count = _int(node_count, "node_count", minimum=1, param_ok=True)
        self.process_count_per_node = _int(
            process_count_per_node,
            "process_count_per_node",
            minimum=1,
            none_ok=True,
            param_ok=True,
        )
        self.mini_batch_size = _mini_batch_size(mini_batch_size)
        self.source_directory = source_directory
        self.description = description
        if logging_level not in _LOGGING_LEVELS:
            raise UserError(
                f"ParallelRunConfig: logging_level must be one of {', '.join(_LOGGING_LEVELS)}, "
                f"not {logging_level!r}."
            )
        self.logging_level = logging_level
        self.run_invocation_timeout = _int(
            run_invocation_timeout, "run_invocation_timeout", minimum=1
        )
        self.run_max_try = _int(run_max_try, "run_max_try", minimum=1)
        if append_row_file_name is not None:
            if output_action != "append_row":
                raise UserError(
                    "ParallelRunConfig: append_row_file_name is only used with "
                    "output_action='append_row'."
                )
            if (
                not isinstance(append_row_file_name, str)
                or not append_row_file_name.strip()
                or "/" in append_row_file_name
                or append_row_file_name in (".", "..")
            ):
                raise UserError(
                    "ParallelRunConfig: append_row_file_name must be a file name such as "
                    f"'results.txt', not {append_row_file_name!r}."
                )
        self.append_row_file_name = append_row_file_name
        self.allowed_failed_count = _int(
            allowed_failed_count, "allowed_failed_count", minimum=-1, none_ok=True
        )
        if allowed_failed_percent is not None and not (
            isinstance(allowed_failed_percent, (int, float))
            and not isinstance(allowed_failed_percent, bool)
            and (allowed_failed_percent == -1 or 0 <= allowed_failed_percent <= 100)
        ):
            raise UserError(
                "ParallelRunConfig: allowed_failed_percent must be a number from 0 to 100 "
                f"(or -1 to ignore), not {allowed_failed_percent!r}."
            )
        self.allowed_failed_percent = allowed_failed_percent
        if partition_keys is not None:
            if (
                not isinstance(partition_keys, (list, tuple))
                or not all(isinstance(k, str) and k.strip() for k in partition_keys)
                or not partition_keys
            ):
                raise UserError(
                    "ParallelRunConfig: partition_keys must be a list of column names, e.g. "
                    f"['store', 'brand'], not {partition_keys!r}."
                )
            if mini_batch_size is not None:
                raise UserError(
                    "ParallelRunConfig: give partition_keys or mini_batch_size, not both "
                    "(with partition_keys each partition is one mini-batch)."
                )
            partition_keys = list(partition_keys)
        self.partition_keys = partition_keys
        if environment_variables is not None and not isinstance(environment_variables, dict):
            raise UserError(
                "ParallelRunConfig: environment_variables must be a dict of name to text, not "
                f"{environment_variables!r}."
            )
        self.environment_variables = dict(environment_variables or {})


def _consumption(step: str, item: Any) -> tuple[DatasetConsumptionConfig, str]:
    """An input as (consumption, 'file' | 'tabular')."""
    if isinstance(item, AbstractDataset):
        item = item.as_named_input(item.name or "input")
    if not isinstance(item, DatasetConsumptionConfig):
        raise UserError(
            f"ParallelRunStep {step!r}: input {item!r} is not a dataset; give "
            "dataset.as_named_input('name') (optionally .as_mount() or .as_download())."
        )
    inner = item.dataset
    if isinstance(inner, PipelineParameter):
        inner = inner.default_value
    if isinstance(inner, TabularDataset):
        return item, "tabular"
    if isinstance(inner, (FileDataset, OutputFileDatasetConfig)):
        return item, "file"
    raise UserError(
        f"ParallelRunStep {step!r}: input {item.name!r} is a {type(inner).__name__}; give a "
        "FileDataset or a TabularDataset."
    )


def _partition_formats(
    consumed: list[tuple[DatasetConsumptionConfig, str]],
) -> tuple[tuple[str, str], ...]:
    """(input name, partition_format) of each input dataset made with one."""
    found = []
    for consumption, _ in consumed:
        inner = consumption.dataset
        if isinstance(inner, PipelineParameter):
            inner = inner.default_value
        text = (getattr(inner, "_definition", None) or {}).get("partition_format")
        if text:
            found.append((consumption.name, str(text)))
    return tuple(found)


def _format_keys(text: str | None) -> list[str]:
    if not text:
        return []
    from headrace.store.partitions import PartitionFormat

    return PartitionFormat(text).keys


class ParallelRunStep(CommandStep):
    """Runs `entry_script`'s `run(mini_batch)` over mini-batches of its inputs in parallel
    worker processes (see docs/user-guide.md, "Batch scoring with ParallelRunStep")."""

    def __init__(
        self,
        name: str,
        parallel_run_config: ParallelRunConfig,
        inputs: Sequence[Any],
        output: Any = None,
        side_inputs: Sequence[Any] | None = None,
        arguments: Sequence[Any] | None = None,
        allow_reuse: bool = True,
        *,
        max_retries: int = 0,
    ) -> None:
        """`max_retries` (beyond SDK v1, as on the other steps): attempts of the whole step
        after its process died or failed; each skips the mini-batches already committed."""
        if not isinstance(name, str) or not (3 <= len(name) <= 32) or not _STEP_NAME.match(name):
            raise UserError(
                f"ParallelRunStep name {name!r} is not valid: use 3 to 32 lowercase letters, "
                "digits and '-', starting with a letter and ending with a letter or digit "
                "(e.g. 'batch-score')."
            )
        config = parallel_run_config
        if not isinstance(config, ParallelRunConfig):
            raise UserError(
                f"ParallelRunStep {name!r}: parallel_run_config must be a ParallelRunConfig, "
                f"not {type(config).__name__}."
            )
        if not inputs:
            raise UserError(f"ParallelRunStep {name!r}: give at least one input dataset.")
        consumed = [_consumption(name, item) for item in inputs]
        kinds = {kind for _, kind in consumed}
        if len(kinds) > 1:
            listing = ", ".join(f"{c.name} ({kind})" for c, kind in consumed)
            raise UserError(
                f"ParallelRunStep {name!r}: inputs mix FileDatasets and TabularDatasets "
                f"({listing}); all inputs must be of one type."
            )
        kind = kinds.pop()
        formats = _partition_formats(consumed)
        if config.partition_keys and kind == "file":
            for consumption, _ in consumed:
                text = dict(formats).get(consumption.name)
                keys = _format_keys(text)
                missing = [k for k in config.partition_keys if k not in keys]
                if missing:
                    raise UserError(
                        f"ParallelRunStep {name!r}: partition_keys {', '.join(missing)} are "
                        f"not keys of input {consumption.name!r}'s partition_format "
                        f"({text or 'none'}); make the FileDataset with "
                        "Dataset.File.from_files(path, partition_format='.../{key}/...')."
                    )
        size = config.mini_batch_size
        default = size.default_value if isinstance(size, PipelineParameter) else size
        if kind == "file" and isinstance(default, str) and not default.isdigit():
            raise UserError(
                f"ParallelRunStep {name!r}: mini_batch_size {default!r} is a size, but the "
                "inputs are FileDatasets: give a number of files, e.g. 10."
            )
        outputs: list[Any] = []
        output_name = None
        if output is not None:
            if not isinstance(output, (PipelineData, OutputFileDatasetConfig)):
                raise UserError(
                    f"ParallelRunStep {name!r}: output must be a PipelineData or an "
                    f"OutputFileDatasetConfig, not {type(output).__name__}."
                )
            outputs.append(output)
            output_name = getattr(output, "output_name", None) or output.name
        elif config.output_action == "append_row":
            raise UserError(
                f"ParallelRunStep {name!r}: output_action 'append_row' needs an output "
                "(output=PipelineData(...)) to write its rows to."
            )
        params: dict[str, Any] = {}
        settings: dict[str, Any] = {}
        for field in ("mini_batch_size", "process_count_per_node", "node_count"):
            value = getattr(config, field)
            if isinstance(value, PipelineParameter):
                params[field] = value
                value = value.default_value
            settings[field] = value
        spec = ParallelSpec(
            entry_script=config.entry_script,
            inputs=tuple((c.name, k) for c, k in consumed),
            output=output_name,
            output_action=config.output_action,
            append_row_file_name=config.append_row_file_name or "parallel_run_step.txt",
            mini_batch_size=None
            if settings["mini_batch_size"] is None
            else str(settings["mini_batch_size"]),
            process_count_per_node=settings["process_count_per_node"],
            node_count=settings["node_count"],
            error_threshold=config.error_threshold,
            allowed_failed_count=config.allowed_failed_count,
            allowed_failed_percent=config.allowed_failed_percent,
            run_invocation_timeout=config.run_invocation_timeout,
            run_max_try=config.run_max_try,
            logging_level=config.logging_level,
            partition_keys=tuple(config.partition_keys or ()),
            partition_formats=formats,
            parameters=tuple(params),
        )
        runconfig = RunConfiguration()
        if config.environment is not None:
            runconfig.environment = config.environment
        runconfig.environment_variables = dict(config.environment_variables)
        # The step's own process only coordinates: on Ray it holds no CPU, which its workers
        # (node_count x process_count_per_node actors, kinds/parallel/raypool.py) ask for.
        runconfig.resources = {"cpu": 0}
        command: list[Any] = ["python -m headrace.kinds"]
        for arg in arguments or []:
            command.append(shlex.quote(arg) if isinstance(arg, str) else arg)
        self._spec = spec
        super().__init__(
            command,
            name=name,
            compute_target=config.compute_target,
            runconfig=runconfig,
            inputs=[c for c, _ in consumed] + list(side_inputs or []),
            outputs=outputs,
            params=params,
            source_directory=config.source_directory,
            allow_reuse=allow_reuse,
            max_retries=max_retries,
        )
        self.parallel_run_config = config
        self.side_inputs = list(side_inputs or [])
        self.parallel_arguments = list(arguments or [])

    def _kind_spec(self) -> tuple[str, str]:
        """(kind, spec JSON): what the builder puts in the step's environment."""
        return "parallel", self._spec.to_json()
