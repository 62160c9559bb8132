"""The step process of a SqlStep: runs a `.sql` script with DuckDB.

`SqlStep` (sdk.py) makes a step of the `sql` kind whose settings are a `SqlSpec` (spec.py);
`python -m headrace.kinds` rebuilds the spec and calls `main(spec)` here, so the step
runtime, reuse, retries and logs treat it like any other step. Nothing variable travels in
the spec or through the shell:

- an input's path comes from `AZUREML_DATAREFERENCE_<NAME>` (set by the runtime) and is bound
  as a view `NAME` over its CSV, Parquet or JSON files (a file, or a folder of files of one
  format, chosen by extension);
- an input on an object-store datastore is not downloaded (the SqlStep binds it in "direct"
  mode): its `AZUREML_DATAREFERENCE_<NAME>` is a URI (`s3://bucket/raw`) and
  `HEADRACE_DATASTORE_<NAME>` the datastore's handle, from which this process opens the
  datastore's fsspec filesystem (credentials from the workspace's secrets file or the
  environment, never argv) and registers it with DuckDB, which reads the objects in place.
  DuckDB holds one filesystem per protocol, so one step reads at most one S3, one Azure
  and one GCS datastore this way;
- a parameter's value comes from `AML_PARAMETER_<NAME>`, is converted to its declared type and
  reaches the script as a DuckDB value, never as SQL text: `$NAME` inside a statement (a
  prepared-statement parameter) or `getvariable('NAME')` (a `SET VARIABLE`);
- an output `NAME` is written after the script ends: the table or view the script created
  under that name, otherwise the result of the script's last statement when it is a query.
  It lands as `<output folder>/NAME.parquet` (or `NAME.csv` when its format is csv). A final
  query that no output takes is printed to the step's stdout log.

DuckDB runs with `memory_limit` (when given) and a `temp_directory` inside the step's working
folder, so joins and aggregations larger than memory spill to disk. A failing statement ends
the process with exit code 1 and one readable message on stderr: DuckDB's own text, the
statement's number and its line in the script; a missing table lists the bound names.

This module runs in the step's process; headrace itself does not import it, so importing
headrace never imports duckdb. A step recorded before SqlStep became a kind package runs
`python -m headrace.engine.sqlrun --script ... --input ...`: that module parses its argv into
a `SqlSpec` (`spec_from_argv`) and calls `main` here.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from headrace.errors import HeadraceError
from headrace.kinds.sql.spec import SqlSpec
from headrace.store.objectstores import ObjectDatastoreFiles, open_object_datastore

__all__ = [
    "ObjectInput",
    "SqlScriptError",
    "legacy_main",
    "main",
    "parameter_value",
    "run_script",
    "spec_from_argv",
]

_FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
}
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}
_LINE = re.compile(r"\bLINE (\d+):")
_MISSING_TABLE = re.compile(r"Table with name (\S+) does not exist")


class SqlScriptError(Exception):
    """A problem with the script, its inputs or outputs, said in one message for the user."""


@dataclass(frozen=True)
class ObjectInput:
    """An input DuckDB reads where it is: a path on an object-store datastore."""

    files: ObjectDatastoreFiles
    path: str

    @property
    def uri(self) -> str:
        return self.files.uri(self.path)


@dataclass(frozen=True)
class _Statement:
    number: int
    line: int  # the script's line of the statement's first word (DuckDB's LINE 1)
    query: str
    is_query: bool
    parameters: frozenset[str]


def parameter_value(name: str, type_name: str, text: str) -> Any:
    """`text` (what the runtime exports) as a value of `type_name` (int, float, bool, str)."""
    if type_name == "str":
        return text
    try:
        if type_name == "int":
            return int(text.strip())
        if type_name == "float":
            return float(text.strip())
    except ValueError:
        raise SqlScriptError(
            f"Parameter {name!r} should be {type_name}, got {text!r}; pass a {type_name} value."
        ) from None
    if type_name == "bool":
        lowered = text.strip().lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        raise SqlScriptError(f"Parameter {name!r} should be a bool, got {text!r}.")
    raise SqlScriptError(f"Parameter {name!r} has unknown type {type_name!r}.")


def _is_data_file(name: str) -> bool:
    return not name.startswith((".", "_")) and not name.endswith(".crc")


def _data_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and _is_data_file(p.name))


def _object_files(name: str, source: ObjectInput) -> list[str]:
    """The URIs of the input's data files, listed on its datastore (nothing is copied)."""
    try:
        listing = source.files.list_files(source.path)
    except HeadraceError as exc:
        raise SqlScriptError(f"Input {name!r}: {exc}") from None
    found = [source.files.uri(p) for p, _size in listing if _is_data_file(PurePosixPath(p).name)]
    if not found:
        raise SqlScriptError(f"Input {name!r}: {source.uri} has no data files (or does not exist).")
    return found


def _bind_input(con: Any, name: str, source: Path | ObjectInput) -> str:
    if isinstance(source, ObjectInput):
        paths = _object_files(name, source)
        where = f" in place at {source.uri}"
    else:
        if not source.exists():
            raise SqlScriptError(f"Input {name!r}: {source} does not exist.")
        files = _data_files(source)
        if not files:
            raise SqlScriptError(f"Input {name!r}: the folder {source} has no data files.")
        paths = [str(f) for f in files]
        where = ""
    suffixes = [PurePosixPath(p).suffix for p in paths]
    formats = {_FORMATS.get(s.lower()) for s in suffixes}
    if None in formats or len(formats) != 1:
        seen = ", ".join(
            sorted({s or PurePosixPath(p).name for s, p in zip(suffixes, paths, strict=True)})
        )
        shown = source.uri if isinstance(source, ObjectInput) else source
        raise SqlScriptError(
            f"Input {name!r}: cannot tell how to read {shown} (file types: {seen}); an input "
            "must be CSV (.csv, .tsv), Parquet (.parquet, .pq) or JSON (.json, .jsonl) files "
            "of one kind."
        )
    fmt = formats.pop()
    import duckdb

    try:
        if fmt == "parquet":
            relation = con.read_parquet(paths, union_by_name=True)
        elif fmt == "csv":
            relation = con.read_csv(paths, union_by_name=True)
        else:
            relation = con.read_json(paths)
    except duckdb.Error as exc:
        # A file that is not what its name says, or an object store failing mid-read.
        raise SqlScriptError(f"Input {name!r}: {exc}") from None
    relation.create_view(name, replace=True)
    return f"{len(paths)} {fmt} file{'s' if len(paths) > 1 else ''}{where}"


def _register_filesystems(con: Any, inputs: dict[str, Path | ObjectInput]) -> None:
    """Hand DuckDB the filesystem of each object-store datastore the inputs read."""
    by_protocol: dict[str, ObjectDatastoreFiles] = {}
    for name, source in inputs.items():
        if not isinstance(source, ObjectInput):
            continue
        protocol = source.uri.partition("://")[0]
        known = by_protocol.setdefault(protocol, source.files)
        if known.name != source.files.name:
            raise SqlScriptError(
                f"Input {name!r} is on datastore {source.files.name!r}, another {protocol}:// "
                f"datastore than {known.name!r}; DuckDB reads one {protocol}:// datastore per "
                "step in place. Read this input as a download (as_download()) or split the step."
            )
    for files in by_protocol.values():
        try:
            con.register_filesystem(files.fs)
        except HeadraceError as exc:
            raise SqlScriptError(str(exc)) from None


def _statements(con: Any, script: str, script_name: str) -> list[_Statement]:
    import duckdb

    try:
        parsed = con.extract_statements(script)
    except duckdb.Error as exc:
        raise SqlScriptError(f"{script_name}: {exc}") from None
    found: list[_Statement] = []
    position = 0
    for number, statement in enumerate(parsed, start=1):
        start = script.find(statement.query, position)
        if start < 0:
            start = position
        position = start + len(statement.query)
        text = statement.query
        leading = len(text) - len(text.lstrip())
        line = script.count("\n", 0, start + leading) + 1
        found.append(
            _Statement(
                number,
                line,
                # Executed without leading blank lines, so DuckDB's LINE 1 is `line`.
                text.lstrip(),
                statement.type == duckdb.StatementType.SELECT,
                frozenset(statement.named_parameters),
            )
        )
    return found


def _explain(
    exc: Exception, statement: _Statement, script_name: str, known: list[str]
) -> SqlScriptError:
    message = str(exc)
    # DuckDB numbers lines within the statement; the user wants the script's line.
    offset = statement.line - 1
    message = _LINE.sub(lambda m: f"LINE {int(m.group(1)) + offset}:", message)
    where = f"{script_name}, statement {statement.number} (line {statement.line})"
    text = f"{where}: {message}"
    missing = _MISSING_TABLE.search(message)
    if missing:
        listing = ", ".join(known) or "none"
        text += (
            f"\nThe tables this step binds are: {listing}. An input's table is named after the "
            "step input (its DataReference name or PipelineData name)."
        )
    return SqlScriptError(text)


def _with_line(con: Any, exc: Exception, statement: _Statement, values: dict[str, Any]) -> Any:
    """The same error with DuckDB's LINE marker, which `con.sql` leaves out.

    `con.sql` binds a query without running it, so the error is a binding error, and binding
    the statement again with `execute` fails the same way before running anything.
    """
    import duckdb

    if _LINE.search(str(exc)) or not statement.is_query:
        return exc
    try:
        con.execute(statement.query, values or None)
    except duckdb.Error as again:
        return again
    return exc


def _relation_exists(con: Any, name: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = $n "
        "UNION ALL SELECT count(*) FROM duckdb_views() WHERE view_name = $n AND NOT internal",
        {"n": name},
    ).fetchall()
    return any(count for (count,) in row)


def _write(relation: Any, folder: Path, name: str, fmt: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.{fmt}"
    if fmt == "csv":
        relation.write_csv(str(target), header=True)
    else:
        relation.write_parquet(str(target))
    return target


def run_script(
    script_path: Path,
    *,
    inputs: dict[str, Path | ObjectInput],
    outputs: dict[str, tuple[Path, str]],
    parameters: dict[str, Any],
    memory_limit: str | None = None,
    threads: int | None = None,
    temp_directory: Path | None = None,
) -> dict[str, Path]:
    """Run the script with its inputs bound and write its outputs; returns the written files."""
    import duckdb

    try:
        script = script_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SqlScriptError(f"Cannot read the SQL script {script_path}: {exc}") from None
    config: dict[str, Any] = {}
    if memory_limit:
        config["memory_limit"] = memory_limit
    if threads:
        config["threads"] = threads
    if temp_directory is not None:
        temp_directory.mkdir(parents=True, exist_ok=True)
        config["temp_directory"] = str(temp_directory)
    try:
        con = duckdb.connect(":memory:", config=config)
    except duckdb.Error as exc:
        raise SqlScriptError(f"Cannot start DuckDB with {config}: {exc}") from None
    try:
        _register_filesystems(con, inputs)
        for name, source in inputs.items():
            print(f"headrace: table {name} reads {_bind_input(con, name, source)}")  # noqa: T201
        for name, value in parameters.items():
            con.execute(f'SET VARIABLE "{name}" = $value', {"value": value})
        statements = _statements(con, script, script_path.name)
        known = list(inputs)
        last: Any = None
        for statement in statements:
            unknown = sorted(statement.parameters - set(parameters))
            if unknown:
                listing = ", ".join(sorted(parameters)) or "none"
                raise SqlScriptError(
                    f"{script_path.name}, statement {statement.number} (line {statement.line}): "
                    f"${', $'.join(unknown)} is not a parameter of this step (its params: "
                    f"{listing}); add it to SqlStep(params={{...}})."
                )
            values = {k: parameters[k] for k in statement.parameters}
            try:
                if statement.is_query and statement is statements[-1]:
                    last = con.sql(statement.query, params=values or None)
                else:
                    con.execute(statement.query, values or None)
            except duckdb.Error as exc:
                raise _explain(
                    _with_line(con, exc, statement, values), statement, script_path.name, known
                ) from None
        written: dict[str, Path] = {}
        last_used = False
        for name, (folder, fmt) in outputs.items():
            if _relation_exists(con, name):
                relation = con.table(name)
            elif last is not None:
                relation, last_used = last, True
            else:
                raise SqlScriptError(
                    f"Output {name!r} was not written: {script_path.name} neither creates a "
                    f"table or view named {name} nor ends with a query; add "
                    f"'CREATE TABLE {name} AS SELECT ...' or end the script with a SELECT."
                )
            try:
                written[name] = _write(relation, folder, name, fmt)
            except duckdb.Error as exc:
                if relation is last:
                    # The last query runs only now: its errors are that statement's.
                    raise _explain(exc, statements[-1], script_path.name, known) from None
                raise SqlScriptError(f"Writing output {name!r}: {exc}") from None
        if last is not None and not last_used:
            # A final query no output takes is shown in the log (and so runs, errors and all).
            last.show()
        return written
    finally:
        con.close()
        if temp_directory is not None:
            shutil.rmtree(temp_directory, ignore_errors=True)


def _environment_value(prefix: str, name: str) -> str:
    key = f"{prefix}{name}"
    if key not in os.environ:
        raise SqlScriptError(f"{key} is not set; run this script as a SqlStep of a pipeline.")
    return os.environ[key]


def _input_source(name: str) -> Path | ObjectInput:
    """Where input `name` is: a path on this machine, or a URI on an object store whose
    datastore the runtime's handle opens."""
    location = _environment_value("AZUREML_DATAREFERENCE_", name)
    handle = os.environ.get(f"HEADRACE_DATASTORE_{name}")
    if not handle:
        return Path(location)
    try:
        files = open_object_datastore(handle, Path(_environment_value("HEADRACE_", "WORKSPACE")))
    except HeadraceError as exc:
        raise SqlScriptError(f"Input {name!r}: {exc}") from None
    prefix = files.url + "/"
    return ObjectInput(files, location[len(prefix) :] if location.startswith(prefix) else "")


def _redact(message: str, inputs: dict[str, Path | ObjectInput]) -> str:
    """The message without a datastore's secrets, and without the Python traceback DuckDB
    puts in an error raised by an fsspec filesystem (its last line says what happened)."""
    head, marker, trace = message.partition("Traceback (most recent call last):")
    if marker:
        lines = [line for line in trace.strip().splitlines() if line.strip()]
        message = f"{head.rstrip()} {lines[-1].strip() if lines else ''}".strip()
    for source in inputs.values():
        if isinstance(source, ObjectInput):
            message = source.files.redact(message)
    return message


def spec_from_argv(argv: list[str]) -> SqlSpec:
    """The spec of a step recorded in the argv form of before (`python -m
    headrace.engine.sqlrun --script x.sql --input NAME --output NAME:FORMAT --param
    NAME:TYPE --memory-limit 2GB --threads 4`)."""
    parser = argparse.ArgumentParser(prog="python -m headrace.engine.sqlrun")
    parser.add_argument("--script", required=True)
    parser.add_argument("--input", action="append", default=[])
    parser.add_argument("--output", action="append", default=[], help="NAME:FORMAT")
    parser.add_argument("--param", action="append", default=[], help="NAME:TYPE")
    parser.add_argument("--memory-limit")
    parser.add_argument("--threads", type=int)
    args = parser.parse_args(argv)

    def pairs(values: list[str], default: str) -> tuple[tuple[str, str], ...]:
        split = (value.partition(":") for value in values)
        return tuple((name, kind or default) for name, _, kind in split)

    return SqlSpec(
        script=args.script,
        inputs=tuple(args.input),
        outputs=pairs(args.output, "parquet"),
        params=pairs(args.param, "str"),
        memory_limit=args.memory_limit,
        threads=args.threads,
    )


def legacy_main(argv: list[str] | None = None) -> int:
    """`python -m headrace.engine.sqlrun ...`: a step stored in the argv form of before."""
    return main(spec_from_argv(sys.argv[1:] if argv is None else argv))


def main(spec: SqlSpec) -> int:
    """Run the spec's script in this step's process; 0, or 1 with one line on stderr."""
    try:
        import duckdb  # noqa: F401
    except ImportError:
        print(  # noqa: T201
            "SqlStep failed: DuckDB is not installed in the interpreter that runs steps "
            f"({sys.executable}); install it with: pip install 'headrace[sql]'.",
            file=sys.stderr,
        )
        return 1
    inputs: dict[str, Path | ObjectInput] = {}
    try:
        for name in spec.inputs:
            inputs[name] = _input_source(name)
        outputs = {
            name: (Path(_environment_value("AZUREML_DATAREFERENCE_", name)), fmt or "parquet")
            for name, fmt in spec.outputs
        }
        parameters = {
            name: parameter_value(name, kind, _environment_value("AML_PARAMETER_", name))
            for name, kind in spec.params
        }
        written = run_script(
            Path(spec.script),
            inputs=inputs,
            outputs=outputs,
            parameters=parameters,
            memory_limit=spec.memory_limit,
            threads=spec.threads,
            temp_directory=Path.cwd() / ".duckdb_tmp",
        )
    except SqlScriptError as exc:
        print(f"SqlStep failed: {_redact(str(exc), inputs)}", file=sys.stderr)  # noqa: T201
        return 1
    for name, path in written.items():
        print(f"headrace: wrote output {name} to {path.name}")  # noqa: T201
    return 0
