"""The step-kind contract (headrace.kinds), checked for every registered kind.

Every kind in `KINDS` has a case here (a test fails until a new kind gets one): its SDK class
builds a step whose graph records the kind and its settings, the settings are the kind's spec
as JSON and come back equal through the spec class and the graph's JSON, and the step runs,
outputs and all, on every executor: the local pool and a Ray cluster (one per module, on
127.0.0.1). A graph recorded before SqlStep and DataTransferStep became kind packages (their
old argv commands, schema version 1) still runs; importing the SDK imports no engine module.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from headrace import (
    ComputeTarget,
    DataReference,
    Dataset,
    DataTransferStep,
    Experiment,
    Pipeline,
    PipelineData,
    PublishedPipeline,
    RayCompute,
    SparkStep,
    SqlStep,
    Workspace,
)
from headrace.cli.main import app
from headrace.graph.model import Graph
from headrace.kinds import KINDS, load_spec, step_title
from headrace.kinds.parallel import ParallelRunConfig, ParallelRunStep
from tests.rayclusters import local_cluster
from tests.servers import LiveServer

CSV = "city,amount\nOslo,3\nLima,5\nOslo,4\n"
COUNT = """
import os, sys
from pyspark.sql import SparkSession
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
spark = SparkSession.builder.getOrCreate()
rows = spark.read.csv(args["--trips"], header=True).groupBy("city").count().collect()
os.makedirs(args["--out"], exist_ok=True)
with open(os.path.join(args["--out"], "cities.txt"), "w") as fh:
    fh.writelines(f"{r['city']} {r['count']}\\n" for r in sorted(rows))
"""
SCORE = """
import os
import re
def init():
    pass
def run(mini_batch):
    return [f"{os.path.basename(p)}={open(p).read().strip()}" for p in mini_batch]
"""


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(text))
    return folder


def _data(ws: Workspace, tmp_path: Path) -> None:
    """`raw/trips.csv` and `digits/img0..4.txt` on the default datastore."""
    folder = tmp_path / "upload"
    _write(folder / "raw", "trips.csv", CSV)
    for i in range(5):
        _write(folder / "digits", f"img{i}.txt", str(i))
    ws.get_default_datastore().upload(str(folder), overwrite=True, show_progress=False)


def _files(run: Any, step: str, port: str, tmp_path: Path) -> dict[str, bytes]:
    """The files of output `port` of `step`, downloaded as a user would, by name."""
    ref = run.find_step_run(step)[0].get_output_data(port)
    target = tmp_path / "downloaded" / step
    ref.download(str(target))
    return {p.name: p.read_bytes() for p in (target / ref.path_on_datastore).rglob("*")}


# -- one case per kind: a step of the kind on a target, and what it must have written -----------
@dataclass
class Case:
    step: Any
    port: str
    check: Callable[[dict[str, bytes]], None]


def _sql(ws: Workspace, tmp_path: Path, target: Any, tag: str) -> Case:
    src = _write(
        tmp_path / "sql",
        "totals.sql",
        "SELECT city, sum(amount) AS total FROM trips GROUP BY city ORDER BY city;",
    )
    trips = DataReference(ws.get_default_datastore(), "trips", "raw/trips.csv")
    totals = PipelineData(f"totals_{tag}")
    step = SqlStep(
        "totals.sql",
        name=f"sql-{tag}",
        source_directory=str(src),
        inputs=[trips],
        outputs=[totals],
        output_formats={f"totals_{tag}": "csv"},
        compute_target=target,
        memory_limit="256MB",
    )

    def check(files: dict[str, bytes]) -> None:
        assert files[f"totals_{tag}.csv"].decode().split() == ["city,total", "Lima,5", "Oslo,7"]

    return Case(step, f"totals_{tag}", check)


def _transfer(ws: Workspace, tmp_path: Path, target: Any, tag: str) -> Case:
    source = DataReference(ws.get_default_datastore(), "raw", "raw")
    copy = PipelineData(f"copy_{tag}")
    step = DataTransferStep(
        f"transfer-{tag}", source_data_reference=source, destination_data_reference=copy,
        compute_target=target,
    )  # fmt: skip

    def check(files: dict[str, bytes]) -> None:
        assert files == {"trips.csv": CSV.encode()}

    return Case(step, f"copy_{tag}", check)


def _parallel(ws: Workspace, tmp_path: Path, target: Any, tag: str) -> Case:
    src = _write(tmp_path / "score", "score.py", SCORE)
    digits = Dataset.File.from_files((ws.get_default_datastore(), "digits/*.txt"))
    scores = PipelineData(f"scores_{tag}")
    config = ParallelRunConfig(
        environment=None, entry_script="score.py", source_directory=str(src),
        error_threshold=0, output_action="append_row", compute_target=target, node_count=1,
        process_count_per_node=1, mini_batch_size=2,
    )  # fmt: skip
    step = ParallelRunStep(
        name=f"parallel-{tag}",
        parallel_run_config=config,
        inputs=[digits.as_named_input("digits").as_mount()],
        output=scores,
    )

    def check(files: dict[str, bytes]) -> None:
        lines = files["parallel_run_step.txt"].decode().split()
        assert lines == [f"img{i}.txt={i}" for i in range(5)]

    return Case(step, f"scores_{tag}", check)


def _spark(ws: Workspace, tmp_path: Path, target: Any, tag: str) -> Case:
    src = _write(tmp_path / "spark", "count.py", COUNT)
    trips = DataReference(ws.get_default_datastore(), "trips", "raw/trips.csv")
    counted = PipelineData(f"counted_{tag}")
    step = SparkStep(
        "count.py",
        name=f"spark-{tag}",
        source_directory=str(src),
        inputs=[trips],
        outputs=[counted],
        python_script_params=["--trips", trips, "--out", counted],
        compute_target=target,
        spark_conf={"spark.sql.shuffle.partitions": "2"},
    )

    def check(files: dict[str, bytes]) -> None:
        assert files == {"cities.txt": b"Lima 1\nOslo 2\n"}

    return Case(step, f"counted_{tag}", check)


CASES: dict[str, Callable[[Workspace, Path, Any, str], Case]] = {
    "spark": _spark,
    "sql": _sql,
    "transfer": _transfer,
    "parallel": _parallel,
}


def test_every_registered_kind_has_a_case() -> None:
    assert sorted(CASES) == sorted(KINDS), "add a case for each new kind to CASES"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_graph_records_the_kind_and_its_spec_round_trips(
    kind: str, ws: Workspace, tmp_path: Path
) -> None:
    _data(ws, tmp_path)
    case = CASES[kind](ws, tmp_path, None, "a")
    graph = Pipeline(ws, [case.step]).graph
    [node] = graph.nodes
    assert node.step_kind == kind and node.settings is not None
    assert step_title(node) == type(case.step).__name__
    assert node.command == "python -m headrace.kinds"
    spec = load_spec(kind, json.dumps(node.settings))
    assert type(spec).from_json(spec.to_json()) == spec
    assert json.loads(spec.to_json()) == node.settings
    again = Graph.from_json(graph.to_json())
    assert again == graph and again.node(node.id).settings == node.settings
    assert json.loads(graph.to_json())["schema_version"] == 2


# -- every kind on every executor ---------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    with local_cluster(num_cpus=2) as cluster:
        yield cluster


@pytest.mark.slow  # SparkSteps start a driver JVM each (6 s on two idle cores)
@pytest.mark.timeout(600)
def test_every_kind_runs_on_every_executor(ws: Workspace, tmp_path: Path, ray_cluster: Any) -> None:
    """One pipeline: a step of each kind on the local pool and one on the Ray cluster."""
    _data(ws, tmp_path)
    address = ray_cluster.address
    targets = {
        "local": "local",
        "ray": ComputeTarget.attach(ws, "ray", RayCompute.attach_configuration(address=address)),
    }
    cases = {
        (kind, executor): CASES[kind](ws, tmp_path / executor, target, executor)
        for kind in sorted(KINDS)
        for executor, target in targets.items()
    }
    run = Experiment(ws, "kinds").submit(Pipeline(ws, [c.step for c in cases.values()]))
    run.wait_for_completion(show_output=False, raise_on_error=False)
    shown_steps: dict[str, tuple[str, dict[str, Any]]] = {}
    for (kind, executor), case in cases.items():
        [step_run] = run.find_step_run(case.step.name)
        assert step_run.get_status() == "Finished", (kind, executor, step_run.get_details())
        case.check(_files(run, case.step.name, case.port, tmp_path / "out" / executor))
        if executor != "local":
            continue
        # What a user sees of the step: its type and settings, not `python -m headrace.kinds`.
        title = type(case.step).__name__
        shown = CliRunner().invoke(app, ["step", "show", step_run.id, "-w", ws.path])
        assert shown.exit_code == 0, shown.output
        assert re.search(rf"Step type\s+{title}\b", shown.output), shown.output
        assert "python -m headrace.kinds" not in shown.output
        listed = CliRunner().invoke(app, ["step", "show", step_run.id, "-w", ws.path, "--json"])
        document = json.loads(listed.stdout)
        assert document["step_type"] == title
        assert document["settings"] == Pipeline(ws, [case.step]).graph.nodes[0].settings
        shown_steps[title] = (step_run.id, document["settings"])
    # The portal: the step page has a section named after the kind listing its settings; the
    # run page's graph data names each step's type.
    with LiveServer(Path(ws.path), auth=False) as portal:
        for title, (step_run_id, settings) in shown_steps.items():
            page = httpx.get(f"{portal.url}/ui/steps/{step_run_id}").text
            assert f"<h2>{title}</h2>" in page
            section = page.split('id="step-settings"')[1].split("</dl>")[0]
            for key, value in settings.items():
                if value not in (None, [], {}):
                    assert f"<dt>{key}</dt>" in section, (title, key, section)
        graph = httpx.get(f"{portal.url}/ui/runs/{run.id}").text
        types = sorted(set(re.findall(r'"type": ?"(\w+Step)"', html.unescape(graph))))
        assert types == sorted(shown_steps), types


# -- what was stored before the move ------------------------------------------------------------
def _old_form(graph: dict[str, Any]) -> dict[str, Any]:
    """The graph as headrace recorded it before SqlStep and DataTransferStep were kind
    packages: schema version 1, their settings spelled as the argv of their programs."""
    commands = {
        "sql": (
            "python -m headrace.engine.sqlrun --script totals.sql --input trips "
            "--output totals_old:csv --memory-limit 256MB"
        ),
        "transfer": (
            "python -m headrace.engine.transferrun --source raw --output copy_old --parallelism 8"
        ),
    }
    nodes = []
    for node in graph["nodes"]:
        old = {k: v for k, v in node.items() if k not in ("step_kind", "settings")}
        old["command"] = commands[node["step_kind"]]
        nodes.append(old)
    return {**graph, "nodes": nodes, "schema_version": 1}


def test_a_published_pipeline_stored_in_the_old_argv_form_still_runs(
    ws: Workspace, tmp_path: Path
) -> None:
    _data(ws, tmp_path)
    sql, transfer = _sql(ws, tmp_path, None, "old"), _transfer(ws, tmp_path, None, "old")
    published = Pipeline(ws, [sql.step, transfer.step]).publish("kinds-today")
    shown = CliRunner().invoke(app, ["pipeline", "show", "kinds-today", "-w", ws.path, "--json"])
    steps = {s["name"]: s for s in json.loads(shown.stdout)["steps"]}
    assert steps["sql-old"]["type"] == "SqlStep"
    assert steps["sql-old"]["settings"]["outputs"] == [["totals_old", "csv"]]
    assert steps["transfer-old"]["type"] == "DataTransferStep"
    table = CliRunner().invoke(app, ["pipeline", "show", "kinds-today", "-w", ws.path]).output
    assert "SqlStep" in table and "script=totals.sql" in table, table
    meta = ws.backend.meta  # type: ignore[attr-defined]
    graph = meta.get_graph(ws.backend.get_published_pipeline(published.id).graph_id)
    assert {n["step_kind"] for n in graph["nodes"]} == {"sql", "transfer"}
    stored = meta.create_published_pipeline(
        name="kinds-before",
        description=None,
        version=None,
        graph=_old_form(graph),
        continue_on_step_failure=False,
    )
    run = PublishedPipeline.get(ws, stored.id).submit(ws, "kinds-before")
    run.wait_for_completion(show_output=False, raise_on_error=False)
    for case in (sql, transfer):
        [step_run] = run.find_step_run(case.step.name)
        assert step_run.get_status() == "Finished", step_run.get_details()
        shown = CliRunner().invoke(app, ["step", "show", step_run.id, "-w", ws.path, "--json"])
        assert "python -m headrace.engine." in " ".join(json.loads(shown.stdout)["command"])
        case.check(_files(run, case.step.name, case.port, tmp_path / "old"))


def test_a_version_1_graph_of_a_kind_step_reads_as_its_kind() -> None:
    spec = json.dumps({"script": "a.sql", "inputs": ["t"], "outputs": [], "params": []})
    raw = {
        "schema_version": 1,
        "nodes": [
            {
                "id": "s1",
                "name": "sql",
                "kind": "command",
                "source_directory": "/tmp",
                "command": "python -m headrace.kinds",
                "environment_variables": [
                    ["HEADRACE_STEP_KIND", "sql"],
                    ["HEADRACE_STEP_SPEC", spec],
                    ["MINE", "1"],
                ],
            }
        ],
    }
    [node] = Graph.from_dict(raw).nodes
    assert (node.step_kind, node.settings) == ("sql", json.loads(spec))
    assert node.environment_variables == (("MINE", "1"),)
    with pytest.raises(ValueError, match="'step_kind' and 'settings' are given together"):
        Graph.from_dict({"nodes": [{**raw["nodes"][0], "step_kind": "sql"}]})


def test_importing_the_sdk_and_a_kinds_spec_imports_no_engine() -> None:
    code = textwrap.dedent(
        """
        import importlib, pkgutil, sys
        import headrace.sdk, headrace.kinds
        for found in pkgutil.iter_modules(headrace.sdk.__path__):
            importlib.import_module("headrace.sdk." + found.name)
        for kind, entry in headrace.kinds.KINDS.items():
            importlib.import_module(entry.sdk.partition(":")[0])
            importlib.import_module(entry.spec.partition(":")[0])
        print(sorted(m for m in sys.modules if m.startswith(("headrace.engine", "headrace.backend"))))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")},
    )  # fmt: skip
    assert done.stdout.strip() == "[]", done.stdout
