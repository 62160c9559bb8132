"""Environments as SDK v1 code writes them: conda packages installed from PyPI with uv (real
builds of small packages from the package index), the rest refused at validation naming each
one, a registry of named versions on a folder and through a server, Docker images recorded
and said, and SDK v1's distributed settings for one node.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from headrace import Experiment, Pipeline, PipelineRun, PythonScriptStep, Workspace
from headrace.cli.main import app as cli_app
from headrace.compat.azureml.core import Environment, ScriptRunConfig
from headrace.compat.azureml.core.conda_dependencies import CondaDependencies
from headrace.compat.azureml.core.runconfig import (
    DEFAULT_GPU_IMAGE,
    MpiConfiguration,
    PyTorchConfiguration,
    RunConfiguration,
)
from headrace.compat.azureml.pipeline.steps import CommandStep
from headrace.engine.environments import step_argv
from headrace.errors import NotFoundError, PipelineValidationError
from headrace.sdk.environment import EnvironmentDockerWarning
from tests.servers import RUNNER
from tests.test_remote_contract import any_ws

__all__ = ["any_ws"]  # a fixture used here: the workspace on a folder and through a server

SCRIPT = textwrap.dedent(
    """
    import sys
    print("python", ".".join(map(str, sys.version_info[:2])))
    for name in ("six", "msgpack", "idna"):
        try:
            module = __import__(name)
            print(name, getattr(module, "__version__", "imported"))
        except ImportError:
            print(name, "missing")
    """
)


def _step(tmp_path: Path, env: Environment | None, name: str = "step.py") -> PythonScriptStep:
    folder = tmp_path / "src"
    folder.mkdir(exist_ok=True)
    (folder / "step.py").write_text(SCRIPT)
    config = RunConfiguration()
    if env is not None:
        config.environment = env
    return PythonScriptStep("step.py", name=name, source_directory=str(folder), runconfig=config)


def _run(ws: Workspace, *steps: PythonScriptStep | CommandStep) -> PipelineRun:
    run = Experiment(ws, "envs").submit(Pipeline(ws, steps=list(steps)))
    run.wait_for_completion(show_output=False, raise_on_error=False)
    return run


def test_conda_packages_pypi_has_are_installed_with_uv_and_said_once(
    ws: Workspace, tmp_path: Path
) -> None:
    """As SDK v1 notebooks write it: conda packages (one under another name on PyPI), a
    Python pin among them, pip packages beside, user_managed_dependencies False."""
    config = RunConfiguration()
    config.environment.python.user_managed_dependencies = False
    config.environment.docker.base_image = DEFAULT_GPU_IMAGE  # recorded, said in the log
    config.environment.python.conda_dependencies = CondaDependencies.create(
        conda_packages=["six=1.16", "msgpack-python", "python=3.11", "pip"],
        pip_packages=["idna==3.6", "azureml-defaults"],
    )
    step = _step(tmp_path, None)
    step.runconfig = config
    run = _run(ws, step)
    step_run = run.find_step_run("step.py")[0]
    assert step_run.get_status() == "Finished", step_run.get_stderr_log()
    out = step_run.get_stdout_log()
    assert "python 3.11" in out and "six 1.16.0" in out and "idna 3.6" in out
    assert "msgpack missing" not in out
    stderr = step_run.get_stderr_log()
    said = [line for line in stderr.splitlines() if "installed from PyPI with uv" in line]
    assert len(said) == 1, stderr
    assert "msgpack-python" in said[0] and "msgpack" in said[0] and "six==1.16.*" in said[0]
    assert f"Docker image {DEFAULT_GPU_IMAGE}, which is recorded, not used" in stderr
    assert "runs in a uv environment, not in a container" in stderr

    shown = RUNNER.invoke(cli_app, ["step", "show", step_run.id, "-w", str(ws.path)])
    python_row = next(line for line in shown.output.splitlines() if line.startswith("Python"))
    assert "uv environment" in python_row and "conda packages from PyPI" in python_row


def test_conda_packages_without_a_pypi_equivalent_fail_validation_naming_each(
    ws: Workspace, tmp_path: Path
) -> None:
    env = Environment("gpu")
    env.python.conda_dependencies = CondaDependencies.create(
        conda_packages=["numpy", "cudatoolkit=11.8", "conda-only-thing", "pandas=2.1|2.2"]
    )
    pipeline = Pipeline(ws, steps=[_step(tmp_path, env)])
    problems = pipeline.validate()
    assert len(problems) == 1, problems
    assert "'cudatoolkit=11.8' has no PyPI equivalent" in problems[0]
    assert "'conda-only-thing' is not a conda package headrace knows on PyPI" in problems[0]
    assert "'pandas=2.1|2.2': alternatives" in problems[0]
    assert "'numpy'" not in problems[0]
    with pytest.raises(PipelineValidationError, match="conda-only-thing"):
        Experiment(ws, "envs").submit(pipeline)
    assert not list(Experiment(ws, "envs").get_runs())  # nothing was queued
    with pytest.raises(Exception, match="cudatoolkit"):
        env.register(ws)  # what could never be built is not kept either


def test_registered_environments_have_versions(any_ws: Workspace) -> None:
    env = Environment("train-env")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["six==1.16.0"])
    env.environment_variables = {"MODE": "fast"}
    first = env.register(any_ws)
    assert first.version == "1" and env.version == "1"
    assert env.register(any_ws).version == "1"  # unchanged: the same version
    env.python.conda_dependencies.add_pip_package("idna==3.6")
    assert env.register(any_ws).version == "2"
    Environment("other").register(any_ws)

    latest = Environment.get(any_ws, "train-env")
    assert latest.version == "2"
    assert latest.python.conda_dependencies.pip_packages == ["six==1.16.0", "idna==3.6"]
    assert latest.environment_variables == {"MODE": "fast"}
    assert Environment.get(any_ws, "train-env", version="1").spec() == {
        "name": "train-env",
        "dependencies": {"pip": ["six==1.16.0"], "conda": [], "python": None},
    }
    listed = Environment.list(any_ws)
    assert sorted(listed) == ["other", "train-env"] and listed["train-env"].version == "2"

    with pytest.raises(NotFoundError, match=r"registered: other, train-env"):
        Environment.get(any_ws, "trian-env")
    with pytest.raises(NotFoundError, match=r"no version 7; it has versions 1, 2"):
        Environment.get(any_ws, "train-env", version=7)
    with pytest.raises(NotFoundError, match="Azure ML curated environment"):
        Environment.get(any_ws, "AzureML-TensorFlow-2.3-GPU")


def test_docker_images_and_dockerfiles_are_recorded_and_said(ws: Workspace, tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM rocker/r-base\nRUN R -e 'install.packages(\"x\")'\n")
    with pytest.warns(EnvironmentDockerWarning, match="recorded, not used"):
        from_file = Environment.from_dockerfile("r_env", str(dockerfile))
    assert from_file.docker.base_dockerfile == dockerfile.read_text()
    with pytest.warns(EnvironmentDockerWarning, match="Docker image"):
        from_image = Environment.from_docker_image("gpu", DEFAULT_GPU_IMAGE)
    run = _run(ws, _step(tmp_path, from_file, "file"), _step(tmp_path, from_image, "image"))
    for name in ("file", "image"):
        step = run.find_step_run(name)[0]
        assert step.get_status() == "Finished"
        assert f"python {sys.version_info[0]}.{sys.version_info[1]}" in step.get_stdout_log()
        stderr = step.get_stderr_log()
        assert "recorded, not used: the step runs in the Python that submitted the run" in stderr
    assert "a Dockerfile" in run.find_step_run("file")[0].get_stderr_log()
    # The registry keeps what was recorded.
    from_file.register(ws)
    assert Environment.get(ws, "r_env").docker.base_dockerfile == dockerfile.read_text()


def test_one_node_mpi_runs_and_more_says_to_use_ray(ws: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "cmd"
    folder.mkdir()
    single = ScriptRunConfig(
        source_directory=str(folder),
        command="echo one node",
        distributed_job_config=MpiConfiguration(node_count=1),
    )
    run = _run(ws, CommandStep(name="mpi", runconfig=single))
    assert "one node" in run.find_step_run("mpi")[0].get_stdout_log()

    for config in (
        MpiConfiguration(node_count=2),
        MpiConfiguration(process_count_per_node=4),
        PyTorchConfiguration(process_count=2),
    ):
        many = ScriptRunConfig(
            source_directory=str(folder), command="echo many", distributed_job_config=config
        )
        problems = Pipeline(ws, steps=[CommandStep(name="many", runconfig=many)]).validate()
        assert len(problems) == 1 and "Ray" in problems[0], problems
        assert type(config).__name__ in problems[0] and "one process on one node" in problems[0]
    plain = RunConfiguration()
    plain.node_count = 3
    problems = Pipeline(ws, steps=[_step(tmp_path, None, "nodes")]).validate()
    assert problems == []
    step = _step(tmp_path, None, "nodes")
    step.runconfig = plain
    assert "node_count=3" in Pipeline(ws, steps=[step]).validate()[0]


def test_uv_is_headraces_own_dependency(tmp_path: Path) -> None:
    """The step's environment is built with the uv that headrace's `uv` dependency installed,
    found with its find_uv_bin, even with no uv on PATH."""
    from uv import find_uv_bin

    env = Environment("found")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["six==1.16.0"])
    script = tmp_path / "show.py"
    script.write_text("import six\nprint(six.__version__)\n")
    argv = step_argv(env.spec(), sys.executable, [str(script)], tmp_path / "unused.log", 0)
    assert argv[argv.index("--uv") + 1] == str(find_uv_bin())
    environ = {**os.environ, "PATH": "/usr/bin:/bin", "HEADRACE_ENVS_DIR": str(tmp_path / "envs")}
    assert subprocess.run(["which", "uv"], env=environ, check=False).returncode != 0
    done = subprocess.run(argv, env=environ, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1.16.0"


def test_the_cli_lists_and_shows_registered_environments(ws: Workspace) -> None:
    env = Environment("sk-env")
    env.python.conda_dependencies = CondaDependencies.create(
        conda_packages=["scikit-learn", "pytorch"], pip_packages=["six==1.16.0"]
    )
    env.register(ws)
    Environment("plain").register(ws)
    listed = RUNNER.invoke(cli_app, ["environment", "list", "-w", str(ws.path)])
    assert listed.exit_code == 0, listed.output
    assert "sk-env" in listed.output and "plain" in listed.output
    assert "the Python that submits the run" in listed.output
    shown = RUNNER.invoke(cli_app, ["environment", "show", "sk-env", "-w", str(ws.path), "--json"])
    assert shown.exit_code == 0, shown.output
    document = json.loads(shown.output)
    assert document["version"] == "1"
    assert document["spec"]["dependencies"]["from_conda"] == ["scikit-learn", "torch"]
    assert "uv environment" in document["runs_in"]
    missing = RUNNER.invoke(cli_app, ["environment", "show", "nope", "-w", str(ws.path)])
    assert missing.exit_code != 0 and "registered: plain, sk-env" in missing.output
    assert "Traceback" not in missing.output
