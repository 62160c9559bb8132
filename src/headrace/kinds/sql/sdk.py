"""SQL steps: `SqlStep` runs a `.sql` script with DuckDB; `AdlaStep` is its SDK v1 name.

```
trips = DataReference(datastore, "trips", "raw/trips.csv")
totals = PipelineData("totals", datastore=datastore)
step = SqlStep(
    "totals.sql", source_directory="sql", inputs=[trips], outputs=[totals],
    params={"min_amount": PipelineParameter("min_amount", 5)}, compute_target=sql_target,
)
```

The script's conventions (the step's process is headrace.kinds.sql.program):

- **Inputs** are views named after the step input: a DataReference's name, a PipelineData's
  name (or its `as_input(name)`), a DataPath parameter's name. Each reads CSV, Parquet or JSON
  files, chosen by extension, from a file or a folder of files of one kind. Inputs on an
  object-store datastore (S3, Azure Blob, GCS) are read in place, not downloaded: the step
  binds its mount-mode inputs in "direct" mode (`reads_object_storage`), so the runtime
  passes their URI and the datastore's handle, and the step process registers the
  datastore's fsspec filesystem with DuckDB. `as_download()` still downloads.
- **Parameters** (`params`, plain values or PipelineParameters of type int, float, bool or str)
  are DuckDB values, never SQL text: write `$name` in a statement, or `getvariable('name')`.
  A value containing quotes or SQL stays a value.
- **Outputs** (PipelineData) are written when the script ends: the table or view the script
  created with the output's name (`CREATE TABLE totals AS ...`), otherwise the result of the
  script's last statement when it is a SELECT. Each lands as `<name>.parquet` in the output
  folder, or `<name>.csv` with `output_formats={"totals": "csv"}`.
- **Memory**: `memory_limit` (for example "2GB") and `threads` come from the step, else from
  the SqlCompute target object given as `compute_target` (a target given by name only gives
  none: DuckDB's defaults apply). DuckDB spills to a temp folder inside the step's working
  folder, so data larger than `memory_limit` still aggregates and joins.

A SqlStep is a step of the `sql` kind (headrace.kinds): the graph records its settings, a
`SqlSpec` (spec.py), and it runs as a command step (`python -m headrace.kinds`) on any
target that runs processes; the `sql` target only carries DuckDB settings. Reuse covers the
script (the snapshot), parameters, inputs and these settings.

`AdlaStep` keeps SDK v1's signature; `degree_of_parallelism` becomes DuckDB's `threads`,
`priority` and `runtime_version` are accepted and ignored. Its script must be DuckDB SQL: a
U-SQL script has to be ported (C# expressions and EXTRACT/OUTPUT do not run here).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from headrace.errors import UserError
from headrace.kinds.sql.spec import OUTPUT_FORMATS, SqlSpec
from headrace.sdk.data import input_port_name
from headrace.sdk.parameters import PipelineParameter
from headrace.sdk.steps import CommandStep

__all__ = ["AdlaStep", "SqlStep"]

_IDENTIFIER = re.compile(r"^[A-Za-z_]\w*$")
_MEMORY = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)


def _parameter_type(name: str, value: Any) -> str:
    default = value.default_value if isinstance(value, PipelineParameter) else value
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, str):
        return "str"
    raise UserError(
        f"SqlStep parameter {name!r} is a {type(default).__name__}; pass an int, float, bool "
        "or str, or a PipelineParameter with such a default."
    )


def _memory_limit(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and _MEMORY.match(value):
        return value.replace(" ", "")
    raise UserError(f"memory_limit {value!r} is not a size; write it like '512MB' or '4GB'.")


def _threads(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise UserError(f"threads must be a positive int, not {value!r}.")


def _check_script(script_name: str, source_directory: str | None) -> None:
    """A script missing from an existing source folder is a mistake worth saying now."""
    if source_directory is None or not os.path.isdir(source_directory):
        return
    if os.path.isfile(os.path.join(source_directory, script_name)):
        return
    found = sorted(p.name for p in Path(source_directory).glob("*.sql"))
    listing = ", ".join(found) or "no .sql files"
    raise UserError(
        f"SqlStep: script {script_name!r} is not in source_directory {source_directory!r} "
        f"(it has: {listing}); pass the script's path relative to source_directory."
    )


class SqlStep(CommandStep):
    """Runs `script_name` (a DuckDB `.sql` file in `source_directory`) on bound inputs."""

    kind = "sql"
    reads_object_storage = True

    def __init__(
        self,
        script_name: str,
        name: str | None = None,
        inputs: Sequence[Any] | None = None,
        outputs: Sequence[Any] | None = None,
        params: dict[str, Any] | None = None,
        compute_target: Any = None,
        source_directory: str | None = None,
        allow_reuse: bool = True,
        version: str | None = None,
        hash_paths: list[str] | None = None,
        *,
        memory_limit: str | None = None,
        threads: int | None = None,
        output_formats: dict[str, str] | None = None,
        max_retries: int = 0,
        timeout_seconds: float | None = None,
    ) -> None:
        if not isinstance(script_name, str) or not script_name.strip():
            raise UserError("SqlStep needs script_name, the .sql file to run, e.g. 'totals.sql'.")
        _check_script(script_name, source_directory)
        inputs = list(inputs or [])
        outputs = list(outputs or [])
        params = dict(params or {})
        target_config: dict[str, Any] = dict(getattr(compute_target, "_config", None) or {})
        memory = _memory_limit(
            memory_limit if memory_limit is not None else target_config.get("memory_limit")
        )
        thread_count = _threads(threads if threads is not None else target_config.get("threads"))
        step_name = name or script_name
        tables: list[str] = []
        for item in inputs:
            table = input_port_name(item)
            if table is None:
                raise UserError(
                    f"SqlStep {step_name!r}: cannot bind input {item!r} as a table; give a "
                    "DataReference, PipelineData, or a named DataPath (DataPath(ds, path, "
                    "name='trips'))."
                )
            tables.append(table)
        formats = dict(output_formats or {})
        names: list[str] = []
        written: list[tuple[str, str]] = []
        for item in outputs:
            output = getattr(item, "output_name", None)
            if not isinstance(output, str):
                raise UserError(
                    f"SqlStep {step_name!r}: output {item!r} is not a PipelineData; outputs "
                    "are PipelineData objects."
                )
            fmt = formats.pop(output, "parquet")
            if fmt not in OUTPUT_FORMATS:
                raise UserError(
                    f"SqlStep {step_name!r}: output format {fmt!r} for {output!r} is not "
                    "supported; use 'parquet' or 'csv'."
                )
            names.append(output)
            written.append((output, fmt))
        if formats:
            raise UserError(
                f"SqlStep {step_name!r}: output_formats names {', '.join(sorted(formats))}, "
                f"which is not an output of this step (outputs: {', '.join(names) or 'none'})."
            )
        typed: list[tuple[str, str]] = []
        for key, value in params.items():
            if not isinstance(key, str) or not _IDENTIFIER.match(key):
                raise UserError(
                    f"SqlStep {step_name!r}: parameter name {key!r} cannot be used in SQL; use "
                    "letters, digits and underscores, starting with a letter."
                )
            typed.append((key, _parameter_type(key, value)))
        self._spec = SqlSpec(
            script=script_name,
            inputs=tuple(tables),
            outputs=tuple(written),
            params=tuple(typed),
            memory_limit=memory or None,
            threads=thread_count or None,
        )
        super().__init__(
            "python -m headrace.kinds",
            name=step_name,
            compute_target=compute_target,
            inputs=inputs,
            outputs=outputs,
            params=params,
            source_directory=source_directory,
            allow_reuse=allow_reuse,
            version=version,
            max_retries=max_retries,
            timeout_seconds=timeout_seconds,
        )
        self.script_name = script_name
        self.hash_paths = hash_paths
        self.memory_limit = memory
        self.threads = thread_count

    def _kind_spec(self) -> tuple[str, str]:
        """(kind, spec JSON): what the graph records as the step's kind and settings."""
        return "sql", self._spec.to_json()


class AdlaStep(SqlStep):
    """SDK v1's Azure Data Lake Analytics step, run as a DuckDB SqlStep (see module doc)."""

    def __init__(
        self,
        script_name: str,
        name: str | None = None,
        inputs: Sequence[Any] | None = None,
        outputs: Sequence[Any] | None = None,
        params: dict[str, Any] | None = None,
        degree_of_parallelism: int | None = None,
        priority: int | None = None,
        runtime_version: str | None = None,
        compute_target: Any = None,
        source_directory: str | None = None,
        allow_reuse: bool = True,
        version: str | None = None,
        hash_paths: list[str] | None = None,
    ) -> None:
        if degree_of_parallelism is not None and (
            not isinstance(degree_of_parallelism, int)
            or isinstance(degree_of_parallelism, bool)
            or degree_of_parallelism < 1
        ):
            raise UserError(
                f"degree_of_parallelism must be a positive int (DuckDB threads), not "
                f"{degree_of_parallelism!r}."
            )
        super().__init__(
            script_name,
            name=name,
            inputs=inputs,
            outputs=outputs,
            params=params,
            compute_target=compute_target,
            source_directory=source_directory,
            allow_reuse=allow_reuse,
            version=version,
            hash_paths=hash_paths,
            threads=degree_of_parallelism,
        )
        self.degree_of_parallelism = degree_of_parallelism
        self.priority = priority
        self.runtime_version = runtime_version
