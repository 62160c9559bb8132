"""DataTransferStep: memory while copying a big file, throughput, and many small files.

The issue's target: the step's memory stays under 200 MB while it copies a 2 GB file. The
source is a sparse file (`truncate`) on the workspace's local datastore; the copy is real
(2 GB written). Four transfers, each a one-step pipeline run by the agent:

- 2 GB file, local datastore -> local datastore (fixed destination path);
- 512 MB file, local datastore -> S3 and back (moto_server on 127.0.0.1): moto cannot take
  2 GB (it assembles a multipart object in memory when the upload completes, which outlasts
  the client's timeout, and the retry finds the parts gone); the step's memory does not
  grow with the file (8 MB parts, 4 MB reads), so the smaller file shows the same peak;
- 2,000 small files (4 KB), local -> local, on a `transfer` target with parallelism 8.

Memory is the peak RSS the step process reports for itself (`peak_rss_mb=` in its log,
`ru_maxrss`). Throughput is bytes (or files) over the step's run time (its record's start
and end, which include the runtime's commit of the output). Floors, measured in the same
run: `cp` of the same file (local), `s3fs.put` of the same file (S3), `shutil.copytree` of
the same folder, `s3fs.get` for S3 -> local. --quick uses 256 MB and 128 MB files and 300
small files.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path
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


def _transfer(
    bws: Any, name: str, source: Any, destination: Any, target: Any = None
) -> dict[str, Any]:
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


def _rows(
    label: str, result: dict[str, Any], size: int, floor: float, floor_label: str
) -> list[Row]:
    """The step's peak memory (against the target) and its MB/s (against a floor)."""
    return [
        Row(
            f"{label}: step peak RSS",
            round(result["rss"], 1),
            "MB",
            None,
            "",
            f"< {MEMORY_TARGET_MB} MB",
            result["rss"] < MEMORY_TARGET_MB,
        ),
        Row(
            f"{label}: throughput (verified)",
            round(size / MB / result["seconds"], 1),
            "MB/s",
            round(size / MB / floor, 1),
            floor_label,
            "info",
            None,
            floor / result["seconds"],
        ),
    ]


def _sparse_file(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["truncate", "-s", str(size), str(path)], check=True)
    return path


def run(ctx: Context) -> Outcome:
    from tests.objectstores import MotoS3

    from headrace import ComputeTarget, DataReference, Datastore, TransferCompute

    outcome = Outcome("transfer", "DataTransferStep: memory and throughput")
    size = (256 if ctx.quick else 2048) * MB
    s3_size = (128 if ctx.quick else 512) * MB
    small_count = 300 if ctx.quick else 2000
    results: dict[str, dict[str, Any]] = {}
    with bench_workspace(ctx, "transfer") as bws:
        store = bws.ws.get_default_datastore()
        root = bws.path / "datastores" / store.name
        floor = bws.folder("floor")

        # local -> local, against cp.
        big = _sparse_file(root / "big" / "big.bin", size)
        results["local -> local"] = local = _transfer(
            bws,
            "local",
            DataReference(store, "big", "big/big.bin"),
            DataReference(store, "copy", "copies/big.bin"),
        )
        cp = ["cp", "--sparse=never", str(big), str(floor / "big.bin")]
        cp_seconds = _timed(lambda: subprocess.run(cp, check=True))
        (floor / "big.bin").unlink()
        if (root / "copies" / "big.bin").stat().st_size != size:
            raise BenchError("the local copy has the wrong size")
        outcome.rows += _rows(
            f"{size // MB:,} MB file local -> local", local, size, cp_seconds, "cp"
        )

        # local -> S3 and S3 -> local (moto), against s3fs.put and s3fs.get.
        s3_file = _sparse_file(root / "s3" / "s3.bin", s3_size)
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
            lake = DataReference(s3, "lake", "lake/s3.bin")
            results["local -> S3"] = up = _transfer(
                bws, "up", DataReference(store, "s3src", "s3/s3.bin"), lake
            )
            results["S3 -> local"] = down = _transfer(
                bws, "down", lake, DataReference(store, "back", "back/s3.bin")
            )
            fs = moto.filesystem()
            key = f"{s3.bucket_name}/floor/s3.bin"
            put_seconds = _timed(lambda: fs.put(str(s3_file), key))
            get_seconds = _timed(lambda: fs.get(key, str(floor / "s3.bin")))
            if fs.info(f"{s3.bucket_name}/lake/s3.bin")["size"] != s3_size:
                raise BenchError("the S3 copy has the wrong size")
            if (root / "back" / "s3.bin").stat().st_size != s3_size:
                raise BenchError("the copy back from S3 has the wrong size")
        finally:
            moto.stop()
        outcome.rows += _rows(f"{s3_label} local -> S3", up, s3_size, put_seconds, "s3fs.put")
        outcome.rows += _rows(f"{s3_label} S3 -> local", down, s3_size, get_seconds, "s3fs.get")

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
        results["small files"] = small = _transfer(
            bws,
            "small",
            DataReference(store, "many", "many"),
            DataReference(store, "many_copy", "copies/many"),
            target,
        )
        tree_seconds = _timed(lambda: shutil.copytree(many, floor / "many"))
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
    for name, result in results.items():
        lines = [line for line in result["log"].splitlines() if "verified" in line]
        summary = "; ".join(lines) or "?"
        outcome.details.append(f"{name}: step {result['seconds']:.1f} s; {summary}")
    outcome.details.append(
        "A step's time is its record's start to end: process start, the copy with its "
        "read-back verification, publishing to the fixed destination (hard links on a local "
        "datastore; an upload on S3) and the runtime's commit of the output behind "
        "get_output() (a rename locally; on S3 a second upload, after the step). The floors "
        "copy once, without verification. The S3 source is read in place (one streamed GET)."
    )
    return outcome
