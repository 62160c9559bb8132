"""Datasets: reading a big CSV, take(1000), a FileDataset of 100,000 files as a step input,
and resolving a registered dataset for a step.

Data is generated under /tmp (a folder registered as a local datastore) and deleted at the
end. Rows:

- `to_pandas_dataframe()` of a 1 GiB CSV (256 MiB with --quick) against the floor
  `pyarrow.csv.read_csv(path).to_pandas()` on the same file, the two alternated, median of
  the repetitions. Target: within 1.2x.
- `take(1000).to_pandas_dataframe()` of the same dataset (streams the first blocks).
  Target: < 0.5 s.
- A FileDataset of 100,000 small files (20,000 with --quick) given to a step `as_mount()`:
  what the engine does to put it where the step reads it (`engine.datasets.materialize`:
  the datastore folder itself, no copy). Target: < 100 ms. Reported beside it: the reuse
  fingerprint of the same input (a stat of every file, which a DataReference of the folder
  pays too), and a glob over the same files (a folder of links).
- Resolving a registered dataset for a step: the engine's work per step for a dataset input
  (`planning.resolve_inputs` with the dataset's identity, `materialize`, and the lineage
  row), a registered 1-file tabular dataset, median per step. Target: < 10 ms. Reported
  beside it: the same pipeline of 8 chained steps run end to end with and without the
  dataset input, per step.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    Context,
    Outcome,
    Row,
    bench_workspace,
    median,
    run_pipeline,
    spread,
    write_script,
)

READ_RATIO = 1.2
TAKE_SECONDS = 0.5
MOUNT_MS = 100.0
RESOLVE_MS = 10.0


def make_csv(path: Path, size: int) -> int:
    """A CSV of about `size` bytes (int, float, text and bool columns); returns its rows."""
    import numpy as np
    import pyarrow as pa
    from pyarrow import csv

    rng = np.random.default_rng(7)
    n = 200_000
    chunk = pa.table(
        {
            "id": np.arange(n, dtype=np.int64),
            "x": rng.random(n),
            "y": rng.normal(size=n),
            "name": pa.array([f"name-{i % 9973}" for i in range(n)]),
            "flag": rng.random(n) < 0.5,
        }
    )
    sink = pa.BufferOutputStream()
    csv.write_csv(chunk, sink)
    data = sink.getvalue().to_pybytes()
    header, body = data.split(b"\n", 1)
    rows = 0
    with path.open("wb") as out:
        out.write(header + b"\n")
        while out.tell() < size:
            out.write(body)
            rows += n
    return rows


def make_files(folder: Path, count: int) -> None:
    for i in range(count):
        sub = folder / f"d{i // 1000:03d}"
        if i % 1000 == 0:
            sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i:06d}.txt").write_bytes(b"x" * 32)


def _reads(ctx: Context, outcome: Outcome, store: Any, csv_path: Path) -> None:
    from pyarrow import csv

    from headrace import Dataset

    reps = ctx.reps(3, 1)
    dataset = Dataset.Tabular.from_delimited_files((store, csv_path.name))
    floor, ours = [], []
    with csv_path.open("rb") as warm:  # into the page cache: neither side reads the disk
        while warm.read(1 << 24):
            pass

    def ours_once() -> int:
        start = time.perf_counter()
        frame = dataset.to_pandas_dataframe()
        ours.append(time.perf_counter() - start)
        return len(frame)

    def floor_once() -> None:
        start = time.perf_counter()
        frame = csv.read_csv(str(csv_path)).to_pandas()
        floor.append(time.perf_counter() - start)
        del frame

    for rep in range(reps):  # alternated, each going first in turn
        if rep % 2:
            rows = ours_once()
            floor_once()
        else:
            floor_once()
            rows = ours_once()
    ratio = median(ours) / median(floor)
    size_mib = csv_path.stat().st_size / (1 << 20)
    outcome.rows.append(
        Row(
            f"to_pandas_dataframe() of a {size_mib:.0f} MiB CSV dataset",
            median(ours),
            "s",
            median(floor),
            "pyarrow.csv.read_csv().to_pandas()",
            f"<= {READ_RATIO}x the floor",
            ratio <= READ_RATIO,
            ratio,
        )
    )
    outcome.details.append(
        f"{rows:,} rows; to_pandas_dataframe {spread(ours, 1, ' s')}; "
        f"pyarrow floor {spread(floor, 1, ' s')}"
    )
    takes = []
    for _ in range(ctx.reps(5, 3)):
        start = time.perf_counter()
        head = dataset.take(1000).to_pandas_dataframe()
        takes.append(time.perf_counter() - start)
    assert len(head) == 1000
    outcome.rows.append(
        Row(
            f"take(1000).to_pandas_dataframe() of the {size_mib:.0f} MiB CSV",
            median(takes),
            "s",
            None,
            "",
            f"< {TAKE_SECONDS} s",
            median(takes) < TAKE_SECONDS,
        )
    )


def _mount(ctx: Context, outcome: Outcome, bws: Any, store: Any, count: int) -> None:
    from headrace import Dataset
    from headrace.engine.datasets import input_identity, materialize

    ws = bws.ws.backend.store
    folder = Dataset.File.from_files((store, "many"), validate=False)._definition
    # A glob over the first 10,000 files: a folder of links, one per matched file.
    globbed = Dataset.File.from_files((store, "many/d00*/*.txt"), validate=False)._definition
    target = bws.folder("mounts")
    mounts, identities, links = [], [], []
    for rep in range(ctx.reps(5, 3)):
        start = time.perf_counter()
        path, _roots = materialize(ws, folder, target / f"m{rep}", "mount")
        mounts.append(time.perf_counter() - start)
        start = time.perf_counter()
        input_identity(ws, folder)
        identities.append(time.perf_counter() - start)
    assert sum(len(f) for _, _, f in os.walk(path)) == count
    start = time.perf_counter()
    linked, _roots = materialize(ws, globbed, target / "glob", "mount")
    links.append(time.perf_counter() - start)
    linked_count = sum(len(f) for _, _, f in os.walk(linked))
    files = ws.datastore_files(store.name)
    start = time.perf_counter()
    files.fingerprint("many")
    reference = time.perf_counter() - start
    outcome.rows.append(
        Row(
            f"FileDataset of {count:,} files as_mount(): putting it where the step reads it",
            median(mounts) * 1000,
            "ms",
            None,
            "",
            f"no copy, < {MOUNT_MS:g} ms",
            median(mounts) * 1000 < MOUNT_MS and Path(path) == files.local_path("many"),
        )
    )
    outcome.rows.append(
        Row(
            f"the same input's reuse fingerprint (a stat of each of the {count:,} files)",
            median(identities) * 1000,
            "ms",
            reference * 1000,
            "a DataReference of the folder",
            "",
            None,
            median(identities) / reference,
        )
    )
    outcome.details.append(
        f"mount {spread(mounts, 1000, ' ms')} (the step gets the datastore folder itself); "
        f"fingerprint {spread(identities, 1000, ' ms')}; a glob (`many/d00*/*.txt`) makes a "
        f"folder of {linked_count:,} links: {links[0] * 1000:.0f} ms "
        f"({links[0] / linked_count * 1e6:.0f} µs a link on this disk)"
    )


RESOLVE_STEP = "import sys\n"


def _resolve(ctx: Context, outcome: Outcome, bws: Any, store: Any, csv_small: str) -> None:
    from headrace import Dataset, Pipeline, PythonScriptStep, StepSequence
    from headrace.engine.planning import input_datasets, resolve_inputs
    from headrace.engine.runtime import _dataset_input  # what prepare() calls per input
    from headrace.store.dataset_queries import lineage_rows

    registered = Dataset.Tabular.from_delimited_files((store, csv_small)).register(bws.ws, "small")
    src = bws.folder("src-resolve")
    write_script(src, "step.py", RESOLVE_STEP)

    def pipeline(with_input: bool, count: int = 8) -> Any:
        steps = [
            PythonScriptStep(
                "step.py",
                name=f"s{i}",
                inputs=[Dataset.get_by_name(bws.ws, "small").as_named_input("t")]
                if with_input
                else [],
                source_directory=str(src),
                allow_reuse=False,
            )
            for i in range(count)
        ]
        return Pipeline(bws.ws, [StepSequence(steps)])

    ws = bws.ws.backend.store
    node_graph = _graph_of(pipeline(True, 1))
    node = node_graph.nodes[0]
    folder = bws.folder("resolve")
    per_step = []
    for rep in range(ctx.reps(50, 20)):
        start = time.perf_counter()
        inputs, _identities = resolve_inputs(ws, node_graph, node, {}, {}, store.name)
        _dataset_input(ws, inputs[0], folder / f"w{rep}")
        lineage_rows(input_datasets(node_graph, node, {}), "consumed", "s", "p")
        per_step.append(time.perf_counter() - start)
    outcome.rows.append(
        Row(
            "resolving a registered dataset input, per step (identity, mount, lineage row)",
            median(per_step) * 1000,
            "ms",
            None,
            "",
            f"< {RESOLVE_MS:g} ms",
            median(per_step) * 1000 < RESOLVE_MS,
        )
    )
    plain, fed = [], []
    for _ in range(ctx.reps(3, 1)):
        plain.append(run_pipeline(bws, pipeline(False))[0])
        fed.append(run_pipeline(bws, pipeline(True))[0])
    added = (median(fed) - median(plain)) / 8 * 1000
    outcome.details.append(
        f"resolve {spread(per_step, 1000, ' ms')} ({registered.id}); 8 chained steps end to end: "
        f"with the dataset input {spread(fed, 1, ' s')}, without {spread(plain, 1, ' s')}: "
        f"{added:.1f} ms a step (whole runs on a shared machine: noisy)"
    )


def _graph_of(pipeline: Any) -> Any:
    """The pure-data graph of a pipeline, as submit builds it."""
    return pipeline.graph


def run(ctx: Context) -> Outcome:
    from headrace import Datastore

    outcome = Outcome("datasets", "Datasets: reading, take, a 100,000-file mount, resolving")
    data = Path(tempfile.mkdtemp(prefix="headrace-bench-datasets-", dir="/tmp"))
    try:
        big = data / "big.csv"
        make_csv(big, (256 << 20) if ctx.quick else (1 << 30))
        (data / "small.csv").write_text("a,b\n1,2\n3,4\n")
        count = 20_000 if ctx.quick else 100_000
        make_files(data / "many", count)
        with bench_workspace(ctx, "datasets") as bws:
            store = Datastore.register_local(bws.ws, "benchdata", str(data))
            _reads(ctx, outcome, store, big)
            _mount(ctx, outcome, bws, store, count)
            _resolve(ctx, outcome, bws, store, "small.csv")
    finally:
        shutil.rmtree(data, ignore_errors=True)
    return outcome
