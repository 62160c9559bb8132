"""DataTransferStep: memory while copying a big file, throughput, and many small files.

The issue's target: the step's memory stays under 200 MB while it copies a 2 GB file. The
source is a sparse file (`truncate`) on the workspace's local datastore; the copy is real
(2 GB written). Three transfers, each a one-step pipeline run by the agent:

- 2 GB file, local datastore -> local datastore (fixed destination path);
- 512 MB file, local datastore -> S3 (moto_server on 127.0.0.1): moto cannot take 2 GB (it
  assembles a multipart object in memory when the upload completes, which outlasts the
  client's timeout, and the retry finds the parts gone); the step's memory does not grow
  with the file (parts of 8 MB), so the smaller file shows the same peak;
- 2,000 small files (4 KB), local -> local, on a `transfer` target with parallelism 8.

Memory is the peak RSS the step process reports for itself (`peak_rss_mb=` in its log,
`ru_maxrss`). Throughput is bytes (or files) over the step's run time (its record's start
and end, which include the runtime's commit of the output). Floors, measured in the same
run: `cp` of the same file (local), `s3fs.put` of the same file (S3), `shutil.copytree` of
the same folder. --quick uses 256 MB and 128 MB files and 300 small files.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from typing import Any

from benchmarks.common import (
    BenchError,
    Context,
    Outcome,
    Row,
    bench_workspace,
    quiet,
    run_pipeline,
    step_records,
    step_stdout,
)

MB = 1024 * 1024
MEMORY_TARGET_MB = 200
_PEAK = re.compile(r"peak_rss_mb=([\d.]+)")


def _transfer(bws: Any, name: str, source: Any, destination: Any, target: Any = None) -> dict:
    """Run one DataTransferStep; its seconds (step record), peak RSS and log."""
    from headrace import DataTransferStep, Pipeline

    step = DataTransferStep(
        name,
        source_data_reference=source,
        destination_data_reference=destination,
        compute_target=target,
        allow_reuse=False,
    )
    with quiet():
        pipeline = Pipeline(bws.ws, [step])
    _, run, _ = run_pipeline(bws, pipeline)
    (record,) = step_records(bws, run.id)
    log = step_stdout(bws, record.id)
    found = _PEAK.search(log)
    if found is None:
        raise BenchError(f"{name}: no peak_rss_mb in the step's log:\n{log[-2000:]}")
    seconds = (record.ended_at - record.started_at).total_seconds()
    return {"seconds": seconds, "rss": float(found.group(1)), "log": log}


def _timed(action: Any) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def run(ctx: Context) -> Outcome:
    from tests.objectstores import MotoS3

    from headrace import ComputeTarget, DataReference, Datastore, TransferCompute

    outcome = Outcome("transfer", "DataTransferStep: memory and throughput")
    size = (256 if ctx.quick else 2048) * MB
    s3_size = (128 if ctx.quick else 512) * MB
    small_count = 300 if ctx.quick else 2000
    label = f"{size // MB:,} MB file"
    with bench_workspace(ctx, "transfer") as bws:
        store = bws.ws.get_default_datastore()
        root = bws.path / "datastores" / store.name
        big = root / "big" / "big.bin"
        big.parent.mkdir(parents=True)
        subprocess.run(["truncate", "-s", str(size), str(big)], check=True)
        source = DataReference(store, "big", "big/big.bin")

        # local -> local, against cp.
        local = _transfer(bws, "local", source, DataReference(store, "copy", "copies/big.bin"))
        floor_file = bws.folder("floor") / "big.bin"
        cp_seconds = _timed(
            lambda: subprocess.run(["cp", "--sparse=never", str(big), str(floor_file)], check=True)
        )
        floor_file.unlink()
        if (root / "copies" / "big.bin").stat().st_size != size:
            raise BenchError("the local copy has the wrong size")
        outcome.rows += [
            Row(
                f"{label} local -> local: step peak RSS",
                round(local["rss"], 1),
                "MB",
                None,
                "",
                f"< {MEMORY_TARGET_MB} MB",
                local["rss"] < MEMORY_TARGET_MB,
            ),
            Row(
                f"{label} local -> local: throughput (SHA-1 verified)",
                round(size / MB / local["seconds"], 1),
                "MB/s",
                round(size / MB / cp_seconds, 1),
                "cp",
                "info",
                None,
                cp_seconds / local["seconds"],
            ),
        ]

        # local -> S3 (moto), against s3fs.put.
        s3_file = root / "s3" / "s3.bin"
        s3_file.parent.mkdir(parents=True)
        subprocess.run(["truncate", "-s", str(s3_size), str(s3_file)], check=True)
        s3_source = DataReference(store, "s3src", "s3/s3.bin")
        s3_label = f"{s3_size // MB:,} MB file"
        moto = MotoS3(bws.folder("moto") / "moto.log")
        try:
            with quiet():
                s3 = Datastore.register_s3(
                    bws.ws,
                    "bench_s3",
                    moto.new_bucket(),
                    endpoint_url=moto.url,
                    access_key_id=moto.key_id,
                    secret_access_key=moto.secret,
                )
            up = _transfer(bws, "up", s3_source, DataReference(s3, "lake", "lake/s3.bin"))
            fs = moto.filesystem()
            key = f"{s3.bucket_name}/floor/s3.bin"
            put_seconds = _timed(lambda: fs.put(str(s3_file), key))
            if fs.info(f"{s3.bucket_name}/lake/s3.bin")["size"] != s3_size:
                raise BenchError("the S3 copy has the wrong size")
        finally:
            moto.stop()
        outcome.rows += [
            Row(
                f"{s3_label} local -> S3: step peak RSS",
                round(up["rss"], 1),
                "MB",
                None,
                "",
                f"< {MEMORY_TARGET_MB} MB",
                up["rss"] < MEMORY_TARGET_MB,
            ),
            Row(
                f"{s3_label} local -> S3: throughput",
                round(s3_size / MB / up["seconds"], 1),
                "MB/s",
                round(s3_size / MB / put_seconds, 1),
                "s3fs.put",
                "info",
                None,
                put_seconds / up["seconds"],
            ),
        ]

        # Many small files, local -> local, against copytree.
        many = root / "many"
        block = bytes(range(256)) * 16  # 4 KB
        for i in range(small_count):
            path = many / f"d{i % 20:02d}" / f"f{i:05d}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(block)
        with quiet():
            target = ComputeTarget.create(
                bws.ws, "mover", TransferCompute.provisioning_configuration(parallelism=8)
            )
        small = _transfer(
            bws,
            "small",
            DataReference(store, "many", "many"),
            DataReference(store, "many_copy", "copies/many"),
            target,
        )
        tree_seconds = _timed(lambda: shutil.copytree(many, bws.folder("floor") / "many"))
        copied = sum(1 for p in (root / "copies" / "many").rglob("*") if p.is_file())
        if copied != small_count:
            raise BenchError(f"copied {copied} small files of {small_count}")
        outcome.rows.append(
            Row(
                f"{small_count:,} files of 4 KB local -> local (parallelism 8)",
                round(small_count / small["seconds"], 1),
                "files/s",
                round(small_count / tree_seconds, 1),
                "shutil.copytree",
                "info",
                None,
                tree_seconds / small["seconds"],
            )
        )
    for name, result in (("local", local), ("S3", up), ("small files", small)):
        lines = [line for line in result["log"].splitlines() if "copied and verified" in line]
        outcome.details.append(
            f"{name}: {lines[-1] if lines else '?'}; step {result['seconds']:.1f} s"
        )
    outcome.details.append(
        "The step's time includes writing the copy twice for a fixed destination: the output "
        "behind get_output() and the destination path (hard links on a local datastore, a "
        "second upload on S3, plus the runtime's upload of the output after the step). The "
        "floors copy once, without verification."
    )
    return outcome
