"""ParallelRunStep end to end: real agent, real worker processes, entry scripts written here
the way the SDK v1 batch-scoring notebooks write theirs."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from headrace import (
    Dataset,
    Experiment,
    Pipeline,
    PipelineData,
    PipelineParameter,
    Workspace,
)
from headrace.compat.azureml.pipeline.steps import ParallelRunConfig, ParallelRunStep
from headrace.errors import UserError

SCORE_FILES = textwrap.dedent(
    """
    import os
    from azureml_user.parallel_run import EntryScript

    def init():
        global logger
        logger = EntryScript().logger
        logger.info("init in %d", os.getpid())

    def run(mini_batch):
        logger.info("batch of %d", len(mini_batch))
        return [f"{os.path.basename(p)}: {open(p).read().strip()}" for p in mini_batch]
    """
)

SCORE_TABLE = textwrap.dedent(
    """
    def init():
        pass

    def run(mini_batch):
        mini_batch["double"] = mini_batch["value"] * 2
        return mini_batch[["id", "double"]]
    """
)


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(text))
    return folder


@pytest.fixture
def images(ws: Workspace, tmp_path: Path) -> Any:
    """A FileDataset of 23 files in two folders, on the default datastore."""
    data = tmp_path / "upload" / "digits"
    for i in range(23):
        folder = data / ("a" if i < 12 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"img{i:03d}.txt").write_text(str(i))
    store = ws.get_default_datastore()
    store.upload(str(tmp_path / "upload"), target_path="", overwrite=True, show_progress=False)
    return Dataset.File.from_files((store, "digits/**"))


def config(source: Path, script: str = "score.py", **changes: Any) -> ParallelRunConfig:
    settings: dict[str, Any] = dict(
        environment=None,
        entry_script=script,
        source_directory=str(source),
        error_threshold=10,
        output_action="append_row",
        compute_target="local",
        node_count=1,
        process_count_per_node=2,
        mini_batch_size=4,
        run_invocation_timeout=30,
    )
    settings.update(changes)
    return ParallelRunConfig(**settings)


def run_step(ws: Workspace, step: ParallelRunStep) -> Any:
    run = Experiment(ws, "batch").submit(Pipeline(ws, [step]))
    run.wait_for_completion(show_output=False, raise_on_error=False)
    return run


def output_lines(run: Any, step: str, output: str, tmp_path: Path, name: str) -> list[str]:
    step_run = run.find_step_run(step)[0]
    folder = Path(step_run.get_output_data(output).download(tmp_path / "dl", show_progress=False))
    found = list(folder.rglob(name))
    assert len(found) == 1, list(folder.rglob("*"))
    return found[0].read_text().splitlines()


def test_file_dataset_rows_come_back_once_in_input_order(
    ws: Workspace, images: Any, tmp_path: Path
) -> None:
    source = write(tmp_path / "src", "score.py", SCORE_FILES)
    out = PipelineData("scores", datastore=ws.get_default_datastore())
    step = ParallelRunStep(
        name="batch-score",
        parallel_run_config=config(source, append_row_file_name="digits.txt"),
        inputs=[images.as_named_input("digits").as_mount()],
        output=out,
    )
    run = run_step(ws, step)
    step_run = run.find_step_run("batch-score")[0]
    assert run.get_status() == "Finished", step_run.get_details().get("error")
    lines = output_lines(run, "batch-score", "scores", tmp_path, "digits.txt")
    assert lines == [f"img{i:03d}.txt: {i}" for i in range(23)]
    metrics = step_run.get_metrics()
    last = {k: v[-1] if isinstance(v, list) else v for k, v in metrics.items()}
    assert last["items_done"] == 23 and last["items_remaining"] == 0
    assert last["mini_batches_done"] == 6 and last["mini_batches_failed"] == 0
    names = step_run.get_file_names()
    assert "logs/summary.txt" in names, names
    workers = [n for n in names if n.startswith("logs/user/worker_")]
    # One log per worker that started: with 23 tiny items on a loaded machine, one worker may
    # finish them all while the other is still starting (it is then stopped, logless).
    assert workers and set(workers) <= {"logs/user/worker_1.txt", "logs/user/worker_2.txt"}, names


def test_tabular_dataset_mini_batches_by_size_are_data_frames(
    ws: Workspace, tmp_path: Path
) -> None:
    rows = "\n".join(f"{i},{i * 10}" for i in range(500))
    (tmp_path / "upload").mkdir()
    (tmp_path / "upload" / "values.csv").write_text("id,value\n" + rows + "\n")
    store = ws.get_default_datastore()
    store.upload(str(tmp_path / "upload"), target_path="tab", overwrite=True, show_progress=False)
    table = Dataset.Tabular.from_delimited_files((store, "tab/values.csv"))
    source = write(tmp_path / "src", "score.py", SCORE_TABLE)
    out = PipelineData("doubled", datastore=store)
    step = ParallelRunStep(
        name="double",
        parallel_run_config=config(source, mini_batch_size="2KB"),
        inputs=[table.as_named_input("values")],
        output=out,
    )
    run = run_step(ws, step)
    step_run = run.find_step_run("double")[0]
    assert run.get_status() == "Finished", step_run.get_details().get("error")
    lines = output_lines(run, "double", "doubled", tmp_path, "parallel_run_step.txt")
    assert lines == [f"{i} {i * 20}" for i in range(500)]
    batches = step_run.get_metrics()["mini_batches_done"]
    done = batches[-1] if isinstance(batches, list) else batches
    assert done > 1  # 500 rows of two int64 columns (8 KB) in 2 KB mini-batches


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"mini_batch_size": "ten"}, "mini_batch_size"),
        ({"mini_batch_size": 0}, "mini_batch_size"),
        ({"mini_batch_size": "1XB"}, "mini_batch_size"),
        ({"error_threshold": -2}, "error_threshold"),
        ({"output_action": "append"}, "output_action"),
        ({"run_max_try": 0}, "run_max_try"),
        ({"run_invocation_timeout": "60"}, "run_invocation_timeout"),
        ({"process_count_per_node": 0}, "process_count_per_node"),
        ({"node_count": 0}, "node_count"),
        ({"logging_level": "LOUD"}, "logging_level"),
        ({"allowed_failed_percent": 120}, "allowed_failed_percent"),
        (
            {"output_action": "summary_only", "append_row_file_name": "x.txt"},
            "append_row_file_name",
        ),
    ],
)
def test_bad_config_values_name_the_argument(
    tmp_path: Path, changes: dict[str, Any], named: str
) -> None:
    with pytest.raises(UserError, match=named):
        config(tmp_path, **changes)


def test_mini_batch_size_parses_counts_and_sizes(tmp_path: Path) -> None:
    assert config(tmp_path, mini_batch_size="5").mini_batch_size == "5"
    assert config(tmp_path, mini_batch_size="10KB").mini_batch_size == "10KB"
    assert config(tmp_path, mini_batch_size="1 mb").mini_batch_size == "1 mb"
    assert config(tmp_path, mini_batch_size=None).mini_batch_size is None
    parameter = PipelineParameter("batch_size_param", "5")
    assert config(tmp_path, mini_batch_size=parameter).mini_batch_size is parameter


@pytest.mark.parametrize(
    "name", ["Batch-Score", "ab", "1score", "score_files", "score-", "a" * 33, ""]
)
def test_step_names_follow_sdk_v1s_rule(
    ws: Workspace, images: Any, tmp_path: Path, name: str
) -> None:
    with pytest.raises(UserError, match="lowercase letters"):
        ParallelRunStep(
            name=name,
            parallel_run_config=config(tmp_path),
            inputs=[images.as_named_input("digits")],
            output=PipelineData("out"),
        )


def test_inputs_of_mixed_dataset_types_are_refused(
    ws: Workspace, images: Any, tmp_path: Path
) -> None:
    store = ws.get_default_datastore()
    table = Dataset.Tabular.from_delimited_files((store, "digits/a/img000.txt"))
    with pytest.raises(UserError, match="mix FileDatasets and TabularDatasets"):
        ParallelRunStep(
            name="mixed",
            parallel_run_config=config(tmp_path),
            inputs=[images.as_named_input("files"), table.as_named_input("rows")],
            output=PipelineData("out"),
        )
    with pytest.raises(UserError, match="is a size, but the inputs are FileDatasets"):
        ParallelRunStep(
            name="sized",
            parallel_run_config=config(tmp_path, mini_batch_size="1MB"),
            inputs=[images.as_named_input("files")],
            output=PipelineData("out"),
        )


# Scores each file by its text; some texts misbehave as their name says.
MISBEHAVE = textwrap.dedent(
    """
    import os, sys, time

    MARKS = sys.argv[sys.argv.index("--marks") + 1]

    def init():
        pass

    def run(mini_batch):
        rows = []
        for path in mini_batch:
            text = open(path).read().strip()
            name = os.path.basename(path)
            if text == "raise":
                raise ValueError(f"cannot score {name}")
            if text == "hang":
                time.sleep(600)
            if text == "die-once" and not os.path.exists(os.path.join(MARKS, name)):
                open(os.path.join(MARKS, name), "w").close()
                os._exit(9)
            if text == "drop":
                continue
            if text == "extra":
                rows.append("extra row")
            rows.append(f"{name}: {text}")
        return rows
    """
)


def file_dataset(ws: Workspace, tmp_path: Path, texts: list[str]) -> Any:
    data = tmp_path / "texts" / "items"
    data.mkdir(parents=True)
    for i, text in enumerate(texts):
        (data / f"item{i:03d}.txt").write_text(text)
    store = ws.get_default_datastore()
    store.upload(str(tmp_path / "texts"), target_path="", overwrite=True, show_progress=False)
    return Dataset.File.from_files((store, "items/*.txt"))


def misbehaving_step(
    ws: Workspace, tmp_path: Path, texts: list[str], **changes: Any
) -> tuple[Any, Any]:
    marks = tmp_path / "marks"
    marks.mkdir()
    source = write(tmp_path / "src", "score.py", MISBEHAVE)
    step = ParallelRunStep(
        name="score",
        parallel_run_config=config(source, **changes),
        inputs=[file_dataset(ws, tmp_path, texts).as_named_input("items")],
        output=PipelineData("scores", datastore=ws.get_default_datastore()),
        arguments=["--marks", str(marks)],
    )
    run = run_step(ws, step)
    return run, run.find_step_run("score")[0]


def step_file(step_run: Any, name: str, tmp_path: Path) -> str:
    target = tmp_path / "files" / name.replace("/", "_")
    step_run.download_file(name, str(target))
    return target.read_text()


def test_a_worker_killed_mid_batch_loses_nothing_and_duplicates_nothing(
    ws: Workspace, tmp_path: Path
) -> None:
    texts = [str(i) for i in range(20)]
    texts[5] = texts[14] = "die-once"
    run, step_run = misbehaving_step(ws, tmp_path, texts, error_threshold=0)
    assert run.get_status() == "Finished", step_run.get_details().get("error")
    lines = output_lines(run, "score", "scores", tmp_path, "parallel_run_step.txt")
    assert lines == [f"item{i:03d}.txt: {t}" for i, t in enumerate(texts)]
    assert sorted(p.name for p in (tmp_path / "marks").iterdir()) == ["item005.txt", "item014.txt"]


def test_a_worker_killed_with_many_short_mini_batches_queued_loses_and_repeats_none(
    ws: Workspace, tmp_path: Path
) -> None:
    """Mini-batches of a millisecond or less are sent many ahead to each worker (program.py,
    `depth`); those queued on a worker that dies go to the others, and each row is written
    once, in order."""
    texts = [str(i) for i in range(600)]
    texts[450] = "die-once"
    run, step_run = misbehaving_step(ws, tmp_path, texts, error_threshold=0, mini_batch_size=1)
    assert run.get_status() == "Finished", step_run.get_details().get("error")
    lines = output_lines(run, "score", "scores", tmp_path, "parallel_run_step.txt")
    assert lines == [f"item{i:03d}.txt: {t}" for i, t in enumerate(texts)]
    assert [p.name for p in (tmp_path / "marks").iterdir()] == ["item450.txt"]


def test_failures_over_error_threshold_fail_the_step_naming_items_and_errors(
    ws: Workspace, tmp_path: Path
) -> None:
    texts = [str(i) for i in range(20)]
    texts[2] = texts[9] = "raise"  # two mini-batches of 4: 8 failed items
    run, step_run = misbehaving_step(ws, tmp_path, texts, error_threshold=5, run_max_try=2)
    assert run.get_status() == "Failed"
    message = step_run.get_details()["error"]["error"]["message"]
    assert "8 items failed, more than error_threshold 5" in message, message
    assert "item000.txt" in message and "cannot score item002.txt" in message, message
    failed = step_file(step_run, "logs/failed_items.txt", tmp_path)
    assert "item: " + "" in failed and "cannot score item009.txt" in failed, failed
    assert "2 failed attempts" in failed
    assert "failed" in step_file(step_run, "logs/summary.txt", tmp_path)


def test_failures_under_the_threshold_finish_without_their_rows(
    ws: Workspace, tmp_path: Path
) -> None:
    texts = [str(i) for i in range(10)]
    texts[6] = "raise"
    texts[1] = "drop"  # run() returns one row fewer: one failed item (SDK v1)
    run, step_run = misbehaving_step(ws, tmp_path, texts, error_threshold=5, run_max_try=1)
    assert run.get_status() == "Finished", step_run.get_details().get("error")
    lines = output_lines(run, "score", "scores", tmp_path, "parallel_run_step.txt")
    expected = [f"item{i:03d}.txt: {t}" for i, t in enumerate(texts) if i not in (1, 4, 5, 6, 7)]
    assert lines == expected
    metrics = {k: v[-1] if isinstance(v, list) else v for k, v in step_run.get_metrics().items()}
    assert metrics["items_failed"] == 5 and metrics["mini_batches_failed"] == 1


def test_a_hanging_batch_times_out_is_retried_then_counted_failed(
    ws: Workspace, tmp_path: Path
) -> None:
    texts = [str(i) for i in range(8)]
    texts[0] = "hang"
    run, step_run = misbehaving_step(
        ws, tmp_path, texts, error_threshold=-1, run_invocation_timeout=1, run_max_try=2
    )
    assert run.get_status() == "Finished", step_run.get_details().get("error")
    lines = output_lines(run, "score", "scores", tmp_path, "parallel_run_step.txt")
    assert lines == [f"item{i:03d}.txt: {i}" for i in range(4, 8)]
    failed = step_file(step_run, "logs/failed_items.txt", tmp_path)
    assert failed.count("run_invocation_timeout 1s") == 2, failed


def test_run_returning_more_rows_than_items_fails_the_batch(ws: Workspace, tmp_path: Path) -> None:
    texts = ["extra", "1", "2"]
    run, step_run = misbehaving_step(ws, tmp_path, texts, error_threshold=0, run_max_try=1)
    assert run.get_status() == "Failed"
    message = step_run.get_details()["error"]["error"]["message"]
    assert "run() returned 4 rows for a mini-batch of 3 items" in message, message


@pytest.mark.parametrize(
    ("script", "missing"),
    [
        ("def run(mini_batch):\n    return mini_batch\n", "no init()"),
        ("def init():\n    pass\n", "no run()"),
    ],
)
def test_an_entry_script_without_init_or_run_fails_saying_so(
    ws: Workspace, images: Any, tmp_path: Path, script: str, missing: str
) -> None:
    source = write(tmp_path / "src", "score.py", script)
    step = ParallelRunStep(
        name="incomplete",
        parallel_run_config=config(source),
        inputs=[images.as_named_input("digits")],
        output=PipelineData("out", datastore=ws.get_default_datastore()),
    )
    run = run_step(ws, step)
    assert run.get_status() == "Failed"
    message = run.find_step_run("incomplete")[0].get_details()["error"]["error"]["message"]
    assert f"'score.py' has {missing}" in message, message


# What the SDK v1 notebooks' entry scripts do: a model from the registry in init(), the
# EntryScript logger, and (summary_only) files of its own in the output folder.
SCORE_WITH_MODEL = textwrap.dedent(
    """
    import os
    from azureml.core import Model
    from azureml_user.parallel_run import EntryScript

    def init():
        global offset, out_dir
        with open(Model.get_model_path("offset-model")) as fh:
            offset = int(fh.read())
        out_dir = EntryScript().output_dir
        EntryScript().logger.info("model loaded: offset %d", offset)

    def run(mini_batch):
        rows = [f"{os.path.basename(p)} {int(open(p).read()) + offset}" for p in mini_batch]
        name = os.path.basename(mini_batch[0]) + ".scores"
        with open(os.path.join(out_dir, name), "w") as fh:
            fh.write("\\n".join(rows))
        return rows
    """
)


def test_parameters_summary_only_models_and_downloaded_inputs(
    ws: Workspace, images: Any, tmp_path: Path
) -> None:
    from headrace import Model

    (tmp_path / "offset.txt").write_text("1000")
    Model.register(ws, str(tmp_path / "offset.txt"), "offset-model")
    source = write(tmp_path / "src", "score.py", SCORE_WITH_MODEL)
    batch_size = PipelineParameter("batch_size_param", "5")
    processes = PipelineParameter("process_count_param", 2)
    step = ParallelRunStep(
        name="summary-score",
        parallel_run_config=config(
            source,
            output_action="summary_only",
            mini_batch_size=batch_size,
            process_count_per_node=processes,
            node_count=2,
        ),
        inputs=[images.as_named_input("digits").as_download()],
        output=PipelineData("scores", datastore=ws.get_default_datastore()),
    )
    pipeline = Pipeline(ws, [step])
    run = Experiment(ws, "batch").submit(
        pipeline, pipeline_parameters={"batch_size_param": "7", "process_count_param": 1}
    )
    run.wait_for_completion(show_output=False, raise_on_error=False)
    step_run = run.find_step_run("summary-score")[0]
    assert run.get_status() == "Finished", step_run.get_details().get("error")
    folder = Path(step_run.get_output_data("scores").download(tmp_path / "dl", show_progress=False))
    written = sorted(p.name for p in folder.rglob("*.scores"))
    # 23 files in mini-batches of 7 (the run's value, not the default 5): 4 files of scores.
    assert written == [
        "img000.txt.scores",
        "img007.txt.scores",
        "img014.txt.scores",
        "img021.txt.scores",
    ]
    assert not list(folder.rglob("parallel_run_step.txt"))  # summary_only: the script's own
    assert next(folder.rglob("img021.txt.scores")).read_text() == "img021.txt 1021\nimg022.txt 1022"
    summary = step_file(step_run, "logs/summary.txt", tmp_path)
    # node_count 2 x the run's 1 process per node, all on this machine.
    assert "4 mini-batches (4 done, 0 failed)" in summary, summary
    assert "node_count 2 on a local target: all 2 worker processes ran on this machine" in summary
    logs = [n for n in step_run.get_file_names() if n.startswith("logs/user/worker_")]
    assert len(logs) == 2
    assert any("model loaded: offset 1000" in step_file(step_run, n, tmp_path) for n in logs)


PER_STORE = textwrap.dedent(
    """
    def init():
        pass

    def run(mini_batch):
        stores = set(mini_batch["store"])
        assert len(stores) == 1, stores
        return [f"{s} {i} of {len(mini_batch)}" for s, i in zip(mini_batch["store"], mini_batch["id"])]
    """
)


def test_partition_keys_make_one_mini_batch_per_key(ws: Workspace, tmp_path: Path) -> None:
    stores = ["north", "south", "north", "east", "south", "north"]
    (tmp_path / "upload").mkdir()
    (tmp_path / "upload" / "sales.csv").write_text(
        "id,store\n" + "".join(f"{i},{s}\n" for i, s in enumerate(stores))
    )
    store = ws.get_default_datastore()
    store.upload(str(tmp_path / "upload"), target_path="sales", overwrite=True, show_progress=False)
    sales = Dataset.Tabular.from_delimited_files((store, "sales/sales.csv"))
    source = write(tmp_path / "src", "score.py", PER_STORE)
    step = ParallelRunStep(
        name="per-store",
        parallel_run_config=config(source, mini_batch_size=None, partition_keys=["store"]),
        inputs=[sales.as_named_input("sales")],
        output=PipelineData("counts", datastore=store),
    )
    run = run_step(ws, step)
    step_run = run.find_step_run("per-store")[0]
    assert run.get_status() == "Finished", step_run.get_details().get("error")
    lines = output_lines(run, "per-store", "counts", tmp_path, "parallel_run_step.txt")
    assert lines == [
        "north 0 of 3",
        "north 2 of 3",
        "north 5 of 3",
        "south 1 of 2",
        "south 4 of 2",
        "east 3 of 1",
    ]
    with pytest.raises(UserError, match="partition_keys or mini_batch_size, not both"):
        config(source, mini_batch_size="1MB", partition_keys=["store"])
    with pytest.raises(UserError, match="partition_keys must be a list of column names"):
        config(source, mini_batch_size=None, partition_keys="store")
    files = Dataset.File.from_files((store, "sales/sales.csv"))
    with pytest.raises(UserError, match=r"are not keys of input 'files'.s partition_format"):
        ParallelRunStep(
            name="per-file",
            parallel_run_config=config(source, mini_batch_size=None, partition_keys=["store"]),
            inputs=[files.as_named_input("files")],
            output=PipelineData("out"),
        )


def test_allowed_failed_count_counts_failed_mini_batches(ws: Workspace, tmp_path: Path) -> None:
    texts = [str(i) for i in range(8)]
    texts[3] = "raise"
    run, step_run = misbehaving_step(
        ws, tmp_path, texts, error_threshold=-1, allowed_failed_count=0, run_max_try=1
    )
    assert run.get_status() == "Failed"
    message = step_run.get_details()["error"]["error"]["message"]
    assert "1 mini-batches failed, more than allowed_failed_count 0" in message, message


def test_a_dataset_parameter_input_as_the_mnist_notebook_passes_it(
    ws: Workspace, images: Any, tmp_path: Path
) -> None:
    from headrace import DatasetConsumptionConfig

    source = write(tmp_path / "src", "score.py", SCORE_FILES)
    parameter = PipelineParameter(name="mnist_param", default_value=images)
    step = ParallelRunStep(
        name="mnist-score",
        parallel_run_config=config(source, mini_batch_size=PipelineParameter("batch", "10")),
        inputs=[DatasetConsumptionConfig("mnist", parameter)],  # direct: the files' folder
        output=PipelineData("scores", datastore=ws.get_default_datastore()),
    )
    run = run_step(ws, step)
    step_run = run.find_step_run("mnist-score")[0]
    assert run.get_status() == "Finished", step_run.get_details().get("error")
    lines = output_lines(run, "mnist-score", "scores", tmp_path, "parallel_run_step.txt")
    assert lines == [f"img{i:03d}.txt: {i}" for i in range(23)]


HELD = textwrap.dedent(
    """
    import os, sys, time
    LEDGER = sys.argv[sys.argv.index("--ledger") + 1]
    GO = sys.argv[sys.argv.index("--go") + 1]

    def init():
        pass

    def run(mini_batch):
        names = [os.path.basename(p) for p in mini_batch]
        while "img012.txt" in names and not os.path.exists(GO):
            time.sleep(0.02)
        with open(LEDGER, "a") as fh:
            fh.write("".join(n + "\\n" for n in names))
        return [f"{n}: {open(p).read()}" for n, p in zip(names, mini_batch)]
    """
)


def test_an_agent_killed_mid_step_redoes_no_mini_batch(
    ws: Workspace, images: Any, tmp_path: Path
) -> None:
    """The step's process outlives its agent and is adopted by the next one (see
    docs/architecture.md, "Adopting a dead agent's steps"): nothing is scored twice."""
    import os
    import signal
    import time

    from headrace.engine.launcher import agent_alive, ensure_agent

    ledger, go = tmp_path / "ledger.txt", tmp_path / "go"
    source = write(tmp_path / "src", "score.py", HELD)
    step = ParallelRunStep(
        name="held",
        parallel_run_config=config(source),
        inputs=[images.as_named_input("digits")],
        output=PipelineData("scores", datastore=ws.get_default_datastore()),
        arguments=["--ledger", str(ledger), "--go", str(go)],
    )
    run = Experiment(ws, "batch").submit(Pipeline(ws, [step]))
    root = Path(str(ws.path))
    deadline = time.monotonic() + 60
    while not (ledger.exists() and len(ledger.read_text().splitlines()) >= 8):
        assert time.monotonic() < deadline, "the step did not start scoring"
        time.sleep(0.02)
    os.kill(int((root / "agent" / "agent.lock").read_text()), signal.SIGKILL)
    while agent_alive(root):
        time.sleep(0.02)
    assert ensure_agent(root)
    go.touch()
    assert run.wait_for_completion(show_output=False, raise_on_error=False) == "Finished"
    scored = ledger.read_text().splitlines()
    assert sorted(scored) == [f"img{i:03d}.txt" for i in range(23)]  # each once
    lines = output_lines(run, "held", "scores", tmp_path, "parallel_run_step.txt")
    assert lines == [f"img{i:03d}.txt: {i}" for i in range(23)]
