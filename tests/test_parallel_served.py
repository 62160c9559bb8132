"""ParallelRunStep under `headrace server`, its step confined (Landlock, a step user) as a
server runs steps: rows once and in order, and its progress read back through the server's
metrics API (the step logs through the server with its run token, not into the run folder,
which a confined step cannot write)."""

from __future__ import annotations

import os
import pwd
import textwrap
from pathlib import Path

from headrace import Dataset, Experiment, Pipeline, PipelineData, TokenAuthentication, Workspace
from headrace.compat.azureml.pipeline.steps import ParallelRunConfig, ParallelRunStep
from tests.conftest import stop_agents
from tests.servers import ServerProcess, make_token

SCORE = textwrap.dedent(
    """
    import os

    def init():
        pass

    def run(mini_batch):
        return [f"{os.path.basename(p)}: {open(p).read()}" for p in mini_batch]
    """
)


def test_a_confined_parallel_run_step_reports_progress_through_the_server(
    tmp_path: Path,
) -> None:
    root = tmp_path / "ws"
    Workspace.create("served", path=root, show_output=False).close()
    data = tmp_path / "upload" / "digits"
    data.mkdir(parents=True)
    for i in range(23):
        (data / f"img{i:03d}.txt").write_text(str(i))
    source = tmp_path / "src"
    source.mkdir()
    (source / "score.py").write_text(SCORE)
    token = make_token(root, "submitter")
    me = pwd.getpwuid(os.geteuid()).pw_name
    try:
        with ServerProcess(root, "--step-user", me) as server:
            ws = Workspace.get("served", url=server.url, auth=TokenAuthentication(token))
            store = ws.get_default_datastore()
            store.upload(str(tmp_path / "upload"), target_path="", show_progress=False)
            config = ParallelRunConfig(
                environment=None,
                entry_script="score.py",
                source_directory=str(source),
                error_threshold=0,
                output_action="append_row",
                compute_target="local",
                node_count=1,
                process_count_per_node=2,
                mini_batch_size=4,
            )
            step = ParallelRunStep(
                name="served-score",
                parallel_run_config=config,
                inputs=[Dataset.File.from_files((store, "digits/**")).as_named_input("d")],
                output=PipelineData("scores", datastore=store),
            )
            run = Experiment(ws, "served").submit(Pipeline(ws, [step]))
            status = run.wait_for_completion(show_output=False, raise_on_error=False)
            step_run = run.find_step_run("served-score")[0]
            assert status == "Finished", step_run.get_details().get("error")
            metrics = step_run.get_metrics()
            last = {k: v[-1] if isinstance(v, list) else v for k, v in metrics.items()}
            assert last["items_done"] == 23 and last["mini_batches_remaining"] == 0
            workers = metrics["workers"]
            assert sorted(workers["worker"]) == [1, 2], workers
            out = tmp_path / "out.txt"
            step_run.download_file("logs/summary.txt", str(out))
            assert "23 items (23 done, 0 failed)" in out.read_text()
            folder = Path(step_run.get_output_data("scores").download(tmp_path / "dl"))
            (found,) = folder.rglob("parallel_run_step.txt")
            assert found.read_text().splitlines() == [f"img{i:03d}.txt: {i}" for i in range(23)]
            ws.close()
    finally:
        stop_agents(root)
