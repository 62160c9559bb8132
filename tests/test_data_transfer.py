"""DataTransferStep: copies between datastores, run for real by the agent.

Local folders and moto's S3 server (tests/objectstores.py); a PythonScriptStep reading
`get_output()`; reuse; the verification of a copy on real files; the refused destinations; an
SDK v1 script through the compat tree.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from headrace import (
    ComputeTarget,
    DataFactoryCompute,
    DataPath,
    DataPathComputeBinding,
    DataReference,
    Datastore,
    DatastorePathError,
    DataTransferStep,
    Experiment,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PipelineRun,
    PythonScriptStep,
    TransferCompute,
    Workspace,
)
from headrace.errors import ComputeTargetException
from headrace.kinds.transfer.copy import CopyStats, TransferError, copy_file, verify_copy
from tests.objectstores import MotoS3
from tests.test_object_datastores import azurite, moto, store  # noqa: F401  # fixtures

# read.py OUT IN: writes IN's files (relative path, size, md5) to OUT/seen.txt.
READ = """
    import hashlib, os, sys
    out, path = sys.argv[1], sys.argv[2]
    lines = []
    for d, _, names in os.walk(path):
        for n in names:
            full = os.path.join(d, n)
            data = open(full, "rb").read()
            rel = os.path.relpath(full, path)
            lines.append(f"{rel} {len(data)} {hashlib.md5(data).hexdigest()}")
    os.makedirs(out, exist_ok=True)
    open(os.path.join(out, "seen.txt"), "w").write("\\n".join(sorted(lines)))
"""


@pytest.fixture
def source_files(tmp_path: Path) -> Path:
    """A folder: a.txt, sub/b.bin (300 kB of varied bytes), sub/deeper/c.txt."""
    src = tmp_path / "source-files"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "a.txt").write_text("alpha\n")
    (src / "sub" / "b.bin").write_bytes(bytes(range(256)) * 1200)
    (src / "sub" / "deeper" / "c.txt").write_text("gamma\n")
    return src


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    folder = tmp_path / "scripts"
    folder.mkdir()
    (folder / "read.py").write_text(textwrap.dedent(READ))
    return folder


def listing(folder: Path) -> dict[str, str]:
    """Every file under `folder` by relative path, with its MD5."""
    return {
        p.relative_to(folder).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def submit(ws: Workspace, steps: list[Any], name: str = "transfer") -> PipelineRun:
    run = Experiment(ws, name).submit(Pipeline(ws, steps=steps))
    run.wait_for_completion(show_output=False, raise_on_error=False)
    return run


def step_log(run: PipelineRun, step: str) -> str:
    step_run = run.find_step_run(step)[0]
    return str(step_run.get_stdout_log()) + str(step_run.get_stderr_log())


def test_folder_and_file_between_local_datastores_feed_a_python_step(
    ws: Workspace, source_files: Path, scripts: Path, tmp_path: Path
) -> None:
    ds = ws.get_default_datastore()
    ds.upload(str(source_files), target_path="raw", show_progress=False)
    other = Datastore.register_local(ws, "archive", str(tmp_path / "archive-folder"))
    folder_copy = DataTransferStep(
        "copy folder",
        source_data_reference=DataReference(ds, "raw", "raw"),
        destination_data_reference=DataReference(other, "copy", "copies/raw"),
    )
    file_copy = DataTransferStep(
        "copy file",
        source_data_reference=DataReference(ds, "b", "raw/sub/b.bin"),
        destination_data_reference=DataReference(other, "bfile", "single/b-copy.bin"),
        destination_reference_type="file",
    )
    seen = PipelineData("seen", datastore=ds)
    copied = folder_copy.get_output()
    reader = PythonScriptStep(
        "read.py",
        name="reader",
        arguments=[seen, copied],
        inputs=[copied],
        outputs=[seen],
        source_directory=str(scripts),
    )
    run = submit(ws, [reader, file_copy])
    assert run.get_status() == "Finished", run.get_details()

    expected = listing(source_files)
    archive = tmp_path / "archive-folder"
    assert listing(archive / "copies" / "raw") == expected
    assert listing(archive / "single") == {"b-copy.bin": expected["sub/b.bin"]}
    # get_output() is the same copy, on the destination's datastore.
    port = run.find_step_run("copy folder")[0].get_output_data("_data_transfer_output")
    assert port.datastore_name == "archive"
    assert listing(archive / port.path_on_datastore) == expected
    # The next step read the copy (and ran after it).
    seen_port = run.find_step_run("reader")[0].get_output_data("seen")
    seen_file = Path(seen_port.download(tmp_path / "dl", show_progress=False)) / "seen.txt"
    assert [line.split()[0] for line in seen_file.read_text().splitlines()] == sorted(expected)
    # Nothing staged is left on the datastores.
    assert not list((archive / ".headrace").rglob("*.bin"))


def test_reuse_until_the_source_changes(ws: Workspace, source_files: Path, tmp_path: Path) -> None:
    ds = ws.get_default_datastore()
    ds.upload(str(source_files), target_path="raw", show_progress=False)

    def copy() -> bool:
        """True when the copy ran, False when it was reused."""
        step = DataTransferStep(
            "copy",
            source_data_reference=DataReference(ds, "raw", "raw"),
            destination_data_reference=DataReference(ds, "out", "copied"),
        )
        run = submit(ws, [step], "reuse")
        assert run.get_status() == "Finished", run.get_details()
        return run.find_step_run("copy")[0].reused_run_id is None

    assert copy() is True
    assert copy() is False
    (source_files / "a.txt").write_text("alpha, changed\n")
    ds.upload(str(source_files), target_path="raw", overwrite=True, show_progress=False)
    assert copy() is True
    copied = Path(str(ws.path)) / "datastores" / ds.name / "copied" / "a.txt"
    assert copied.read_text() == "alpha, changed\n"


def test_many_small_files_in_parallel_on_a_transfer_target(ws: Workspace, tmp_path: Path) -> None:
    many = tmp_path / "many"
    for i in range(300):
        (many / f"d{i % 7}").mkdir(parents=True, exist_ok=True)
        (many / f"d{i % 7}" / f"f{i}.txt").write_text(f"file {i}\n" * (i % 5 + 1))
    ds = ws.get_default_datastore()
    ds.upload(str(many), target_path="many", show_progress=False)
    target = ComputeTarget.create(
        ws, "mover", TransferCompute.provisioning_configuration(parallelism=16, verify="size")
    )
    assert isinstance(target, TransferCompute) and target.parallelism == 16
    step = DataTransferStep(
        "copy many",
        source_data_reference=ds.path("many"),
        destination_data_reference=PipelineData("many_copy", datastore=ds),
        compute_target=target,
    )
    run = submit(ws, [step])
    assert run.get_status() == "Finished", run.get_details()
    port = run.find_step_run("copy many")[0].get_output_data("many_copy")
    root = Path(str(ws.path)) / "datastores" / ds.name
    assert listing(root / port.path_on_datastore) == listing(many)
    log = step_log(run, "copy many")
    assert "16 at a time, verify=size" in log and "300/300 files" in log


def test_local_to_object_store_and_back(
    ws: Workspace,
    store: Datastore,  # noqa: F811  # the fixture
    source_files: Path,
    tmp_path: Path,
) -> None:
    """local -> S3 (or Azure Blob, when Azurite is installed) -> local, chained by
    get_output(); the bucket holds exactly the source's files."""
    local = ws.get_default_datastore()
    local.upload(str(source_files), target_path="raw", show_progress=False)
    up = DataTransferStep(
        "up",
        source_data_reference=DataReference(local, "raw", "raw"),
        destination_data_reference=DataReference(store, "lake", "lake/raw"),
    )
    down = DataTransferStep(
        "down",
        source_data_reference=up.get_output(),
        destination_data_reference=DataReference(local, "back", "back/raw"),
    )
    single = DataTransferStep(
        "single",
        source_data_reference=DataReference(store, "one", "lake/raw/sub/b.bin"),
        destination_data_reference=DataReference(local, "bfile", "single/b-copy.bin"),
    )
    single.run_after(up)
    run = submit(ws, [down, single])
    assert run.get_status() == "Finished", run.get_details()
    expected = listing(source_files)
    # The object store is read in place by the step (no download by the runtime).
    assert re.search(r"\[transfer\] \w+://\S+ \(3 file\(s\)\)", step_log(run, "down"))
    single_copy = Path(str(ws.path)) / "datastores" / local.name / "single" / "b-copy.bin"
    assert hashlib.md5(single_copy.read_bytes()).hexdigest() == expected["sub/b.bin"]
    store.download(str(tmp_path / "dl"), prefix="lake/raw", show_progress=False)
    assert listing(tmp_path / "dl" / "lake" / "raw") == expected
    back = Path(str(ws.path)) / "datastores" / local.name / "back" / "raw"
    assert listing(back) == expected
    log = step_log(run, "up")
    assert "3/3 files" in log and "uploaded and verified" in log and "peak_rss_mb=" in log


def test_a_destination_refusing_its_credentials_fails_in_one_line(
    ws: Workspace,
    moto: MotoS3,  # noqa: F811  # the fixture
    source_files: Path,
) -> None:
    ds = ws.get_default_datastore()
    ds.upload(str(source_files), target_path="raw", show_progress=False)
    wrong = "WrongSecretValue0123456789"
    bad = Datastore.register_s3(
        ws,
        "badkeys",
        moto.new_bucket(),
        endpoint_url=moto.url,
        access_key_id=moto.key_id,
        secret_access_key=wrong,
    )
    step = DataTransferStep(
        "refused",
        source_data_reference=DataReference(ds, "raw", "raw"),
        destination_data_reference=DataReference(bad, "lake", "lake/raw"),
    )
    run = submit(ws, [step])
    step_run = run.find_step_run("refused")[0]
    assert step_run.get_status() == "Failed"
    stderr = step_run.get_stderr_log()
    assert "DataTransferStep failed:" in stderr and "'badkeys'" in stderr and "refused" in stderr
    assert wrong not in stderr and "Traceback" not in stderr
    assert moto.filesystem().find(bad.bucket_name) == []


def test_a_file_whose_size_is_not_what_it_reads_fails_its_step(ws: Workspace) -> None:
    """A /proc file says 0 bytes and reads more: the copy's verification fails the step, and
    nothing appears at the destination."""
    proc = Datastore.register_local(ws, "proc", "/proc/self")
    ds = ws.get_default_datastore()
    step = DataTransferStep(
        "proc copy",
        source_data_reference=DataReference(proc, "status", "status"),
        destination_data_reference=DataReference(ds, "status", "copies/status"),
    )
    run = submit(ws, [step])
    step_run = run.find_step_run("proc copy")[0]
    assert step_run.get_status() == "Failed"
    assert "is incomplete: 0 bytes in the source" in step_run.get_stderr_log()
    assert "Traceback" not in step_run.get_stderr_log()
    assert not (Path(str(ws.path)) / "datastores" / ds.name / "copies").exists()


def test_a_datapath_parameter_chooses_the_source_at_submit_time(
    ws: Workspace, source_files: Path
) -> None:
    ds = ws.get_default_datastore()
    ds.upload(str(source_files), target_path="raw", show_progress=False)
    source = PipelineParameter("source", default_value=DataPath(ds, "raw/a.txt"))
    step = DataTransferStep(
        "pick",
        source_data_reference=(source, DataPathComputeBinding()),
        destination_data_reference=PipelineData("picked", datastore=ds),
    )
    run = Experiment(ws, "param").submit(
        Pipeline(ws, [step]), pipeline_parameters={"source": DataPath(ds, "raw/sub/deeper")}
    )
    assert run.wait_for_completion(show_output=False, raise_on_error=False) == "Finished"
    port = run.find_step_run("pick")[0].get_output_data("picked")
    root = Path(str(ws.path)) / "datastores" / ds.name
    assert listing(root / port.path_on_datastore) == listing(source_files / "sub" / "deeper")


def test_a_file_into_a_directory_keeps_its_name_and_types_are_checked(
    ws: Workspace, source_files: Path
) -> None:
    ds = ws.get_default_datastore()
    ds.upload(str(source_files), target_path="raw", show_progress=False)
    into = DataTransferStep(
        "into",
        source_data_reference=ds.path("raw/a.txt"),
        destination_data_reference=DataReference(ds, "dir", "into"),
        destination_reference_type="directory",
    )
    wrong = DataTransferStep(
        "wrong",
        source_data_reference=DataReference(ds, "rawdir", "raw"),
        destination_data_reference=DataReference(ds, "f", "wrong"),
        source_reference_type="file",
    )
    assert submit(ws, [into]).get_status() == "Finished"
    root = Path(str(ws.path)) / "datastores" / ds.name
    assert (root / "into" / "a.txt").read_text() == "alpha\n"
    run = submit(ws, [wrong])
    assert run.find_step_run("wrong")[0].get_status() == "Failed"
    details = run.find_step_run("wrong")[0].get_details()
    assert "source_reference_type is 'file', but the source" in str(details)
    assert not (root / "wrong").exists()


def test_a_destination_outside_its_datastore_is_refused_before_anything_runs(
    ws: Workspace,
) -> None:
    ds = ws.get_default_datastore()
    source = DataReference(ds, "raw", "raw")
    for path, says in [("../escape", "contains '..'"), ("/etc/copies", "is absolute")]:
        with pytest.raises(DatastorePathError, match=says):
            DataTransferStep(
                "escape",
                source_data_reference=source,
                destination_data_reference=DataReference(ds, "out", path),
            )
    with pytest.raises(DatastorePathError, match=r"contains '\.\.'"):
        DataTransferStep(
            "escape",
            source_data_reference=source,
            destination_data_reference=DataPath(ds, "a/../../b"),
        )
    with pytest.raises(ValueError, match="root of datastore"):
        DataTransferStep(
            "root", source_data_reference=source, destination_data_reference=ds.path("")
        )
    with pytest.raises(ValueError, match="overlaps the source 'raw'"):
        DataTransferStep(
            "into itself",
            source_data_reference=source,
            destination_data_reference=DataReference(ds, "inside", "raw/copy"),
        )
    with pytest.raises(ValueError, match="needs destination_data_reference"):
        DataTransferStep("none", source_data_reference=source)
    with pytest.raises(ValueError, match="possible values: 'file', 'directory'"):
        DataTransferStep(
            "t",
            source_data_reference=source,
            destination_data_reference=DataReference(ds, "o", "o"),
            source_reference_type="blob",
        )
    with pytest.raises(ValueError, match="PipelineParameter cannot be the destination"):
        DataTransferStep(
            "p",
            source_data_reference=source,
            destination_data_reference=PipelineParameter("dest", DataPath(ds, "x")),
        )
    with pytest.raises(ComputeTargetException, match="parallelism must be a positive int"):
        ComputeTarget.create(ws, "bad", TransferCompute.provisioning_configuration(parallelism=0))


def test_the_engine_refuses_an_escaping_destination_too(tmp_path: Path) -> None:
    """A step made some other way (a hand-written command) is checked by the engine."""
    source = tmp_path / "in.txt"
    source.write_text("x")
    env = dict(
        os.environ,
        AZUREML_DATAREFERENCE_src=str(source),
        AZUREML_DATAREFERENCE_out=str(tmp_path / "out"),
    )
    argv = [sys.executable, "-m", "headrace.engine.transferrun", "--source", "src"]
    argv += ["--output", "out", "--destination", "workspaceblobstore:../../etc/x"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert "DataTransferStep failed: The destination path '../../etc/x' contains '..'" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_verification_catches_a_bad_copy_of_real_files(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(200_000))
    target = tmp_path / "copy" / "target.bin"
    buffer = memoryview(bytearray(64 * 1024))
    stats = CopyStats()
    assert copy_file(source, target, buffer, checksum=True, stats=stats) == 200_000
    assert target.read_bytes() == source.read_bytes() and stats.files_done == 1
    digest = hashlib.sha1(source.read_bytes()).hexdigest()
    # One flipped byte in the copy: same size, other content.
    data = bytearray(target.read_bytes())
    data[1234] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(TransferError, match="does not match: SHA-1"):
        verify_copy(source, target, expected_size=200_000, copied=200_000, source_checksum=digest)
    # A truncated copy, and a source that grew while it was copied.
    target.write_bytes(source.read_bytes()[:1000])
    with pytest.raises(TransferError, match="incomplete"):
        verify_copy(source, target, expected_size=200_000, copied=200_000, source_checksum=None)
    with pytest.raises(TransferError, match="changed size while it was copied"):
        verify_copy(source, target, expected_size=100_000, copied=100_000, source_checksum=None)


def test_data_factory_attach_configuration_and_its_settings(ws: Workspace) -> None:
    config = DataFactoryCompute.attach_configuration(
        resource_group="rg", factory_name="adf", parallelism=4, verify="size"
    )
    target = ComputeTarget.attach(ws, "factory", config)
    assert type(target) is DataFactoryCompute and target.parallelism == 4
    assert target.serialize()["properties"]["factory_name"] == "adf"
    ds = ws.get_default_datastore()
    step = DataTransferStep(
        "configured",
        source_data_reference=DataReference(ds, "raw", "raw"),
        destination_data_reference=DataReference(ds, "out", "out").as_mount(),
        compute_target=target,
    )
    [node] = Pipeline(ws, [step]).graph.nodes
    assert node.step_kind == "transfer" and node.settings is not None
    assert (node.settings["parallelism"], node.settings["verify"]) == (4, "size")
    with pytest.raises(ComputeTargetException, match="verify must be 'checksum'"):
        ComputeTarget.attach(ws, "bad", DataFactoryCompute.attach_configuration(verify="md5"))


SDK_V1_SCRIPT = """
    from headrace.compat.azureml.core import Datastore, Experiment, Workspace
    from headrace.compat.azureml.core.compute import ComputeTarget, DataFactoryCompute
    from headrace.compat.azureml.data.data_reference import DataReference
    from headrace.compat.azureml.exceptions import ComputeTargetException
    from headrace.compat.azureml.pipeline.core import Pipeline
    from headrace.compat.azureml.pipeline.steps import DataTransferStep

    ws = Workspace.from_config()
    ds = ws.get_default_datastore()
    try:
        data_factory = DataFactoryCompute(ws, "adf")
    except ComputeTargetException:
        config = DataFactoryCompute.provisioning_configuration()
        data_factory = ComputeTarget.create(ws, "adf", config)
        data_factory.wait_for_completion()
    source = DataReference(datastore=ds, data_reference_name="src",
                           path_on_datastore="raw/a.txt")
    destination = DataReference(datastore=ds, data_reference_name="dst",
                                path_on_datastore="exported/a-copy.txt")
    step = DataTransferStep(name="transfer", source_data_reference=source,
                            destination_data_reference=destination,
                            compute_target=data_factory, source_reference_type="file",
                            destination_reference_type="file")
    run = Experiment(ws, "sdkv1").submit(Pipeline(workspace=ws, steps=[step]))
    print("status", run.wait_for_completion(show_output=False))
    print("type", type(DataFactoryCompute(ws, "adf")).__name__)
"""


def test_an_sdk_v1_script_through_the_compat_tree(
    ws: Workspace, source_files: Path, tmp_path: Path
) -> None:
    ws.get_default_datastore().upload(str(source_files), target_path="raw", show_progress=False)
    ws.write_config(path=str(tmp_path))
    script = tmp_path / "sdkv1.py"
    script.write_text(textwrap.dedent(SDK_V1_SCRIPT))
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "status Finished" in done.stdout and "type DataFactoryCompute" in done.stdout
    copied = Path(str(ws.path)) / "datastores" / "workspaceblobstore" / "exported" / "a-copy.txt"
    assert copied.read_text() == "alpha\n"
    assert isinstance(DataFactoryCompute(ws, "adf"), TransferCompute)
