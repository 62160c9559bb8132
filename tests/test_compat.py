"""The `headrace.compat.azureml` import tree: every module imports and exports what SDK v1 code
imports from it, and the seed document's flow runs end to end written the way the document
writes it, with only `azureml.` changed to `headrace.compat.azureml.` in the imports.
"""

from __future__ import annotations

import importlib
import os
import pickle
import pkgutil
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

import headrace
import headrace.compat.azureml

SEED_FLOW = Path(__file__).parent / "seed_flow"

# What the issue (item 12) and the seed document need from each module, at least.
REQUIRED: dict[str, set[str]] = {
    "core": {
        "ComputeTarget",
        "Datastore",
        "Environment",
        "Experiment",
        "Run",
        "RunConfiguration",
        "ScriptRunConfig",
        "Workspace",
    },
    "core.compute": {"AmlCompute", "ComputeTarget"},
    "core.compute_target": {"ComputeTargetException"},
    "core.runconfig": {
        "DEFAULT_CPU_IMAGE",
        "CondaDependencies",
        "DockerConfiguration",
        "RunConfiguration",
    },
    "core.conda_dependencies": {"CondaDependencies"},
    "core.environment": {"Environment"},
    "core.datastore": {"Datastore"},
    "core.experiment": {"Experiment"},
    "core.run": {"Run"},
    "core.workspace": {"Workspace"},
    "data.data_reference": {"DataReference"},
    "data.datapath": {"DataPath", "DataPathComputeBinding"},
    "pipeline.core": {
        "InputPortBinding",
        "Pipeline",
        "PipelineData",
        "PipelineEndpoint",
        "PipelineParameter",
        "PipelineRun",
        "PipelineStep",
        "PortDataReference",
        "PublishedPipeline",
        "StepRun",
        "StepSequence",
    },
    "pipeline.core.graph": {
        "InputPortBinding",
        "PipelineParameter",
        "PortDataReference",
        "PublishedPipeline",
    },
    "pipeline.core.pipeline_endpoint": {"PipelineEndpoint", "PipelineIdVersion"},
    "pipeline.core.pipeline": {"Pipeline"},
    "pipeline.core.run": {"PipelineRun", "StepRun"},
    "pipeline.steps": {"CommandStep", "PythonScriptStep"},
    "exceptions": {
        "ActivityFailedException",
        "AzureMLException",
        "ComputeTargetException",
        "UserErrorException",
        "WorkspaceException",
    },
}

# headrace's own names with no SDK v1 counterpart; every other public name must be reachable
# through the compat tree.
NATIVE_ONLY = {
    "ConfigError",
    "ConflictError",
    "DatasetFormatError",
    "DatasetNotFoundError",
    "DatasetPathError",
    "DatastorePathError",
    "HeadraceError",
    "LocalCompute",
    "MissingDependencyError",
    "NameConflictError",
    "NotAStepError",
    "NotFoundError",
    "Notification",  # beyond SDK v1: webhooks and mail when a run ends
    "NotificationError",
    "NotYetImplementedError",
    "OfflineRun",
    "ParameterError",
    "PipelineDisabledError",
    "PipelineValidationError",
    "RunNotFoundError",
    "RunTrigger",  # beyond SDK v1: a run's ending starts a published pipeline
    "RayCompute",  # AmlCompute runs on Ray through the workspace configuration
    "ScriptRun",
    "SparkCompute",  # DatabricksCompute is its SDK v1 name
    "SparkStep",  # DatabricksStep is its SDK v1 name
    "SqlCompute",  # AdlaCompute is its SDK v1 name
    "SqlStep",  # AdlaStep is its SDK v1 name
    "StoreError",
    "TransferCompute",  # DataFactoryCompute is its SDK v1 name
    "UserError",
    "WorkspaceExistsError",
    "WorkspaceNotFoundError",
}


def compat_modules() -> list[ModuleType]:
    root = headrace.compat.azureml
    found = [root]
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{root.__name__}."):
        found.append(importlib.import_module(info.name))
    return found


def isort_key(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 keeps `__all__` in: CONSTANTS, then Classes, then functions."""
    group = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return group, name


# -- (a) and (b): the import tree ------------------------------------------------------------
def test_required_modules_export_the_sdk_v1_names() -> None:
    for module_name, names in REQUIRED.items():
        module = importlib.import_module(f"headrace.compat.azureml.{module_name}")
        missing = names - set(module.__all__)
        assert not missing, f"{module_name} does not export {sorted(missing)}"


def test_every_module_has_a_docstring_and_every_exported_name_imports() -> None:
    modules = compat_modules()
    assert len(modules) >= len(REQUIRED)
    for module in modules:
        assert module.__doc__ and module.__doc__.strip(), f"{module.__name__} has no docstring"
        assert isinstance(module.__all__, list), module.__name__
        for name in module.__all__:
            # `from module import name`, as ported code does.
            namespace: dict[str, object] = {}
            exec(f"from {module.__name__} import {name}", namespace)
            assert namespace[name] is getattr(module, name)


def test_all_lists_are_sorted_and_without_duplicates() -> None:
    for module in compat_modules():
        names = list(module.__all__)
        assert names == sorted(names, key=isort_key), f"{module.__name__}.__all__ is not sorted"
        assert len(names) == len(set(names)), f"{module.__name__}.__all__ has duplicates"


def test_compat_names_are_the_headrace_objects_themselves() -> None:
    from headrace.compat.azureml import exceptions
    from headrace.compat.azureml.core.compute import AmlCompute
    from headrace.compat.azureml.pipeline.steps import PythonScriptStep

    assert AmlCompute is headrace.AmlCompute
    assert PythonScriptStep is headrace.PythonScriptStep
    assert exceptions.AzureMLException is headrace.HeadraceError
    assert exceptions.UserErrorException is headrace.UserError
    assert exceptions.WorkspaceException is headrace.WorkspaceNotFoundError
    assert exceptions.ComputeTargetException is headrace.ComputeTargetException


def test_every_sdk_v1_name_of_headrace_is_reachable_through_compat() -> None:
    exported = {id(getattr(m, n)) for m in compat_modules() for n in m.__all__}
    unreachable = [
        name
        for name in headrace.__all__
        if name not in NATIVE_ONLY and id(getattr(headrace, name)) not in exported
    ]
    assert not unreachable, f"not exported by any compat module: {unreachable}"


def test_schedule_names_import_from_both_sdk_v1_paths() -> None:
    from headrace.compat.azureml.pipeline.core import Schedule, ScheduleRecurrence, TimeZone
    from headrace.compat.azureml.pipeline.core.schedule import Schedule as Again
    from headrace.sdk.schedule import Schedule as Native

    assert Schedule is Again is Native
    assert ScheduleRecurrence("Minute", 15).frequency == "Minute"
    assert TimeZone.UTC.value == "UTC"


def test_unknown_names_are_plain_import_errors() -> None:
    import headrace.compat.azureml.pipeline.steps as steps
    from headrace.errors import NotYetImplementedError

    with pytest.raises(ImportError, match="cannot import name 'NoSuchStep'") as caught:
        exec("from headrace.compat.azureml.pipeline.steps import NoSuchStep", {})
    assert not isinstance(caught.value, NotYetImplementedError)
    assert not hasattr(steps, "NoSuchStep")


def test_workspace_exception_catches_a_missing_workspace() -> None:
    from headrace.compat.azureml.core import Workspace
    from headrace.compat.azureml.exceptions import AzureMLException, WorkspaceException

    with pytest.raises(WorkspaceException, match=r"Workspace\.create"):
        Workspace.get(name="no-such-ws", subscription_id="sub", resource_group="rg")
    with pytest.raises(AzureMLException):
        Workspace.get(name="no-such-ws")


# -- (c): the seed document's flow -----------------------------------------------------------
def make_20news(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    documents = {
        "sci.space": ["orbit launch orbit", "the moon orbit"],
        "rec.autos": ["engine wheel", "engine oil engine engine"],
    }
    path.write_bytes(pickle.dumps(documents))


def test_seed_document_flow_runs_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from headrace.compat.azureml.core import Datastore, Experiment, Workspace
    from headrace.compat.azureml.core.compute import AmlCompute, ComputeTarget
    from headrace.compat.azureml.data.data_reference import DataReference
    from headrace.compat.azureml.exceptions import ComputeTargetException
    from headrace.compat.azureml.pipeline.core import Pipeline, PipelineData
    from headrace.compat.azureml.pipeline.core.graph import PipelineParameter
    from headrace.compat.azureml.pipeline.steps import PythonScriptStep

    # The scripts of the three steps (the document leaves them to the reader).
    project_folder = str(tmp_path / "project")
    shutil.copytree(SEED_FLOW, project_folder, ignore=shutil.ignore_patterns("__pycache__"))
    make_20news(Path("data/20news.pkl"))  # the test runs in tmp_path (see conftest)

    # -- Vereisten: the workspace (under the test's private HEADRACE_HOME) -------------------
    ws = Workspace.create(
        name="seed-ws",
        subscription_id="<subscription-id>",
        resource_group="<resource-group>",
        location="westeurope",
        exist_ok=True,
    )
    assert ws.path == Path(os.environ["HEADRACE_HOME"]) / "workspaces" / "seed-ws"

    # -- Instellen van een gegevensarchief ---------------------------------------------------
    # Default datastore (Azure file storage)
    def_data_store = ws.get_default_datastore()

    # The above call is equivalent to this
    def_data_store = Datastore(ws, "workspacefilestore")

    # Get blob storage associated with the workspace
    def_blob_store = Datastore(ws, "workspaceblobstore")

    def_blob_store.upload_files(["./data/20news.pkl"], target_path="20newsgroups", overwrite=True)
    assert def_data_store.name == "workspacefilestore"
    assert "20newsgroups/20news.pkl" in def_blob_store.list_files("20newsgroups")

    # -- Naslaginformatie voor data configureren ---------------------------------------------
    blob_input_data = DataReference(
        datastore=def_blob_store,
        data_reference_name="test_data",
        path_on_datastore="20newsgroups/20news.pkl",
    )

    output_data1 = PipelineData(
        "output_data1", datastore=def_blob_store, output_name="output_data1"
    )

    # -- Compute-doel instellen: Azure Machine Learning-Computing -----------------------------
    vm_size = "STANDARD_NC6"  # the document leaves vm_size to the reader
    compute_name = "aml-compute"
    if compute_name in ws.compute_targets:
        compute_target = ws.compute_targets[compute_name]
        if compute_target and type(compute_target) is AmlCompute:
            print("Found compute target: " + compute_name)
    else:
        print("Creating a new compute target...")
        provisioning_config = AmlCompute.provisioning_configuration(
            vm_size=vm_size,  # NC6 is GPU-enabled
            min_nodes=1,
            max_nodes=4,
        )
        # create the compute target
        compute_target = ComputeTarget.create(ws, compute_name, provisioning_config)

        # Can poll for a minimum number of nodes and for a specific timeout.
        # If no min node count is provided it will use the scale settings for the cluster
        compute_target.wait_for_completion(
            show_output=True, min_node_count=None, timeout_in_minutes=20
        )

        # For a more detailed view of current cluster status, use the 'status' property
        print(compute_target.status.serialize())

    out = capsys.readouterr().out
    assert "Creating a new compute target..." in out
    assert "'maxNodeCount': 4" in out and "'vmSize': 'STANDARD_NC6'" in out
    assert type(ws.compute_targets[compute_name]) is AmlCompute

    # The attach idiom of the Databricks and ADLA sections: get, or learn it is not there.
    # (Attaching Databricks/ADLA, DatabricksStep, publishing and the REST call belong to later
    # issues: Spark, SQL and the server. They are left out of this flow.)
    for name in (compute_name, "<databricks_compute_name>"):
        try:
            found = ComputeTarget(workspace=ws, name=name)
            print("Compute target already exists")
            assert type(found) is AmlCompute
        except ComputeTargetException:
            print("compute not found")
    assert capsys.readouterr().out.splitlines() == [
        "Compute target already exists",
        "compute not found",
    ]

    # -- De stappen van uw pijplijn bouwen ---------------------------------------------------
    processed_data1 = output_data1  # the document's trainStep calls output_data1 so
    processed_data2 = PipelineData("processed_data2", datastore=def_blob_store)
    out_data3 = PipelineData("processed_data3", datastore=def_blob_store)
    comp_data1, comp_data2 = processed_data1, processed_data2

    trainStep = PythonScriptStep(
        script_name="train.py",
        arguments=["--input", blob_input_data, "--output", processed_data1],
        inputs=[blob_input_data],
        outputs=[processed_data1],
        compute_target=compute_target,
        source_directory=project_folder,
    )
    extractStep = PythonScriptStep(
        script_name="extract.py",
        arguments=["--input_data", processed_data1, "--output_data", processed_data2],
        inputs=[processed_data1],
        outputs=[processed_data2],
        compute_target=compute_target,
        source_directory=project_folder,
    )

    pipeline_param = PipelineParameter(name="pipeline_arg", default_value=10)

    compareStep = PythonScriptStep(
        script_name="compare.py",
        arguments=[
            "--comp_data1",
            comp_data1,
            "--comp_data2",
            comp_data2,
            "--output_data",
            out_data3,
            "--param1",
            pipeline_param,
        ],
        inputs=[comp_data1, comp_data2],
        outputs=[out_data3],
        target=compute_target,
        source_directory=project_folder,
    )

    # list of steps to run
    compareModels = [trainStep, extractStep, compareStep]

    # Build the pipeline
    pipeline1 = Pipeline(workspace=ws, steps=[compareModels])
    assert pipeline1.validate() == []

    # -- Verzenden van de pijplijn -----------------------------------------------------------
    # Submit the pipeline to be run
    pipeline_run1 = Experiment(ws, "Compare_Models_Exp").submit(pipeline1)
    status = pipeline_run1.wait_for_completion()

    out = capsys.readouterr().out
    assert status == "Finished", out
    assert out.count("(This step will run and generate new outputs)") == 3
    # show_output=True streamed the scripts' own output
    assert "compared 2 groups with param1=10" in out

    steps = {s.name: s for s in pipeline_run1.get_steps()}
    assert sorted(steps) == ["compare.py", "extract.py", "train.py"]
    assert all(s.get_status() == "Finished" for s in steps.values())
    assert {s.get_details()["target"] for s in steps.values()} == {compute_name}

    # Data flowed train -> extract -> compare: the word counts come from 20news.pkl.
    compare_run = pipeline_run1.find_step_run("compare.py")[0]
    result = compare_run.get_output_data("processed_data3").download(tmp_path / "dl")
    comparison = (Path(result) / "comparison.txt").read_text()
    assert comparison == "rec.autos engine 4\nsci.space orbit 3\nparam1=10\n"
    model_ref = pipeline_run1.find_step_run("train.py")[0].get_output_data("output_data1")
    assert model_ref.datastore_name == "workspaceblobstore"
    assert steps["train.py"].id in model_ref.path_on_datastore
    # The parameter reached compare.py, and the scripts' Run.get_context() logged into the run.
    assert "param1=10" in compare_run.get_stdout_log()
    assert compare_run.get_metrics()["param1"] == 10
    assert steps["train.py"].get_metrics()["groups"] == 2

    # -- Resubmitting the unchanged pipeline reuses every step -------------------------------
    pipeline_run2 = Experiment(ws, "Compare_Models_Exp").submit(pipeline1)
    assert pipeline_run2.wait_for_completion(show_output=False) == "Finished"
    out = capsys.readouterr().out
    assert out.count("(This step is eligible to reuse a previous run's output)") == 3, out
    reused = {s.name: s.reused_run_id for s in pipeline_run2.get_steps()}
    assert reused == {name: s.id for name, s in steps.items()}


def test_seed_flow_parameter_can_be_overridden_at_submit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The published-pipeline part of the document sends pipeline_arg=20; until publishing
    exists (a later issue), the same value reaches compare.py through submit."""
    from headrace.compat.azureml.core import Datastore, Experiment, Workspace
    from headrace.compat.azureml.data.data_reference import DataReference
    from headrace.compat.azureml.pipeline.core import Pipeline, PipelineData
    from headrace.compat.azureml.pipeline.core.graph import PipelineParameter
    from headrace.compat.azureml.pipeline.steps import PythonScriptStep

    project_folder = str(tmp_path / "project")
    shutil.copytree(SEED_FLOW, project_folder, ignore=shutil.ignore_patterns("__pycache__"))
    make_20news(Path("data/20news.pkl"))
    ws = Workspace.create(name="seed-ws", exist_ok=True, show_output=False)
    store = Datastore(ws, "workspaceblobstore")
    store.upload_files(
        ["./data/20news.pkl"], target_path="20newsgroups", overwrite=True, show_progress=False
    )
    raw = DataReference(store, "test_data", "20newsgroups/20news.pkl")
    model, features, result = (PipelineData(n, datastore=store) for n in ("m", "f", "r"))
    param = PipelineParameter(name="pipeline_arg", default_value=10)
    steps = [
        PythonScriptStep(
            "train.py",
            arguments=["--input", raw, "--output", model],
            inputs=[raw],
            outputs=[model],
            source_directory=project_folder,
        ),
        PythonScriptStep(
            "extract.py",
            arguments=["--input_data", model, "--output_data", features],
            inputs=[model],
            outputs=[features],
            source_directory=project_folder,
        ),
        PythonScriptStep(
            "compare.py",
            arguments=[
                *("--comp_data1", model, "--comp_data2", features),
                *("--output_data", result, "--param1", param),
            ],
            inputs=[model, features],
            outputs=[result],
            source_directory=project_folder,
        ),
    ]
    run = Experiment(ws, "My_Pipeline").submit(
        Pipeline(ws, steps=[steps]), pipeline_parameters={"pipeline_arg": 20}
    )
    assert run.wait_for_completion(show_output=False) == "Finished"
    compare_run = run.find_step_run("compare.py")[0]
    assert "compared 2 groups with param1=20" in compare_run.get_stdout_log()
    assert compare_run.get_metrics()["param1"] == 20
    capsys.readouterr()


# -- (d): an SDK v1 script run with plain python ---------------------------------------------
def test_v1_script_runs_offline_with_plain_python(tmp_path: Path) -> None:
    script = tmp_path / "score.py"
    script.write_text(
        textwrap.dedent(
            """
            from headrace.compat.azureml.core import Run

            run = Run.get_context()
            run.log("accuracy", 0.91)
            run.log_list("losses", [0.5, 0.25])
            run.parent.log("pipeline_metric", 1)
            print("run id:", run.id)
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADRACE_RUN", "AZUREML_"))}
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Attempted to log scalar metric accuracy:\n0.91" in done.stdout
    assert "Attempted to log list metric losses:\n[0.5, 0.25]" in done.stdout
    assert "Attempted to log scalar metric pipeline_metric:\n1" in done.stdout
    assert re.search(r"run id: OfflineRun_[0-9a-f-]{36}", done.stdout), done.stdout
    assert done.stderr == ""


def test_seed_flow_scripts_are_plain_sdk_v1_scripts() -> None:
    """The scripts import only the compat tree, so they port back by changing the imports."""
    for script in sorted(SEED_FLOW.glob("*.py")):
        imports = re.findall(r"^(?:from|import) (\S+)", script.read_text(), flags=re.M)
        ours = [i for i in imports if i.startswith("headrace")]
        assert all(i.startswith("headrace.compat.azureml.") for i in ours), (script, ours)
    assert sorted(p.name for p in SEED_FLOW.glob("*.py")) == [
        "compare.py",
        "extract.py",
        "train.py",
    ]
