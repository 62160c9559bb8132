"""1 GB of PipelineData handed from one step to the next on the local datastore.

The producer writes 1 GiB of real data (a 16 MiB non-zero buffer written 64 times with
os.write: every block is allocated, nothing sparse) and fsyncs it, so the hand-over is not
measured while the kernel still flushes the producer's gigabyte. It prints the file's inode
and, as its last statement, the wall time; the consumer prints the wall time as its first
statement, then the inode, device, size and path of its input. Hand-over = consumer start -
producer end. Added time = hand-over with 1 GiB - hand-over with a 1 KiB file (same
pipeline). No copy = same (device, inode) on both sides, and the consumer's path is the
producer's output path on the datastore. Each 1 GiB output is deleted right after its
repetition. For scale, the cost of copying instead is measured on 64 MiB and scaled to 1 GiB
(a real 1 GiB copy would only add write load to a shared disk).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    BenchError,
    BenchWorkspace,
    Context,
    Outcome,
    Row,
    bench_workspace,
    median,
    run_pipeline,
    spread,
    step_records,
    step_stdout,
    write_script,
)

GIB = 1 << 30
TINY = 1024
TARGET_MS = 50.0

PRODUCER = """\
import os, sys, time
out = sys.argv[sys.argv.index("--out") + 1]
size = int(sys.argv[sys.argv.index("--size") + 1])
os.makedirs(out, exist_ok=True)
path = os.path.join(out, "data.bin")
block = memoryview(bytes(range(1, 256)) * ((16 << 20) // 255 + 1))[: 16 << 20]
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
left = size
while left:
    left -= os.write(fd, block[: min(left, len(block))])
os.fsync(fd)
os.close(fd)
st = os.stat(path)
print(f"ino={st.st_ino} dev={st.st_dev} size={st.st_size} path={path}")
print(f"end={time.time():.6f}", flush=True)
"""

CONSUMER = """\
import time
start = time.time()
import os, sys
inp = sys.argv[sys.argv.index("--inp") + 1]
size = int(sys.argv[sys.argv.index("--size") + 1])
path = os.path.join(inp, "data.bin")
st = os.stat(path)
print(f"start={start:.6f}")
print(f"ino={st.st_ino} dev={st.st_dev} size={st.st_size} path={path}", flush=True)
if st.st_size != size:
    sys.exit(f"expected {size} bytes, found {st.st_size}")
"""


def pipeline(bws: BenchWorkspace, size: int, token: str) -> Any:
    from headrace import Pipeline, PipelineData, PythonScriptStep

    src = bws.root / "src-handover"
    write_script(src, "produce.py", PRODUCER)
    write_script(src, "consume.py", CONSUMER)
    data = PipelineData("big")
    produce = PythonScriptStep(
        "produce.py",
        name="produce",
        arguments=["--token", token, "--size", str(size), "--out", data],
        outputs=[data],
        source_directory=str(src),
    )
    consume = PythonScriptStep(
        "consume.py",
        name="consume",
        arguments=["--token", token, "--size", str(size), "--inp", data],
        inputs=[data],
        source_directory=str(src),
    )
    return Pipeline(bws.ws, steps=[produce, consume])


def _field(text: str, name: str) -> str:
    match = re.search(rf"{name}=(\S+)", text)
    if not match:
        raise BenchError(f"no {name}= in step output: {text!r}")
    return match.group(1)


def one(bws: BenchWorkspace, size: int, token: str) -> dict[str, Any]:
    seconds, run, _ = run_pipeline(bws, pipeline(bws, size, token))
    steps = {s.name: s for s in step_records(bws, run.id)}
    made, used = step_stdout(bws, steps["produce"].id), step_stdout(bws, steps["consume"].id)
    output = steps["produce"].outputs["big"]
    final = Path(bws.ws.backend.datastore_root(output["datastore"])) / output["path"] / "data.bin"
    return {
        "total": seconds,
        "gap": float(_field(used, "start")) - float(_field(made, "end")),
        "same_inode": (_field(made, "ino"), _field(made, "dev"))
        == (_field(used, "ino"), _field(used, "dev")),
        "same_path": Path(_field(used, "path")) == final,
        "size": int(_field(used, "size")),
        "final": final,
    }


def copy_cost(source: Path, scratch: Path, size: int = 64 << 20) -> float:
    """Seconds to copy (and fsync) 1 GiB, from copying the first `size` bytes of `source`."""
    start = time.perf_counter()
    with source.open("rb") as src, scratch.open("wb") as dst:
        dst.write(src.read(size))
        dst.flush()
        os.fsync(dst.fileno())
    seconds = time.perf_counter() - start
    scratch.unlink()
    return seconds * GIB / size


def run(ctx: Context) -> Outcome:
    outcome = Outcome("handover", "1 GiB of PipelineData handed to the next step")
    reps, tiny_reps = ctx.reps(3, 1), ctx.reps(3, 1)
    big: list[dict[str, Any]] = []
    tiny: list[dict[str, Any]] = []
    copy_seconds: float | None = None
    with bench_workspace(ctx, "handover") as bws:
        one(bws, TINY, "warm-up")
        for rep in range(reps):
            for extra in range(tiny_reps):
                tiny.append(one(bws, TINY, f"tiny-{rep}-{extra}"))
            result = one(bws, GIB, f"big-{rep}")
            big.append(result)
            if rep == 0:
                copy_seconds = copy_cost(result["final"], bws.root / "copy.bin")
            shutil.rmtree(result["final"].parent)  # free the 1 GiB now
    gap_big, gap_tiny = median([r["gap"] for r in big]), median([r["gap"] for r in tiny])
    added_ms = (gap_big - gap_tiny) * 1000
    no_copy = all(r["same_inode"] and r["same_path"] and r["size"] == GIB for r in big)
    outcome.rows.append(
        Row(
            "1 GiB PipelineData hand-over (producer end → consumer start)",
            gap_big * 1000,
            "ms",
            gap_tiny * 1000,
            "same with 1 KiB",
            f"no copy, < {TARGET_MS:g} ms added",
            no_copy and added_ms < TARGET_MS,
            gap_big / gap_tiny,
        )
    )
    outcome.details.append(
        f"hand-over 1 GiB {spread([r['gap'] for r in big], 1000, ' ms')}; 1 KiB "
        f"{spread([r['gap'] for r in tiny], 1000, ' ms')}; added {added_ms:.1f} ms"
    )
    outcome.details.append(
        f"no copy: consumer saw the producer's inode on the same device in "
        f"{sum(r['same_inode'] for r in big)}/{len(big)} runs, at the producer's datastore "
        f"output path in {sum(r['same_path'] for r in big)}/{len(big)}, size {GIB} bytes in "
        f"{sum(r['size'] == GIB for r in big)}/{len(big)}"
    )
    outcome.details.append(
        f"whole 2-step run, submit → end: 1 GiB {spread([r['total'] for r in big], 1, ' s')}, "
        f"1 KiB {spread([r['total'] for r in tiny], 1, ' s')} (the difference is the producer "
        "writing 1 GiB, which is the script's own work)"
    )
    if copy_seconds is not None:
        outcome.details.append(
            f"for scale: a copy instead of a hand-over would add about "
            f"{copy_seconds * 1000:.0f} ms (copy + fsync of 64 MiB of it, times 16)"
        )
    return outcome
