"""SDK v1 code with its `azureml.` imports unchanged (issue 14 item 1): the launcher
(`python -m headrace.v1`, `headrace run-v1`), the Jupyter extension, step scripts of a
pipeline built with the alias on, the one message per missing name whatever the spelling,
and the refusal where a real Azure ML SDK is installed beside headrace.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from headrace.compat.azureml import _planned
from headrace.errors import NotInHeadraceError, NotYetImplementedError

HEADRACE = str(Path(sys.executable).with_name("headrace"))


def run_python(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=240,
        check=False,
    )


def run_headrace(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HEADRACE, *args], cwd=cwd, capture_output=True, text=True, timeout=240, check=False
    )


def fake_real_sdk(root: Path) -> Path:
    """A folder laid out as site-packages holding azureml-core 1.57.0 (metadata and an
    `azureml.core` package), without installing the SDK."""
    site = root / "site"
    (site / "azureml" / "core").mkdir(parents=True)
    (site / "azureml" / "__init__.py").write_text("")
    (site / "azureml" / "core" / "__init__.py").write_text('VERSION = "1.57.0"\n')
    info = site / "azureml_core-1.57.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: azureml-core\nVersion: 1.57.0\n\n")
    return site


# -- the launcher ----------------------------------------------------------------------------
def test_a_script_runs_with_its_azureml_imports_unchanged(tmp_path: Path) -> None:
    script = tmp_path / "sdk_v1.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            import azureml.core
            from azureml.core import Workspace
            from azureml.core.compute import AmlCompute, ComputeTarget
            from azureml.pipeline.core import Pipeline, PipelineData
            from azureml.pipeline.steps import PythonScriptStep
            import azureml.pipeline.core.graph

            import headrace

            print(azureml.core.VERSION)
            print(azureml.core.Workspace is Workspace is headrace.Workspace)
            print(AmlCompute is headrace.AmlCompute, Pipeline is headrace.Pipeline)
            print(azureml.pipeline.core.graph.PipelineParameter is headrace.PipelineParameter)
            print(sys.argv[1:], __name__, sys.path[0])
            """
        )
    )
    other = tmp_path / "elsewhere"
    other.mkdir()
    done = run_python("-m", "headrace.v1", str(script), "--lr", "0.1", cwd=other)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("1.61.0+headrace.")
    assert lines[1:4] == ["True", "True True", "True"]
    # As `python script.py`: its arguments, __main__, its own folder first on sys.path.
    assert lines[4] == f"['--lr', '0.1'] __main__ {tmp_path}"


def test_the_script_error_is_shown_as_python_shows_it(tmp_path: Path) -> None:
    (tmp_path / "fails.py").write_text("import azureml.core\n\nraise ValueError('bad input')\n")
    done = run_python("-m", "headrace.v1", "fails.py", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "Traceback (most recent call last):",
        '  File "fails.py", line 3, in <module>',
        "    raise ValueError('bad input')",
        "ValueError: bad input",
    ]
    (tmp_path / "exits.py").write_text("raise SystemExit(7)\n")
    assert run_python("-m", "headrace.v1", "exits.py", cwd=tmp_path).returncode == 7
    missing = run_python("-m", "headrace.v1", "nowhere.py", cwd=tmp_path)
    assert missing.returncode == 2
    assert "can't open file 'nowhere.py'" in missing.stderr


def test_headrace_run_v1_passes_everything_after_the_script(tmp_path: Path) -> None:
    (tmp_path / "args.py").write_text(
        "import sys, azureml.core\nprint(sys.argv[1:])\nsys.exit(int(sys.argv[-1]))\n"
    )
    done = run_headrace("run-v1", "args.py", "--help", "-x", "3", cwd=tmp_path)
    assert done.stdout.strip() == "['--help', '-x', '3']"
    assert done.returncode == 3
    pkg = tmp_path / "tools"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "go.py").write_text("import sys\nfrom azureml.core import Run\nprint(sys.argv[1:])\n")
    as_module = run_headrace("run-v1", "-m", "tools.go", "a", "--b", cwd=tmp_path)
    assert as_module.returncode == 0, as_module.stderr
    assert as_module.stdout.strip() == "['a', '--b']"


# -- one message per missing name, whatever the spelling ------------------------------------
def spellings(entry: _planned.Missing) -> Iterator[str]:
    """Every way SDK v1 code reaches the entry's names."""
    for name in entry.names:
        yield f"from {entry.home} import {name}"
        yield f"import {entry.home}\n{entry.home}.{name}"
        for module in entry.modules:
            yield f"from {module} import {name}"
    for module in entry.modules:
        yield f"import {module}"


@pytest.mark.usefixtures("aliased")
@pytest.mark.parametrize("entry", _planned.MISSING, ids=lambda e: f"{e.home}.{e.names[0]}")
def test_a_missing_name_gives_one_message_for_every_spelling(entry: _planned.Missing) -> None:
    kind = NotYetImplementedError if entry.planned else NotInHeadraceError
    # A name whose module is itself missing (InferenceConfig in azureml.core.model, while
    # the model registry is not built) gets that module's message.
    home_missing = _planned.missing_module(entry.home)
    for code in spellings(entry):
        with pytest.raises(NotInHeadraceError) as caught:
            exec(code, {})
        if home_missing is not None:
            assert str(caught.value) == str(home_missing), code
            continue
        assert type(caught.value) is kind
        assert str(caught.value) == entry.message, code
    assert entry.names[0] in entry.message
    assert "Instead: " in entry.message


@pytest.mark.usefixtures("aliased")
def test_a_missing_name_gives_the_same_message_for_the_three_spellings() -> None:
    messages = []
    for code in (
        "from azureml.pipeline.core.pipeline_draft import PipelineDraft",
        "import azureml.pipeline.core.pipeline_draft",
        "import azureml.pipeline.core\nazureml.pipeline.core.PipelineDraft",
    ):
        with pytest.raises(ImportError) as caught:
            exec(code, {})
        messages.append(str(caught.value))
    assert len(set(messages)) == 1
    assert messages[0].startswith("azureml.pipeline.core.PipelineDraft ")
    assert "publish" in messages[0]


def test_the_compat_spelling_of_a_missing_module_says_the_same() -> None:
    import headrace.compat.azureml  # noqa: F401 (installs the message for missing modules)

    with pytest.raises(NotInHeadraceError) as caught:
        exec("from headrace.compat.azureml.pipeline.core.pipeline_draft import PipelineDraft", {})
    assert str(caught.value).startswith("azureml.pipeline.core.PipelineDraft ")


@pytest.mark.usefixtures("aliased")
def test_schedule_imports_from_every_sdk_v1_spelling() -> None:
    import azureml.pipeline.core
    from azureml.pipeline.core import Schedule
    from azureml.pipeline.core.schedule import Schedule as Again
    from azureml.pipeline.core.schedule import ScheduleRecurrence, TimeZone

    assert Schedule is Again is azureml.pipeline.core.Schedule
    assert ScheduleRecurrence.__module__ == "headrace.sdk.schedule"
    assert TimeZone.PacificStandardTime.value == "Pacific Standard Time"


# Every `from M import N` of SDK v1 names that the official pipeline notebooks and their step
# scripts use (the names only, gathered from Azure/MachineLearningNotebooks).
NOTEBOOK_IMPORTS = {
    "azureml.contrib.notebook": "AzureMLNotebookHandler NotebookRunConfig NotebookRunnerStep",
    "azureml.core": "Dataset Datastore Environment Experiment Model Run RunConfiguration "
    "ScriptRunConfig Workspace",
    "azureml.core.authentication": "InteractiveLoginAuthentication",
    "azureml.core.compute": "AdlaCompute AmlCompute BatchCompute ComputeTarget "
    "DataFactoryCompute DatabricksCompute KustoCompute",
    "azureml.core.compute_target": "ComputeTargetException",
    "azureml.core.conda_dependencies": "CondaDependencies",
    "azureml.core.dataset": "Dataset",
    "azureml.core.datastore": "Datastore",
    "azureml.core.environment": "CondaDependencies",
    "azureml.core.experiment": "Experiment",
    "azureml.core.model": "Model",
    "azureml.core.runconfig": "CondaDependencies DEFAULT_CPU_IMAGE JarLibrary MpiConfiguration "
    "RunConfiguration",
    "azureml.core.workspace": "Workspace",
    "azureml.data": "OutputFileDatasetConfig",
    "azureml.data.data_reference": "DataReference",
    "azureml.data.datapath": "DataPath DataPathComputeBinding",
    "azureml.data.dataset_consumption_config": "DatasetConsumptionConfig",
    "azureml.data.sql_data_reference": "SqlDataReference",
    "azureml.exceptions": "ComputeTargetException",
    "azureml.opendatasets": "NycTlcGreen NycTlcYellow",
    "azureml.pipeline.core": "Pipeline PipelineData PipelineDraft PipelineEndpoint "
    "PipelineParameter PipelineRun PublishedPipeline Schedule TrainingOutput",
    "azureml.pipeline.core.graph": "InputPortDef OutputPortDef PipelineParameter",
    "azureml.pipeline.core.module": "Module",
    "azureml.pipeline.core.schedule": "Schedule ScheduleRecurrence",
    "azureml.pipeline.steps": "AdlaStep AutoMLStep AzureBatchStep CommandStep DataTransferStep "
    "DatabricksStep HyperDriveStep HyperDriveStepRun KustoStep ModuleStep ParallelRunConfig "
    "ParallelRunStep PythonScriptStep",
    "azureml.train.automl": "AutoMLConfig",
    "azureml.train.automl.run": "AutoMLRun",
    "azureml.train.hyperdrive": "BanditPolicy HyperDriveConfig HyperDriveRun PrimaryMetricGoal "
    "RandomParameterSampling choice loguniform",
    "azureml.widgets": "RunDetails",
}


@pytest.mark.usefixtures("aliased")
@pytest.mark.parametrize("module", sorted(NOTEBOOK_IMPORTS))
def test_every_import_of_the_notebooks_gives_the_name_or_what_to_use_instead(
    module: str,
) -> None:
    for name in NOTEBOOK_IMPORTS[module].split():
        namespace: dict[str, object] = {}
        try:
            exec(f"from {module} import {name}", namespace)
        except NotInHeadraceError as exc:
            assert "Instead: " in str(exc)
        else:
            assert getattr(namespace[name], "__module__", "headrace").startswith("headrace")


def test_the_launcher_loads_only_the_alias_until_the_script_imports_azureml(
    tmp_path: Path,
) -> None:
    (tmp_path / "look.py").write_text(
        "import sys\n"
        "print(sorted(m for m in sys.modules if m.startswith('headrace')), 'typing' in sys.modules)\n"
    )
    done = run_python("-m", "headrace.v1", "look.py", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    loaded = "['headrace', 'headrace.compat', 'headrace.compat.azureml', 'headrace.compat.azureml.alias']"
    assert done.stdout.strip() == f"{loaded} False"


def test_a_real_sdk_beside_the_script_is_not_hidden_either(tmp_path: Path) -> None:
    project = fake_real_sdk(tmp_path)  # the script's own folder holds the package
    (project / "job.py").write_text("print('ran')\n")
    done = run_python("-m", "headrace.v1", str(project / "job.py"), cwd=tmp_path)
    assert done.returncode == 1
    assert "azureml-core 1.57.0" in done.stderr and "ran" not in done.stdout
