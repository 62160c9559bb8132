"""`make demo`: run the compare-models pipeline on a fresh local workspace, then run it again
to show every step being reused, and print where to look.

    python examples/compare_models/run_demo.py [--workspace PATH] [--keep]
                                               [--test-size F] [--n-estimators N]

The workspace is `.demo/workspace` in the repository (or `--workspace`, or
`$HEADRACE_DEMO_WORKSPACE`). Each run starts it afresh unless `--keep` is given; with `--keep`
and a changed parameter you see only the steps that depend on it rerun.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DEFAULT_WORKSPACE = REPO / ".demo" / "workspace"
EXPERIMENT = "compare-models"
# Its own name, so the README's `Workspace.create("my-workspace")` and the demo never meet.
WORKSPACE_NAME = "compare-models"

sys.path.insert(0, str(HERE))

from headrace import (  # noqa: E402
    Experiment,
    HeadraceError,
    PipelineRun,
    StepRun,
    Workspace,
)


def shown(path: Path) -> str:
    """A path as the user would type it from the current folder."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def start_afresh(folder: Path) -> None:
    """Remove an earlier demo workspace (after stopping its agent, if one still runs)."""
    if not folder.exists():
        return
    if not (folder / "workspace.json").is_file():
        if any(folder.iterdir()):
            raise SystemExit(
                f"{folder} exists and is not a headrace workspace; refusing to delete it. "
                "Pass another --workspace."
            )
        return
    from headrace.engine.launcher import agent_alive

    lock = folder / "agent" / "agent.lock"
    if lock.is_file() and agent_alive(folder):
        try:
            os.kill(int(lock.read_text().strip()), signal.SIGTERM)
        except (OSError, ValueError):
            pass
        deadline = time.monotonic() + 10
        while agent_alive(folder) and time.monotonic() < deadline:
            time.sleep(0.05)
    shutil.rmtree(folder)


def step_named(run: PipelineRun, name: str) -> StepRun:
    return run.find_step_run(name)[0]


def submit_and_wait(ws: Workspace, parameters: dict[str, object]) -> tuple[PipelineRun, float]:
    from pipeline import build_pipeline

    started = time.perf_counter()
    run = Experiment(ws, EXPERIMENT).submit(
        build_pipeline(ws), pipeline_parameters=parameters or None
    )
    run.wait_for_completion(show_output=True)
    return run, time.perf_counter() - started


def banner(text: str) -> None:
    print(f"\n{'=' * 78}\n{text}\n{'=' * 78}", flush=True)


def headrace_command() -> str:
    """`headrace`, or the path of the one next to this interpreter when the virtual
    environment is not activated (as with `make demo`)."""
    beside = Path(sys.executable).parent / "headrace"
    if shutil.which("headrace") or not beside.is_file():
        return "headrace"
    return shown(beside)


def ran(ws: Workspace, step: StepRun) -> StepRun:
    """The step run that did the work: a reused step points to the run whose outputs (and
    metrics and files) it reused."""
    return StepRun.get(ws, step.reused_run_id) if step.reused_run_id else step


def where_to_look(ws: Workspace, run: PipelineRun, ws_arg: str) -> None:
    compare = ran(ws, step_named(run, "compare"))
    report = ran(ws, step_named(run, "report"))
    accuracy = compare.get_metrics()["best_accuracy"]
    best_model = compare.get_tags().get("best_model", "?")
    comparison = run.get_pipeline_output("comparison")
    comparison_folder = Path(comparison.datastore.root) / comparison.path_on_datastore
    report_file = Path(str(ws.path)).parent / "report.md"
    report.download_file("outputs/report.md", str(report_file))

    banner("Where to look")
    print(f"Best model:  {best_model}, accuracy {accuracy:.4f}")
    print(f"             {shown(comparison_folder / 'best_model.joblib')}")
    print(f"Comparison:  {shown(comparison_folder / 'comparison.json')}")
    print(f"Report:      {shown(report_file)} (run file outputs/report.md of step run {report.id})")
    cli = headrace_command()
    print("\nInspect the run with the CLI:")
    print(f"  {cli} run show {run.id} {ws_arg}")
    print(f"  {cli} run logs {run.id} {ws_arg}")
    print(f"  {cli} step show {compare.id} {ws_arg}")
    print("\nor in a browser (the graph, live logs, metric charts, run comparison):")
    print(f"  {cli} ui {ws_arg}    # then open http://127.0.0.1:8766/ui/runs/{run.id}")
    print("\nor from Python:")
    print(f"  ws = Workspace.get({WORKSPACE_NAME!r}, path={shown(Path(str(ws.path)))!r})")
    print(f"  run = PipelineRun.get(ws, {run.id!r})")
    print("  run.find_step_run('train_svm')[0].get_metrics()")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workspace",
        type=Path,
        default=Path(os.environ.get("HEADRACE_DEMO_WORKSPACE") or DEFAULT_WORKSPACE),
        help="workspace folder (default: .demo/workspace in the repository)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the workspace of an earlier demo run"
    )
    parser.add_argument("--test-size", type=float, help="PipelineParameter test_size (0.25)")
    parser.add_argument("--n-estimators", type=int, help="PipelineParameter n_estimators (100)")
    args = parser.parse_args(argv)
    try:
        import sklearn  # noqa: F401
    except ImportError:
        print("The demo needs scikit-learn: pip install 'headrace[demo]'", file=sys.stderr)
        return 1

    folder = args.workspace.absolute()
    parameters: dict[str, object] = {}
    if args.test_size is not None:
        parameters["test_size"] = args.test_size
    if args.n_estimators is not None:
        parameters["n_estimators"] = args.n_estimators
    ws_arg = f"--workspace {shown(folder)}"
    try:
        if not args.keep:
            start_afresh(folder)
        ws = Workspace.create(WORKSPACE_NAME, path=folder, exist_ok=True)

        banner("1. Submit: prepare -> train logreg, forest, svm in parallel -> compare -> report")
        first, first_seconds = submit_and_wait(ws, parameters)
        where_to_look(ws, first, ws_arg)

        banner("2. Submit the same pipeline again: nothing changed, so every step is reused")
        second, second_seconds = submit_and_wait(ws, parameters)
        steps = second.get_steps()
        reused = [s for s in steps if s.reused_run_id]
        print(
            f"\nRun {second.id}: {len(reused)} of {len(steps)} steps reused, "
            f"{second_seconds:.2f} s from submit to Finished "
            f"(the first submit took {first_seconds:.1f} s)."
        )
        for step in steps:
            if not step.reused_run_id:
                print(f"  {step.name} ran: {step.run_reason.get('summary')}")
        print(
            "\nChange a parameter and only the steps that depend on it run again, e.g.\n"
            f"  {shown(Path(sys.executable))} {shown(Path(__file__))} --keep --n-estimators 20"
        )
    except HeadraceError as exc:
        print(f"\nThe demo failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
