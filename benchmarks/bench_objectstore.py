"""Upload and download through an S3 datastore against plain s3fs doing the same copy.

A real S3 server (moto_server on 127.0.0.1, authentication on) in the same run. Two data
sets: many small files (10,000 of 1 KB) and big files (1 GB as 16 files of 64 MB); --quick
uses 1,000 small files and 4 big ones. headrace: `Datastore.upload(folder, target_path)`
(SDK v1 default overwrite=False, so it lists the target first) and
`Datastore.download(folder, prefix)`; floor: `s3fs.S3FileSystem.put/get` with the same file
lists into another prefix. Each repetition interleaves the two; the ratio is throughput
(s3fs time / headrace time), target >= 0.8.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path

from benchmarks.common import Context, Outcome, Row, bench_workspace, median, quiet, spread

TARGET = 0.8
MB = 1024 * 1024


def _make_files(folder: Path, count: int, size: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    block = os.urandom(min(size, 4 * MB))
    paths = []
    for i in range(count):
        path = folder / f"d{i % 50:02d}" / f"f{i:05d}.bin"
        path.parent.mkdir(exist_ok=True)
        with open(path, "wb") as out:
            left = size
            while left > 0:
                out.write(block[: min(left, len(block))])
                left -= len(block)
        paths.append(path)
    return paths


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def run(ctx: Context) -> Outcome:
    from tests.objectstores import MotoS3

    from headrace import Datastore

    outcome = Outcome("objectstore", "S3 datastore upload/download vs plain s3fs")
    reps = ctx.reps(3, 1)
    sets = {
        "small files": (1_000 if ctx.quick else 10_000, 1024),
        "64 MB files": (4 if ctx.quick else 16, 64 * MB),
    }
    with bench_workspace(ctx, "objectstore") as bws:
        moto = MotoS3(bws.folder("moto") / "moto.log")
        try:
            fs = moto.filesystem()
            bucket = moto.new_bucket()
            with quiet():
                ds = Datastore.register_s3(
                    bws.ws,
                    "bench_s3",
                    bucket,
                    endpoint_url=moto.url,
                    access_key_id=moto.key_id,
                    secret_access_key=moto.secret,
                )
            for label, (count, size) in sets.items():
                source = bws.folder(f"src-{count}")
                files = _make_files(source, count, size)
                total = count * size
                ours: dict[str, list[float]] = {"upload": [], "download": []}
                plain: dict[str, list[float]] = {"upload": [], "download": []}
                for rep in range(reps):
                    tag = uuid.uuid4().hex[:8]
                    mine, theirs = f"hr-{tag}", f"fs-{tag}"
                    keys = [f"{bucket}/{theirs}/{p.relative_to(source).as_posix()}" for p in files]
                    first_ours = rep % 2 == 0  # alternate who goes first
                    up = [
                        ("ours", partial(ds.upload, str(source), mine, show_progress=False)),
                        ("plain", partial(fs.put, [str(p) for p in files], keys)),
                    ]
                    for who, action in up if first_ours else up[::-1]:
                        (ours if who == "ours" else plain)["upload"].append(_timed(action))
                    out_ours, out_plain = bws.folder(f"dl-hr-{tag}"), bws.folder(f"dl-fs-{tag}")
                    local = [str(out_plain / k.split("/", 2)[2]) for k in keys]
                    for path in local:
                        Path(path).parent.mkdir(parents=True, exist_ok=True)
                    down = [
                        ("ours", partial(ds.download, out_ours, mine, show_progress=False)),
                        ("plain", partial(fs.get, keys, local)),
                    ]
                    for who, action in down if first_ours else down[::-1]:
                        (ours if who == "ours" else plain)["download"].append(_timed(action))
                    got = sum(p.stat().st_size for p in (out_ours / mine).rglob("*") if p.is_file())
                    if got != total:
                        raise RuntimeError(f"downloaded {got} bytes of {total}")
                    shutil.rmtree(out_ours)
                    shutil.rmtree(out_plain)
                    fs.rm([f"{bucket}/{mine}", f"{bucket}/{theirs}"], recursive=True)
                for direction in ("upload", "download"):
                    t_ours, t_plain = median(ours[direction]), median(plain[direction])
                    ratio = t_plain / t_ours
                    # Small files are counted in files per second, big ones in MB/s.
                    amount, unit = (count, "files/s") if size < MB else (total / MB, "MB/s")
                    outcome.rows.append(
                        Row(
                            f"S3 {direction}, {count:,} {label} ({total / MB:,.0f} MB)",
                            round(amount / t_ours, 1),
                            unit,
                            round(amount / t_plain, 1),
                            "plain s3fs",
                            f">= {TARGET:.0%} of s3fs",
                            ratio >= TARGET,
                            ratio,
                        )
                    )
                    outcome.details.append(
                        f"{direction} {label}: headrace {spread(ours[direction], 1, ' s')}; "
                        f"s3fs {spread(plain[direction], 1, ' s')}"
                    )
        finally:
            moto.stop()
    outcome.details.append(
        "moto_server is a single Python process: both sides are bound by it, so these "
        "ratios measure headrace's overhead over s3fs, not S3's throughput."
    )
    return outcome
