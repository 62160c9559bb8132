"""Step environments: a step that declares packages runs in a virtual environment built with
uv (the real uv next to the interpreter, real builds from PyPI), cached by the spec's hash in
the workspace and shared by every step that asks for the same one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from headrace import (
    CondaDependencies,
    Environment,
    Experiment,
    Pipeline,
    PipelineRun,
    PythonScriptStep,
    RunConfiguration,
    UserError,
    Workspace,
)
from headrace.cli.main import app as cli_app
from headrace.compat.azureml.core.environment import Environment as CompatEnvironment
from headrace.engine.environments import environment_key, step_argv
from tests.servers import RUNNER

SCRIPT = textwrap.dedent(
    """
    import sys
    import six
    from headrace import Run
    print("prefix", sys.prefix)
    print("six", six.__version__)
    try:
        import sklearn
        print("sklearn importable")
    except ImportError:
        print("sklearn not importable")
    Run.get_context().log("answer", 42)
    """
)


def _folder(root: Path, script: str = SCRIPT) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "step.py").write_text(script)
    return root


def _requirements(root: Path, text: str) -> str:
    path = root / "requirements.txt"
    path.write_text(text)
    return str(path)


def _step(folder: Path, env: Environment, name: str = "step.py") -> PythonScriptStep:
    return PythonScriptStep(
        "step.py",
        name=name,
        source_directory=str(folder),
        runconfig=RunConfiguration(environment=env),
    )


def _envs(ws: Workspace) -> Path:
    assert ws.path is not None
    return ws.path / "envs"


def _submit(ws: Workspace, *steps: PythonScriptStep, expect: str = "Finished") -> PipelineRun:
    run = Experiment(ws, "envs").submit(Pipeline(ws, steps=list(steps)))
    assert run.wait_for_completion(show_output=False, raise_on_error=False) == expect
    return run


def test_a_step_runs_in_its_environment_with_run_context(ws: Workspace, tmp_path: Path) -> None:
    folder = _folder(tmp_path / "src")
    env = CompatEnvironment.from_pip_requirements(
        "six-env", _requirements(tmp_path, "six==1.16.0  # tiny\n")
    )
    run = _submit(ws, _step(folder, env))
    step = run.find_step_run("step.py")[0]
    out = step.get_stdout_log()
    prefix = Path(out.split("prefix ", 1)[1].splitlines()[0])
    assert ws.path is not None and prefix.parent == ws.path / "envs"
    assert prefix != Path(sys.prefix)
    assert "six 1.16.0" in out
    # What the environment asks for and headrace's own dependencies; not the rest of the
    # environment headrace runs in (which has scikit-learn).
    assert "sklearn not importable" in out
    assert step.get_metrics()["answer"] == 42
    assert "building environment 'six-env'" in step.get_stderr_log()

    shown = RUNNER.invoke(cli_app, ["step", "show", step.id, "-w", str(ws.path)])
    assert shown.exit_code == 0, shown.output
    assert "six-env: uv environment" in shown.output and "six==1.16.0" in shown.output


def test_steps_with_the_same_spec_share_one_build(ws: Workspace, tmp_path: Path) -> None:
    folder = _folder(tmp_path / "src")
    steps = []
    for name in ("one", "two", "three"):
        env = Environment(f"env-{name}")  # names differ, the spec is the same
        env.python.conda_dependencies = CondaDependencies.create(pip_packages=["six==1.16.0"])
        steps.append(_step(folder, env, name))
    run = _submit(ws, *steps)
    logs = [run.find_step_run(name)[0].get_stderr_log() for name in ("one", "two", "three")]
    assert sum(log.count("headrace: building environment") for log in logs) == 1
    outs = [run.find_step_run(name)[0].get_stdout_log() for name in ("one", "two", "three")]
    assert len({out.split("prefix ")[1].split()[0] for out in outs}) == 1
    assert len(list(_envs(ws).glob("*/headrace-env-ready"))) == 1
    # A later run finds it built.
    env = Environment("env-four")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["six==1.16.0"])
    later = _submit(ws, _step(_folder(tmp_path / "other", SCRIPT + "\n# v2\n"), env, "four"))
    assert "building environment" not in later.find_step_run("four")[0].get_stderr_log()


def test_a_requirement_that_does_not_resolve_fails_the_step_with_uv_error(
    ws: Workspace, tmp_path: Path
) -> None:
    folder = _folder(tmp_path / "src")
    env = Environment.from_pip_requirements(
        "broken", _requirements(tmp_path, "headrace-no-such-package-zzz==1.0\n")
    )
    run = _submit(ws, _step(folder, env), expect="Failed")
    step = run.find_step_run("step.py")[0]
    stderr = step.get_stderr_log()
    assert "headrace-no-such-package-zzz" in stderr
    assert "headrace: environment build failed: environment 'broken'" in stderr
    assert "prefix" not in step.get_stdout_log()  # the script never started
    message = run.get_details()["error"]["error"]["message"]
    assert message.startswith("Step 'step.py': environment build failed: environment 'broken'")
    assert "headrace-no-such-package-zzz" in message  # uv's own words
    assert "exited with code" not in message
    # A failed build is not cached: nothing is left marked as ready.
    assert not list((_envs(ws)).glob("*/headrace-env-ready"))


def test_user_managed_dependencies_run_in_headrace_interpreter(
    ws: Workspace, tmp_path: Path
) -> None:
    folder = _folder(tmp_path / "src")
    env = Environment.from_pip_requirements("mine", _requirements(tmp_path, "six==1.16.0\n"))
    env.python.user_managed_dependencies = True
    config = RunConfiguration()
    config.environment = env
    step = PythonScriptStep("step.py", source_directory=str(folder), runconfig=config)
    run = _submit(ws, step)
    out = run.find_step_run("step.py")[0].get_stdout_log()
    assert f"prefix {sys.prefix}" in out
    assert "sklearn importable" in out
    assert not (_envs(ws)).exists()


def test_a_conda_file_installs_what_pypi_has_and_names_the_rest(tmp_path: Path) -> None:
    spec = tmp_path / "conda.yml"
    spec.write_text(
        textwrap.dedent(
            """
            name: project_environment
            channels:
              - conda-forge
            dependencies:
              - python=3.11
              - pip=23.0
              - numpy=1.26
              - scikit-learn
              - pip:
                - six==1.16.0
            """
        )
    )
    env = Environment.from_conda_specification("conda-env", str(spec))
    assert env.spec() == {
        "name": "conda-env",
        "dependencies": {
            "pip": ["six==1.16.0"],
            "conda": ["numpy=1.26", "scikit-learn"],
            "python": "3.11",
            "from_conda": ["numpy==1.26.*", "scikit-learn"],
        },
    }

    # Conda packages PyPI lacks: every one named, with the fix.
    spec.write_text(
        spec.read_text().replace("  - scikit-learn\n", "  - cudatoolkit=11.8\n  - r-essentials\n")
    )
    env = Environment.from_conda_specification("conda-env", str(spec))
    with pytest.raises(UserError) as info:
        env.spec()
    message = str(info.value)
    assert "'cudatoolkit=11.8' has no PyPI equivalent" in message
    assert "'r-essentials' is not a conda package headrace knows on PyPI" in message
    assert "numpy" not in message.split("install:")[1].split(". headrace", maxsplit=1)[0]
    assert "pip_packages" in message and "user_managed_dependencies" in message


def test_bad_files_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"requirements file .*missing.txt. not found"):
        Environment.from_pip_requirements("x", str(tmp_path / "missing.txt"))
    with pytest.raises(UserError, match=r"line 2: pip option .-e \.. is not supported"):
        Environment.from_pip_requirements("x", _requirements(tmp_path, "six\n-e .\n"))
    (tmp_path / "base.txt").write_text("six==1.16.0\nazureml-defaults\n")
    env = Environment.from_pip_requirements(
        "x", _requirements(tmp_path, "-r base.txt\n--index-url https://pypi.org/simple\n")
    )
    deps = env.python.conda_dependencies.spec()
    assert deps["pip"] == ["six==1.16.0"]  # azureml-* is headrace itself
    assert deps["index_url"] == "https://pypi.org/simple"


def test_a_changed_pin_runs_the_step_again(ws: Workspace, tmp_path: Path) -> None:
    folder = _folder(tmp_path / "src")

    def submit(pin: str) -> PipelineRun:
        env = Environment.from_pip_requirements("pinned", _requirements(tmp_path, pin))
        return _submit(ws, _step(folder, env))

    first = submit("six==1.16.0\n")
    assert first.find_step_run("step.py")[0].reused_run_id is None
    second = submit("six==1.16.0\n")
    assert second.find_step_run("step.py")[0].reused_run_id is not None
    third = submit("six==1.15.0\n")
    step = third.find_step_run("step.py")[0]
    assert step.reused_run_id is None
    assert "environment changed" in str(step.run_reason.get("summary", ""))
    assert "six 1.15.0" in step.get_stdout_log()


def test_concurrent_starts_build_once_and_wait_for_the_builder(tmp_path: Path) -> None:
    """Four step processes start at the same moment with one uncached environment: one
    builds it, the others say they wait, and all four run in it."""
    env = Environment("together")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["six==1.16.0"])
    spec = env.spec()
    script = tmp_path / "show.py"
    script.write_text("import sys, six\nprint(sys.prefix)\n")
    environ = {**os.environ, "HEADRACE_ENVS_DIR": str(tmp_path / "envs")}
    argv = step_argv(spec, sys.executable, [str(script)], tmp_path / "unused.log", 0)
    processes = [
        subprocess.Popen(argv, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    results = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0]
    stderr = "".join(err.decode() for _, err in results)
    assert stderr.count("headrace: building environment 'together'") == 1
    assert {out.decode().strip() for out, _ in results} == {
        str(tmp_path / "envs" / environment_key(spec or {}, sys.executable))
    }


def test_a_python_version_not_on_the_machine_fails_with_the_fix(
    ws: Workspace, tmp_path: Path
) -> None:
    folder = _folder(tmp_path / "src")
    env = Environment("ancient")
    env.python.conda_dependencies = CondaDependencies.create(
        pip_packages=["six==1.16.0"], python_version="3.1"
    )
    run = _submit(ws, _step(folder, env), expect="Failed")
    stderr = run.find_step_run("step.py")[0].get_stderr_log()
    assert "environment build failed: environment 'ancient': `uv venv` failed" in stderr
    assert "Fix: install Python 3.1 where uv finds it (`uv python install 3.1`)" in stderr


def test_user_managed_interpreter_path_is_used_as_it_is(ws: Workspace, tmp_path: Path) -> None:
    uv = Path(sys.executable).with_name("uv")
    subprocess.run([str(uv), "venv", "-q", str(tmp_path / "own")], check=True)
    folder = _folder(tmp_path / "src", "import sys\nprint('prefix', sys.prefix)\n")
    env = Environment("own")
    env.python.user_managed_dependencies = True
    env.python.interpreter_path = str(tmp_path / "own" / "bin" / "python")
    run = _submit(ws, _step(folder, env))
    assert f"prefix {tmp_path / 'own'}" in run.find_step_run("step.py")[0].get_stdout_log()
    assert not _envs(ws).exists()

    env.python.interpreter_path = str(tmp_path / "missing" / "python")
    run = _submit(ws, _step(folder, env), expect="Failed")
    message = run.get_details()["error"]["error"]["message"]
    assert "could not be started" in message and "missing/python" in message


def test_the_run_context_client_is_importable_behind_the_environment_packages(
    tmp_path: Path,
) -> None:
    """A step on a machine without the workspace folder logs through the server (httpx and
    the store's records): the environment can import that, and a package the environment
    pins itself wins over headrace's."""
    env = Environment("client")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["idna==3.6"])
    script = tmp_path / "show.py"
    script.write_text(
        "import idna, httpx\nfrom headrace.backend.remote import RemoteBackend\n"
        "print(idna.__version__, httpx.__file__)\n"
    )
    environ = {**os.environ, "HEADRACE_ENVS_DIR": str(tmp_path / "envs")}
    argv = step_argv(env.spec(), sys.executable, [str(script)], tmp_path / "unused.log", 0)
    done = subprocess.run(argv, env=environ, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    version, where = done.stdout.split()
    assert version == "3.6" and "headrace-link" in where
