"""The compare-models pipeline: prepare -> train three models in parallel -> compare -> report.

    prepare ──┬── train_logreg ──┐
              ├── train_forest ──┼── compare ── report
              └── train_svm ─────┘

Each step's code lives in its own folder (prepare/, train/, compare/, report/). A step's
folder is snapshotted and hashed for reuse, so editing report/report.py reruns only the
report; the three training steps share train/ because they run the same script.

Two PipelineParameters change what runs: `test_size` (the prepare step's split; everything
downstream reruns when it changes) and `n_estimators` (only the random forest, and the compare
and report steps after it, rerun when it changes).
"""

from __future__ import annotations

from pathlib import Path

from headrace import Pipeline, PipelineData, PipelineParameter, PythonScriptStep, Workspace

__all__ = ["MODELS", "STEP_NAMES", "build_pipeline"]

HERE = Path(__file__).resolve().parent
MODELS = ("logreg", "forest", "svm")
STEP_NAMES = ("prepare", *(f"train_{m}" for m in MODELS), "compare", "report")


def build_pipeline(ws: Workspace, *, compute_target: str | None = None) -> Pipeline:
    """The pipeline on workspace `ws`; steps run on `compute_target` (default: `local`)."""
    test_size = PipelineParameter("test_size", default_value=0.25)
    n_estimators = PipelineParameter("n_estimators", default_value=100)

    prepared = PipelineData("prepared", datastore=ws.get_default_datastore())
    prepare = PythonScriptStep(
        "prepare.py",
        name="prepare",
        # A parameter inside an f-string is substituted by headrace (SDK v1 would have passed
        # the text "PipelineParameter_Name:test_size_Default:0.25").
        arguments=[f"--test-size={test_size}", "--seed", 0, "--output", prepared],
        outputs=[prepared],
        compute_target=compute_target,
        source_directory=str(HERE / "prepare"),
    )

    models: dict[str, PipelineData] = {}
    trainers: list[PythonScriptStep] = []
    for name in MODELS:
        model = PipelineData(f"model_{name}")
        arguments: list[object] = ["--model", name, "--data", prepared, "--model-dir", model]
        if name == "forest":
            arguments += ["--n-estimators", n_estimators]
        train = PythonScriptStep(
            "train.py",
            name=f"train_{name}",
            arguments=arguments,
            inputs=[prepared],
            outputs=[model],
            compute_target=compute_target,
            source_directory=str(HERE / "train"),
        )
        models[name] = model
        trainers.append(train)

    comparison = PipelineData("comparison", pipeline_output_name="comparison")
    compare_arguments: list[object] = ["--data", prepared, "--output", comparison]
    for name, model in models.items():
        compare_arguments += ["--model", name, model]
    compare = PythonScriptStep(
        "compare.py",
        name="compare",
        arguments=compare_arguments,
        inputs=[prepared, *models.values()],
        outputs=[comparison],
        compute_target=compute_target,
        source_directory=str(HERE / "compare"),
    )

    report = PythonScriptStep(
        "report.py",
        name="report",
        arguments=["--comparison", comparison],
        inputs=[comparison],
        compute_target=compute_target,
        source_directory=str(HERE / "report"),
    )
    # The order comes from the data the steps pass; the nested list (the trainers, a parallel
    # group) only groups them for the reader. Passing just [report] would build the same
    # graph: the producers of a step's inputs are pulled in.
    return Pipeline(
        ws,
        steps=[prepare, trainers, compare, report],
        description="Compare three classifiers on the digits data",
    )
