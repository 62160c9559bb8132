"""The step runtime contract (DESIGN.md §3, SDK v1 reference §6), as a step's script sees it.

Each test runs real pipelines on the local agent; the scripts report what they saw (cwd,
files, argv, environment) as one JSON line on stdout, which the test reads back from the
step's log.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pathspec

from headrace import (
    CommandStep,
    DataReference,
    Datastore,
    Experiment,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PythonScriptStep,
    RunConfiguration,
    StepRun,
    Workspace,
)
from headrace.engine.snapshots import ALWAYS_IGNORED

PROBE = textwrap.dedent(
    """
    import json, os, sys
    files = []
    for dirpath, dirnames, filenames in os.walk("."):
        for f in filenames:
            files.append(os.path.relpath(os.path.join(dirpath, f), ".").replace(os.sep, "/"))
    view = {
        "cwd": os.getcwd(),
        "argv": sys.argv[1:],
        "files": sorted(files),
        "env": {k: v for k, v in os.environ.items()
                if k.startswith(("AML_", "AZUREML_", "HEADRACE_", "MY_"))},
        "dirs_at_start": {a: os.path.isdir(a) for a in sys.argv[1:] if os.path.isabs(a)},
        "executable": sys.executable,
    }
    print("PROBE " + json.dumps(view), flush=True)
    """
)


def write_source(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def probe_of(step: StepRun) -> dict[str, Any]:
    for line in step.get_stdout_log().splitlines():
        if line.startswith("PROBE "):
            result: dict[str, Any] = json.loads(line[len("PROBE ") :])
            return result
    raise AssertionError(
        f"step {step.name} printed no PROBE line:\n{step.get_stdout_log()}\n"
        f"stderr:\n{step.get_stderr_log()}"
    )


def run_ok(ws: Workspace, pipeline: Pipeline, experiment: str = "contract", **kw: Any) -> Any:
    run = Experiment(ws, experiment).submit(pipeline, **kw)
    status = run.wait_for_completion(show_output=False, raise_on_error=False)
    if status != "Finished":
        details = {s.name: (s.get_status(), s.get_stderr_log()) for s in run.get_steps()}
        raise AssertionError(f"run ended {status}: {details}")
    return run


def test_cwd_is_a_snapshot_honouring_ignore_files(ws: Workspace, tmp_path: Path) -> None:
    both = write_source(
        tmp_path / "both",
        {
            "probe.py": PROBE,
            "keep.txt": "k",
            "pkg/module.py": "x = 1",
            ".amlignore": "aml_ignored.txt\n",
            # .amlignore wins: .gitignore is not read when both exist.
            ".gitignore": "git_only.txt\n",
            ".headraceignore": "hr_ignored.txt\ndata/\n",
            "aml_ignored.txt": "no",
            "git_only.txt": "yes",
            "hr_ignored.txt": "no",
            "data/big.bin": "no",
            ".git/config": "no",
            "__pycache__/probe.cpython-312.pyc": "no",
            "pkg/__pycache__/module.cpython-312.pyc": "no",
            "venv/pyvenv.cfg": "home = /usr/bin",
            "venv/lib/site.py": "no",
        },
    )
    git = write_source(
        tmp_path / "gitonly",
        {"probe.py": PROBE, ".gitignore": "*.log\n", "train.log": "no", "keep.txt": "k"},
    )
    # No ignore file: only the built-in patterns, matched without pathspec (snapshots.py).
    plain_files = {
        "probe.py": PROBE,
        "keep.txt": "k",
        "notes.pyc.txt": "k",
        "pkg/module.py": "x = 1",
        "pkg/__pycache__/module.cpython-311.pyc": "no",
        "top.pyc": "no",
        "data.pyc/inside.txt": "no",  # *.pyc names folders too
        ".git/config": "no",
        "deep/er/.ipynb_checkpoints/a.txt": "no",
        "deep/er/kept.txt": "k",
        "__pycache__.txt": "k",
    }
    plain = write_source(tmp_path / "plain", plain_files)
    a = PythonScriptStep("probe.py", name="both", source_directory=str(both))
    b = PythonScriptStep("probe.py", name="gitonly", source_directory=str(git))
    c = PythonScriptStep("probe.py", name="plain", source_directory=str(plain))
    run = run_ok(ws, Pipeline(ws, steps=[a, b, c]))

    seen = probe_of(run.find_step_run("both")[0])
    assert seen["files"] == sorted(
        [
            ".amlignore",
            ".gitignore",
            ".headraceignore",
            "git_only.txt",
            "keep.txt",
            "pkg/module.py",
            "probe.py",
        ]
    )
    assert Path(seen["cwd"]).resolve() != both.resolve()
    seen = probe_of(run.find_step_run("gitonly")[0])
    assert seen["files"] == [".gitignore", "keep.txt", "probe.py"]
    seen = probe_of(run.find_step_run("plain")[0])
    kept = [name for name, text in plain_files.items() if text != "no"]
    assert seen["files"] == sorted(kept)
    # The same as pathspec's own matching of the built-in patterns.
    spec = pathspec.GitIgnoreSpec.from_lines(ALWAYS_IGNORED)
    assert sorted(spec.match_files(plain_files, negate=True)) == sorted(kept)


def test_editing_the_source_after_submit_does_not_change_what_steps_see(
    ws: Workspace, tmp_path: Path
) -> None:
    script = textwrap.dedent(
        """
        import sys, time
        time.sleep(float(sys.argv[1]))
        print("DATA " + open("data.txt").read(), flush=True)
        """
    )
    src = write_source(tmp_path / "src", {"show.py": script, "data.txt": "original"})
    running = PythonScriptStep("show.py", name="running", arguments=["1.5"], source_directory=src)
    queued = PythonScriptStep("show.py", name="queued", arguments=["0"], source_directory=src)
    queued.run_after(running)
    run = Experiment(ws, "contract").submit(Pipeline(ws, steps=[queued]))
    (src / "data.txt").write_text("edited after submit")
    (src / "show.py").write_text("raise SystemExit('the edited script ran')")
    assert run.wait_for_completion(show_output=False) == "Finished"
    for name in ("running", "queued"):
        assert "DATA original" in run.find_step_run(name)[0].get_stdout_log()


def test_placeholders_parameters_and_environment(ws: Workspace, tmp_path: Path) -> None:
    src = write_source(tmp_path / "src", {"probe.py": PROBE})
    (tmp_path / "raw.csv").write_text("a,b\n1,2\n")
    store = ws.get_default_datastore()
    store.upload_files([str(tmp_path / "raw.csv")], target_path="raw", show_progress=False)
    raw = DataReference(store, data_reference_name="raw_data", path_on_datastore="raw/raw.csv")
    out = PipelineData("prepared", datastore=store)
    lr = PipelineParameter("learning_rate", default_value=0.1)
    config = RunConfiguration()
    config.environment_variables = {"MY_SETTING": "from-runconfig"}
    step = PythonScriptStep(
        "probe.py",
        name="prep",
        arguments=["--raw", raw, "--out", out, "--lr", lr],
        inputs=[raw],
        outputs=[out],
        params={"mode": "fast", "rate": lr},
        runconfig=config,
        source_directory=str(src),
    )
    run = run_ok(
        ws, Pipeline(ws, steps=[step]), "env-exp", pipeline_parameters={"learning_rate": 0.5}
    )
    step_run = run.find_step_run("prep")[0]
    seen = probe_of(step_run)
    argv, env = seen["argv"], seen["env"]
    assert argv[0::2] == ["--raw", "--out", "--lr"]
    raw_path, out_path = argv[1], argv[3]
    # Mount mode on a local datastore: the script gets the real file, no copy.
    assert os.path.isabs(raw_path)
    assert Path(raw_path).resolve() == (Path(store.root) / "raw" / "raw.csv").resolve()
    assert os.path.isabs(out_path) and seen["dirs_at_start"][out_path] is True
    assert argv[5] == "0.5"
    assert env["AML_PARAMETER_learning_rate"] == "0.5"
    assert env["AML_PARAMETER_mode"] == "fast"
    assert env["AML_PARAMETER_rate"] == "0.5"
    assert env["AZUREML_DATAREFERENCE_raw_data"] == raw_path
    assert env["AZUREML_DATAREFERENCE_prepared"] == out_path
    assert env["AZUREML_RUN_ID"] == step_run.id
    assert env["HEADRACE_RUN_ID"] == step_run.id
    assert env["AZUREML_ARM_PROJECT_NAME"] == "env-exp"
    assert env["MY_SETTING"] == "from-runconfig"
    assert step_run.get_output_data("prepared").path_on_datastore == (
        f"azureml/{step_run.id}/prepared"
    )


FAIL_AFTER_WRITING = textwrap.dedent(
    """
    import os, sys
    out = sys.argv[1]
    with open(os.path.join(out, "half_written.txt"), "w") as fh:
        fh.write("not valid")
    if sys.argv[2] == "fail":
        sys.exit(1)
    """
)
READER = "import os, sys; print('READ', os.listdir(sys.argv[1]), flush=True)\n"


def test_outputs_are_committed_only_on_success(ws: Workspace, tmp_path: Path) -> None:
    src = write_source(tmp_path / "src", {"write.py": FAIL_AFTER_WRITING, "read.py": READER})
    store = ws.get_default_datastore()

    def pipeline(mode: str) -> Pipeline:
        data = PipelineData("result", datastore=store)
        writer = PythonScriptStep(
            "write.py", name="writer", arguments=[data, mode], outputs=[data], source_directory=src
        )
        reader = PythonScriptStep(
            "read.py", name="reader", arguments=[data], inputs=[data], source_directory=src
        )
        return Pipeline(ws, steps=[writer, reader])

    failed = Experiment(ws, "commit").submit(pipeline("fail"), continue_on_step_failure=True)
    assert failed.wait_for_completion(show_output=False, raise_on_error=False) == "Failed"
    writer = failed.find_step_run("writer")[0]
    assert writer.get_status() == "Failed"
    assert failed.find_step_run("reader") == []
    root = Path(store.root)
    assert not (root / "azureml" / writer.id).exists()
    leftovers = [p for p in root.rglob("*") if p.name == "half_written.txt"]
    assert leftovers == [], f"a failed step left output on the datastore: {leftovers}"

    ok = run_ok(ws, pipeline("ok"), "commit")
    writer = ok.find_step_run("writer")[0]
    assert (root / "azureml" / writer.id / "result" / "half_written.txt").read_text() == (
        "not valid"
    )
    assert "READ ['half_written.txt']" in ok.find_step_run("reader")[0].get_stdout_log()


def test_download_inputs_are_copies_and_mount_inputs_are_the_datastore(
    ws: Workspace, tmp_path: Path
) -> None:
    producer_script = textwrap.dedent(
        """
        import os, sys
        with open(os.path.join(sys.argv[1], "made.txt"), "w") as fh:
            fh.write("made")
        """
    )
    consumer_script = textwrap.dedent(
        """
        import json, os, sys
        paths = dict(zip(["piped", "ref_dl", "ref_mount"], sys.argv[1:]))
        shown = {k: os.path.abspath(v) for k, v in paths.items()}
        print("PATHS " + json.dumps(dict(shown, cwd=os.getcwd())), flush=True)
        for key in ("piped", "ref_dl"):
            target = paths[key]
            name = os.path.join(target, os.listdir(target)[0]) if os.path.isdir(target) else target
            with open(name, "w") as fh:
                fh.write("changed by the step")
        """
    )
    src = write_source(tmp_path / "src", {"make.py": producer_script, "use.py": consumer_script})
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "ref.txt").write_text("datastore copy")
    store = ws.get_default_datastore()
    store.upload_files([str(tmp_path / "in" / "ref.txt")], target_path="refs", show_progress=False)
    piped = PipelineData("piped", datastore=store)
    ref_dl = DataReference(store, "ref_dl", "refs").as_download()
    ref_mount = DataReference(store, "ref_mount", "refs/ref.txt")
    make = PythonScriptStep(
        "make.py", name="make", arguments=[piped], outputs=[piped], source_directory=src
    )
    piped_in = piped.as_download()
    use = PythonScriptStep(
        "use.py",
        name="use",
        arguments=[piped_in, ref_dl, ref_mount],
        inputs=[piped_in, ref_dl, ref_mount],
        source_directory=src,
    )
    run = run_ok(ws, Pipeline(ws, steps=[make, use]))
    log = run.find_step_run("use")[0].get_stdout_log()
    paths = json.loads(log.split("PATHS ", 1)[1].splitlines()[0])
    root = Path(store.root).resolve()
    cwd = Path(paths["cwd"]).resolve()
    for key in ("piped", "ref_dl"):
        assert Path(paths[key]).resolve().is_relative_to(cwd), paths  # in the step folder
        assert not Path(paths[key]).resolve().is_relative_to(root), paths
    assert Path(paths["ref_mount"]).resolve() == root / "refs" / "ref.txt"
    # The step changed its copies; the datastore is untouched.
    assert (root / "refs" / "ref.txt").read_text() == "datastore copy"
    maker = run.find_step_run("make")[0]
    assert (root / "azureml" / maker.id / "piped" / "made.txt").read_text() == "made"


def test_outputs_and_logs_folders_become_run_files(ws: Workspace, tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import os, pickle
        os.makedirs("outputs", exist_ok=True)
        os.makedirs("logs/deep", exist_ok=True)
        with open("outputs/model.pkl", "wb") as fh:
            pickle.dump({"weights": [1, 2, 3]}, fh)
        with open("logs/deep/train.log", "w") as fh:
            fh.write("epoch 1 done\\n")
        """
    )
    src = write_source(tmp_path / "src", {"train.py": script})
    run = run_ok(ws, Pipeline(ws, steps=[PythonScriptStep("train.py", source_directory=src)]))
    step = run.find_step_run("train.py")[0]
    names = step.get_file_names()
    assert "outputs/model.pkl" in names and "logs/deep/train.log" in names
    step.download_file("outputs/model.pkl", str(tmp_path / "model.pkl"))
    import pickle

    with (tmp_path / "model.pkl").open("rb") as fh:
        assert pickle.load(fh) == {"weights": [1, 2, 3]}


def test_command_step_runs_shell_text_and_mixed_lists(ws: Workspace, tmp_path: Path) -> None:
    tool = textwrap.dedent(
        """
        import os, sys
        out, value = sys.argv[1], sys.argv[2]
        with open(os.path.join(out, "value.txt"), "w") as fh:
            fh.write(value)
        print("EXE " + sys.executable, flush=True)
        """
    )
    src = write_source(tmp_path / "src", {"tool.py": tool})
    first = PipelineData("first")
    second = PipelineData("second")
    size = PipelineParameter("size", default_value=3)
    as_text = CommandStep(
        command=f"python tool.py {first} text && echo shell-ran",
        name="as_text",
        outputs=[first],
        source_directory=str(src),
    )
    as_list = CommandStep(
        command=["python", "tool.py", second, size],
        name="as_list",
        inputs=[first],
        outputs=[second],
        source_directory=str(src),
    )
    run = run_ok(ws, Pipeline(ws, steps=[as_text, as_list]), pipeline_parameters={"size": 7})
    text_step = run.find_step_run("as_text")[0]
    log = text_step.get_stdout_log()
    assert "shell-ran" in log
    # `python` in a command is the interpreter headrace runs with, not whatever PATH has.
    exe = log.split("EXE ", 1)[1].splitlines()[0]
    assert Path(exe).resolve() == Path(sys.executable).resolve()
    got = text_step.get_output_data("first").download(tmp_path / "dl", show_progress=False)
    assert (Path(got) / "value.txt").read_text() == "text"
    list_step = run.find_step_run("as_list")[0]
    got = list_step.get_output_data("second").download(tmp_path / "dl", show_progress=False)
    assert (Path(got) / "value.txt").read_text() == "7"


def test_datastore_outside_the_workspace_is_mounted_in_place(ws: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "shared-data"
    folder.mkdir()
    (folder / "table.csv").write_text("x\n1\n")
    store = Datastore.register_local(ws, "shared", folder)
    ref = DataReference(store, "table", "table.csv")
    src = write_source(tmp_path / "src", {"probe.py": PROBE})
    step = PythonScriptStep(
        "probe.py", name="p", arguments=[ref], inputs=[ref], source_directory=src
    )
    run = run_ok(ws, Pipeline(ws, steps=[step]))
    seen = probe_of(run.find_step_run("p")[0])
    assert Path(seen["argv"][0]).resolve() == (folder / "table.csv").resolve()


def test_upload_mode_output_is_kept_from_the_step_folder(ws: Workspace, tmp_path: Path) -> None:
    writer_script = textwrap.dedent(
        """
        import os, sys
        out = sys.argv[1]
        print("OUT " + out + " CWD " + os.getcwd(), flush=True)
        with open(os.path.join(out, "part.txt"), "w") as fh:
            fh.write("written locally")
        """
    )
    src = write_source(tmp_path / "src", {"write.py": writer_script, "read.py": READER})
    data = PipelineData("uploaded", output_mode="upload", output_path_on_compute="local_out")
    writer = PythonScriptStep(
        "write.py", name="writer", arguments=[data], outputs=[data], source_directory=src
    )
    reader = PythonScriptStep(
        "read.py", name="reader", arguments=[data], inputs=[data], source_directory=src
    )
    run = run_ok(ws, Pipeline(ws, steps=[writer, reader]))
    step = run.find_step_run("writer")[0]
    out, cwd = step.get_stdout_log().split("OUT ", 1)[1].split(" CWD ")
    assert Path(out) == Path(cwd.strip()) / "local_out"
    root = Path(ws.get_default_datastore().root)
    assert (root / "azureml" / step.id / "uploaded" / "part.txt").read_text() == "written locally"
    assert "READ ['part.txt']" in run.find_step_run("reader")[0].get_stdout_log()


PRISTINE_CHECK = """
import os, stat, sys
found = sorted(
    os.path.relpath(os.path.join(d, n), ".")
    for d, dirs, files in os.walk(".")
    for n in files + [x for x in dirs if not os.listdir(os.path.join(d, x))]
)
assert found == ["data/a.txt", "job.py"], f"working folder not fresh: {found}"
assert open("data/a.txt").read() == "original", "snapshot file changed by an earlier step"
assert not os.stat("data/a.txt").st_mode & stat.S_IXUSR, "mode changed by an earlier step"
if sys.argv[1] == "dirty":
    with open("data/a.txt", "r+") as fh:
        fh.write("ORIGINAL")  # same size, new content
    os.chmod("data/a.txt", 0o755)
    open("extra.txt", "w").write("left behind")
    os.makedirs("outputs/deep", exist_ok=True)
    os.makedirs("empty_dir")
"""


def test_every_attempt_gets_a_fresh_working_folder(ws: Workspace, tmp_path: Path) -> None:
    """Working folders are recycled between steps of one snapshot only when the script left
    them untouched: whatever an earlier step changed, added or chmod-ed, the next one
    starts from the snapshot as it was submitted."""
    from headrace import AmlCompute, ComputeTarget

    ComputeTarget.create(ws, "one", AmlCompute.provisioning_configuration(max_nodes=1))
    src = tmp_path / "src"
    (src / "data").mkdir(parents=True)
    (src / "job.py").write_text(PRISTINE_CHECK)
    (src / "data" / "a.txt").write_text("original")
    modes = ["clean", "clean", "dirty", "clean", "dirty", "dirty", "clean", "clean"]
    steps = [
        PythonScriptStep(
            "job.py",
            name=f"s{i}",
            arguments=[mode],
            compute_target="one",
            source_directory=str(src),
            allow_reuse=False,
        )
        for i, mode in enumerate(modes)
    ]
    run = Experiment(ws, "fresh").submit(Pipeline(ws, steps=steps))
    assert run.wait_for_completion(show_output=False, raise_on_error=False) == "Finished", [
        (s.name, s.get_details().get("error")) for s in run.get_steps()
    ]
    # Nothing is left in the workspace's working area once the run ended.
    assert list((Path(ws.backend.location) / "work").glob("*")) == []
