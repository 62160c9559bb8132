"""SDK v1's `partition_format` and `partition_by`, and ParallelRunStep's `partition_keys` over
them, shaped like the notebooks parallel-run/file-dataset-partition-per-folder and
parallel-run/tabular-dataset-partition-per-column (our own data and entry scripts)."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path
from typing import Any

import pytest

from headrace import Dataset, Experiment, Pipeline, PipelineData, Workspace
from headrace.compat.azureml.pipeline.steps import ParallelRunConfig, ParallelRunStep
from headrace.errors import UserError

# (user, season, genre) of each uploaded file, as the file-partition notebook lays them out.
FILES = [
    ("user1", "winter", "disco"),
    ("user1", "fall", "orchestra"),
    ("user2", "summer", "piano"),
    ("user3", "fall", "spirituality"),
    ("user4", "spring", "piano"),
    ("user4", "fall", "piano"),
]

# As the notebooks' scripts do: run(mini_batch, mini_batch_context), one row per item.
FILE_SIZES = textwrap.dedent(
    """
    import os

    def init():
        pass

    def run(mini_batch, mini_batch_context):
        key = mini_batch_context.partition_key_value
        total = sum(os.path.getsize(p) for p in mini_batch)
        return [
            f"{key['user']} {key['genres']} {os.path.basename(p)} {os.path.getsize(p)}/{total}"
            for p in mini_batch
        ]
    """
)

REVENUE = textwrap.dedent(
    """
    def init():
        pass

    def run(mini_batch, mini_batch_context):
        key = mini_batch_context.partition_key_value
        assert set(mini_batch["Store"]) == {key["Store"]}, key
        assert set(mini_batch["Brand"]) == {key["Brand"]}, key
        mini_batch["revenue"] = (mini_batch["Price"] * mini_batch["Quantity"]).sum()
        return mini_batch[["Store", "Brand", "Week", "revenue"]]
    """
)


def config(source: Path, script: str, **changes: Any) -> ParallelRunConfig:
    settings: dict[str, Any] = dict(
        environment=None,
        entry_script=script,
        source_directory=str(source),
        error_threshold=5,
        output_action="append_row",
        compute_target="local",
        node_count=1,
        process_count_per_node=2,
        run_invocation_timeout=60,
    )
    settings.update(changes)
    return ParallelRunConfig(**settings)


def rows_of(run: Any, step: str, name: str, tmp_path: Path) -> list[str]:
    step_run = run.find_step_run(step)[0]
    assert run.get_status() == "Finished", step_run.get_details().get("error")
    folder = Path(step_run.get_output_data("scores").download(tmp_path / "dl", show_progress=False))
    (found,) = folder.rglob(name)
    return found.read_text().splitlines()


def test_a_file_dataset_partitioned_per_folder_gives_one_mini_batch_per_partition(
    ws: Workspace, tmp_path: Path
) -> None:
    store = ws.get_default_datastore()
    for user, season, genre in FILES:
        folder = tmp_path / "test_files" / f"{user}-{season}"
        folder.mkdir(parents=True)
        (folder / f"{genre}.wav").write_bytes(b"x" * (len(genre) + len(season)))
        store.upload(
            str(folder),
            f"dataset_partition_test/{user}/{season}",
            overwrite=True,
            show_progress=False,
        )
    partitioned = Dataset.File.from_files(
        path=(store, "dataset_partition_test/*/*/*.wav"),
        partition_format="dataset_partition_test/{user}/{season}/{genres}.wav",
        validate=False,
    )
    assert partitioned.partition_keys == ["user", "season", "genres"]
    source = tmp_path / "scripts"
    source.mkdir()
    (source / "file_size.py").write_text(FILE_SIZES)
    step = ParallelRunStep(
        name="summarize-file-size",
        parallel_run_config=config(
            source,
            "file_size.py",
            partition_keys=["user", "genres"],
            append_row_file_name="file_size_outputs.txt",
        ),
        inputs=[partitioned.as_named_input("partitioned_file_input")],
        output=PipelineData("scores", datastore=store),
        allow_reuse=False,
    )
    run = Experiment(ws, "file-dataset-partition").submit(Pipeline(ws, [step]))
    run.wait_for_completion(show_output=False, raise_on_error=False)
    rows = rows_of(run, "summarize-file-size", "file_size_outputs.txt", tmp_path)
    # Files sorted by path; partitions in order of first appearance; user4's two piano
    # files (fall, spring) are one partition.
    assert rows == [
        "user1 orchestra orchestra.wav 13/13",
        "user1 disco disco.wav 11/11",
        "user2 piano piano.wav 11/11",
        "user3 spirituality spirituality.wav 16/16",
        "user4 piano piano.wav 9/20",
        "user4 piano piano.wav 11/20",
    ]
    with pytest.raises(UserError, match=r"partition_keys store are not keys of input"):
        ParallelRunStep(
            name="bad-keys",
            parallel_run_config=config(source, "file_size.py", partition_keys=["store"]),
            inputs=[partitioned.as_named_input("files")],
            output=PipelineData("out"),
        )


def test_a_table_partitioned_by_columns_gives_one_mini_batch_per_partition(
    ws: Workspace, tmp_path: Path
) -> None:
    store = ws.get_default_datastore()
    upload = tmp_path / "oj"
    upload.mkdir()
    lines = ["Store,Brand,Week,Price,Quantity"]
    for week in range(3):
        for shop in (2, 5):
            for brand in ("tropicana", "dominicks"):
                lines.append(f"{shop},{brand},{week},{1.5 + week},{10 * shop + week}")
    (upload / "oj_sales.csv").write_text("\n".join(lines) + "\n")
    store.upload_files(
        [str(upload / "oj_sales.csv")], str(upload), "oj_sales_data", True, show_progress=False
    )
    dataset = Dataset.Tabular.from_delimited_files(path=(store, "oj_sales_data/*.csv"))
    partitioned = dataset.partition_by(
        partition_keys=["Store", "Brand"],
        target=(store, "partition_by_key_res"),
        name="partitioned_oj_data",
        show_progress=False,
    )
    assert partitioned.partition_keys == ["Store", "Brand"]
    assert partitioned.name == "partitioned_oj_data"
    frame = partitioned.to_pandas_dataframe()
    assert len(frame) == 12 and sorted(set(frame["Brand"])) == ["dominicks", "tropicana"]
    written = Path(store.root) / "partition_by_key_res"
    listed = sorted(str(p.relative_to(written)) for p in written.rglob("*.parquet"))
    assert listed == [f"{s}/{b}/part-0.parquet" for s in (2, 5) for b in ("dominicks", "tropicana")]
    source = tmp_path / "scripts"
    source.mkdir()
    (source / "revenue.py").write_text(REVENUE)
    step = ParallelRunStep(
        name="summarize-revenue",
        parallel_run_config=config(
            source,
            "revenue.py",
            partition_keys=["Store", "Brand"],
            append_row_file_name="revenue_outputs.txt",
        ),
        inputs=[partitioned.as_named_input("partitioned_tabular_input")],
        output=PipelineData("scores", datastore=store),
        allow_reuse=False,
    )
    run = Experiment(ws, "tabular-dataset-partition").submit(Pipeline(ws, [step]))
    run.wait_for_completion(show_output=False, raise_on_error=False)
    rows = rows_of(run, "summarize-revenue", "revenue_outputs.txt", tmp_path)
    # One mini-batch per (Store, Brand): each row carries its partition's revenue.
    revenue = {2: 1.5 * 20 + 2.5 * 21 + 3.5 * 22, 5: 1.5 * 50 + 2.5 * 51 + 3.5 * 52}
    assert sorted(rows) == sorted(
        f"{shop} {brand} {week} {revenue[shop]}"
        for shop in (2, 5)
        for brand in ("tropicana", "dominicks")
        for week in range(3)
    )


def test_partition_format_values_become_columns_text_and_dates(
    ws: Workspace, tmp_path: Path
) -> None:
    base = tmp_path / "Accounts"
    for day, amount in (("2019/01/01", 5), ("2019/01/02", 7)):
        folder = base / day
        folder.mkdir(parents=True)
        (folder / "data.csv").write_text(f"amount\n{amount}\n")
    table = Dataset.Tabular.from_delimited_files(
        str(tmp_path / "Accounts" / "**" / "data.csv"),
        partition_format="/{Department}/{PartitionDate:yyyy/MM/dd}/data.csv",
    )
    assert table.partition_keys == ["Department", "PartitionDate"]
    frame = table.to_pandas_dataframe().sort_values("amount")
    assert frame["Department"].tolist() == ["Accounts", "Accounts"]
    assert [d.to_pydatetime() for d in frame["PartitionDate"]] == [
        dt.datetime(2019, 1, 1),
        dt.datetime(2019, 1, 2),
    ]
    assert frame["amount"].tolist() == [5, 7]
    with pytest.raises(UserError, match="does not name a key"):
        Dataset.File.from_files(str(base), partition_format="/{}/x")
    with pytest.raises(UserError, match="none of yyyy"):
        Dataset.File.from_files(str(base), partition_format="/{d:abc}/x")
