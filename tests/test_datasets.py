"""Datasets as SDK v1 code uses them: factories, registration and versions, reading, the
transforms, mount and download, and the bad inputs each with a clear error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from headrace import (
    ConflictError,
    Dataset,
    DatasetFormatError,
    DatasetNotFoundError,
    DatasetPathError,
    DataType,
    FileDataset,
    TabularDataset,
    Workspace,
)

CSV = "name,age,score\nann,31,1.5\nbob,42,2.5\ncid,27,3.0\ndee,55,4.5\n"


@pytest.fixture
def store(ws: Workspace, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The default datastore with people.csv, a few images in folders, and a parquet file."""
    ds = ws.get_default_datastore()
    data = tmp_path / "upload"
    (data / "tables").mkdir(parents=True)
    (data / "tables" / "people.csv").write_text(CSV)
    (data / "tables" / "more.csv").write_text("name,age,score\neve,19,5.0\n")
    for sub in ("a", "b/c"):
        (data / "images" / sub).mkdir(parents=True)
        (data / "images" / sub / "x.png").write_bytes(b"png" + sub.encode())
        (data / "images" / sub / "notes.txt").write_text("not an image")
    ds.upload(str(data), target_path="", overwrite=True, show_progress=False)
    return ds


def test_file_dataset_matches_globs_on_a_datastore(store) -> None:  # type: ignore[no-untyped-def]
    pngs = Dataset.File.from_files(path=[(store, "images/**/*.png")])
    assert isinstance(pngs, FileDataset)
    assert pngs.to_path() == ["/a/x.png", "/b/c/x.png"]
    top = Dataset.File.from_files(store.path("images/*/x.png"))
    assert top.to_path() == ["/a/x.png"]
    one = Dataset.File.from_files((store, "tables/people.csv"))
    assert one.to_path() == ["/people.csv"]


def test_a_path_that_matches_nothing_is_refused_at_definition_naming_the_pattern(
    store,  # type: ignore[no-untyped-def]
) -> None:
    with pytest.raises(DatasetPathError, match=r"images/\*\*/\*\.jpg.*matches no file"):
        Dataset.File.from_files(path=[(store, "images/**/*.jpg")])
    with pytest.raises(DatasetPathError, match=r"nothing/here\.csv"):
        Dataset.Tabular.from_delimited_files((store, "nothing/here.csv"))
    # validate=False defers the check to reading, as in SDK v1
    later = Dataset.File.from_files((store, "later/*.csv"), validate=False)
    with pytest.raises(DatasetPathError, match="later"):
        later.to_path()


def test_tabular_reads_with_types_header_and_separator(store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    people = Dataset.Tabular.from_delimited_files(
        (store, "tables/people.csv"), set_column_types={"age": DataType.to_float()}
    )
    assert isinstance(people, TabularDataset)
    df = people.to_pandas_dataframe()
    assert list(df.columns) == ["name", "age", "score"]
    assert df["age"].dtype.kind == "f" and df["age"].tolist() == [31.0, 42.0, 27.0, 55.0]
    both = Dataset.Tabular.from_delimited_files((store, "tables/*.csv"))
    assert sorted(both.to_pandas_dataframe()["name"]) == ["ann", "bob", "cid", "dee", "eve"]
    semi = tmp_path / "semi.txt"
    semi.write_text("1;2\n3;4\n")
    raw = Dataset.Tabular.from_delimited_files(str(semi), separator=";", header=False)
    assert raw.to_pandas_dataframe().to_dict("list") == {"Column1": [1, 3], "Column2": [2, 4]}
    codes = tmp_path / "codes.csv"
    codes.write_text("code,n\n007,1\n042,2\n")
    text = Dataset.Tabular.from_delimited_files(
        str(codes), infer_column_types=False, set_column_types={"n": DataType.to_long()}
    )
    assert text.to_pandas_dataframe().to_dict("list") == {"code": ["007", "042"], "n": [1, 2]}
    with pytest.raises(ValueError, match="partition_format must be text with at least one"):
        Dataset.Tabular.from_delimited_files(str(codes), partition_format="a.csv")
    unfit = Dataset.Tabular.from_delimited_files(str(codes), partition_format="/{x}/a.csv")
    with pytest.raises(ValueError, match=r"does not fit partition_format '/\{x\}/a\.csv'"):
        unfit.to_pandas_dataframe()


def test_transforms(store) -> None:  # type: ignore[no-untyped-def]
    people = Dataset.Tabular.from_delimited_files((store, "tables/people.csv"))
    assert people.take(2).to_pandas_dataframe()["name"].tolist() == ["ann", "bob"]
    assert people.skip(3).to_pandas_dataframe()["name"].tolist() == ["dee"]
    assert people.skip(1).take(2).to_pandas_dataframe()["name"].tolist() == ["bob", "cid"]
    assert list(people.keep_columns(["name"]).to_pandas_dataframe().columns) == ["name"]
    assert list(people.drop_columns("score").to_pandas_dataframe().columns) == ["name", "age"]
    first, second = people.random_split(0.5, seed=7)
    a = first.to_pandas_dataframe()["name"].tolist()
    b = second.to_pandas_dataframe()["name"].tolist()
    assert sorted(a + b) == ["ann", "bob", "cid", "dee"] and not set(a) & set(b)
    assert first.to_pandas_dataframe()["name"].tolist() == a  # the same seed, the same rows
    parquet = people.to_parquet_files()
    assert [p.endswith(".parquet") for p in parquet.to_path()] == [True]
    again = Dataset.Tabular.from_parquet_files(parquet.download()[0])
    assert again.to_pandas_dataframe()["age"].tolist() == [31, 42, 27, 55]
    with pytest.raises(DatasetFormatError, match="no column 'nope'"):
        people.keep_columns(["nope"]).to_pandas_dataframe()


def test_json_lines(tmp_path: Path) -> None:
    lines = tmp_path / "rows.jsonl"
    lines.write_text('{"a": 1, "b": "x"}\n{"a": 2, "b": "y"}\n')
    rows = Dataset.Tabular.from_json_lines_files(str(lines))
    assert rows.to_pandas_dataframe().to_dict("list") == {"a": [1, 2], "b": ["x", "y"]}


def test_ragged_rows_and_wrong_types_name_the_file_and_the_fix(tmp_path: Path) -> None:
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(DatasetFormatError, match=r"ragged.csv.*Expected 2 columns.*separator"):
        Dataset.Tabular.from_delimited_files(str(ragged)).to_pandas_dataframe()
    typed = tmp_path / "typed.csv"
    typed.write_text("a,b\n1,x\n2,y\n")
    wrong = Dataset.Tabular.from_delimited_files(
        str(typed), set_column_types={"b": DataType.to_long()}
    )
    with pytest.raises(DatasetFormatError, match=r"typed.csv.*'x'.*set_column_types"):
        wrong.to_pandas_dataframe()
    missing = Dataset.Tabular.from_delimited_files(
        str(typed), set_column_types={"c": DataType.to_long()}
    )
    with pytest.raises(DatasetFormatError, match="column 'c'"):
        missing.to_pandas_dataframe()


def test_register_versions_and_lookups(ws: Workspace, store) -> None:  # type: ignore[no-untyped-def]
    people = Dataset.Tabular.from_delimited_files((store, "tables/people.csv"))
    v1 = people.register(ws, "people", description="four people", tags={"kind": "demo"})
    assert (v1.name, v1.version, v1.description, v1.tags) == (
        "people",
        1,
        "four people",
        {"kind": "demo"},
    )
    assert v1.content["file_count"] == 1 and v1.content["total_bytes"] == len(CSV)
    # the same definition and data: the same version
    assert people.register(ws, "people").id == v1.id
    # another definition needs create_new_version
    other = Dataset.Tabular.from_delimited_files((store, "tables/*.csv"))
    with pytest.raises(ConflictError, match="create_new_version=True"):
        other.register(ws, "people")
    v2 = other.register(ws, "people", create_new_version=True)
    assert v2.version == 2
    assert Dataset.get_by_name(ws, "people").version == 2
    assert Dataset.get_by_name(ws, "people", version=1).id == v1.id
    assert Dataset.get_by_id(ws, v1.id).version == 1
    assert list(ws.datasets) == ["people"] and ws.datasets["people"].version == 2
    assert [d.version for d in v2.get_versions()] == [1, 2]
    assert len(ws.datasets["people"].to_pandas_dataframe()) == 5
    # changed data behind the same definition is a new version with a new content identity
    (Path(store.workspace.path) / "datastores").exists()
    v1_again = Dataset.get_by_name(ws, "people", 1)
    local = Path(ws.backend.local_datastore_path(store.name)) / "tables" / "people.csv"
    local.write_text(CSV + "fay,60,6.0\n")
    v3 = Dataset.Tabular.from_delimited_files((store, "tables/people.csv")).register(
        ws, "people", create_new_version=True
    )
    assert v3.version == 3 and v3.content["hash"] != v1_again.content["hash"]


def test_unknown_name_or_version_lists_what_exists(ws: Workspace, store) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DatasetNotFoundError, match="none yet"):
        Dataset.get_by_name(ws, "people")
    Dataset.File.from_files((store, "images")).register(ws, "images")
    with pytest.raises(DatasetNotFoundError, match=r"No dataset named 'imgs'.*'images'"):
        Dataset.get_by_name(ws, "imgs")
    with pytest.raises(DatasetNotFoundError, match="has no version 4; its versions are 1"):
        Dataset.get_by_name(ws, "images", version=4)
    with pytest.raises(DatasetNotFoundError, match="No dataset version with id 'nope'"):
        Dataset.get_by_id(ws, "nope")


def test_mount_of_a_datastore_folder_is_the_folder_itself(store) -> None:  # type: ignore[no-untyped-def]
    images = Dataset.File.from_files((store, "images"))
    root = Path(store.workspace.backend.local_datastore_path(store.name))
    with images.mount() as mounted:
        assert mounted.mount_point == str(root / "images")
    pngs = Dataset.File.from_files((store, "images/**/*.png"))
    with pngs.mount() as mounted:
        folder = Path(mounted.mount_point)
        found = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.png"))
        assert found == ["a/x.png", "b/c/x.png"]
        assert os.path.islink(folder / "a" / "x.png")  # links, no copy
        assert (folder / "b" / "c" / "x.png").read_bytes() == b"pngb/c"
    assert not folder.exists()


def test_download(store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pngs = Dataset.File.from_files((store, "images/**/*.png"))
    written = pngs.download(str(tmp_path / "dl"))
    assert sorted(Path(p).relative_to(tmp_path / "dl").as_posix() for p in written) == [
        "a/x.png",
        "b/c/x.png",
    ]
    with pytest.raises(Exception, match="overwrite=True"):
        pngs.download(str(tmp_path / "dl"))
    assert len(pngs.download(str(tmp_path / "dl"), overwrite=True)) == 2


def test_sdk_v1_import_paths() -> None:
    from headrace.compat.azureml.core import Dataset as CoreDataset
    from headrace.compat.azureml.core.dataset import Dataset as ModuleDataset
    from headrace.compat.azureml.data import (
        FileDataset as DataFileDataset,
    )
    from headrace.compat.azureml.data import (
        OutputFileDatasetConfig,
    )
    from headrace.compat.azureml.data import (
        TabularDataset as DataTabularDataset,
    )
    from headrace.compat.azureml.data.dataset_consumption_config import (
        DatasetConsumptionConfig,
    )
    from headrace.compat.azureml.data.dataset_factory import DataType as FactoryDataType
    from headrace.compat.azureml.data.output_dataset_config import (
        OutputFileDatasetConfig as ModuleOutput,
    )

    assert CoreDataset is ModuleDataset is Dataset
    assert DataFileDataset is FileDataset and DataTabularDataset is TabularDataset
    assert OutputFileDatasetConfig is ModuleOutput
    assert FactoryDataType is DataType
    assert DatasetConsumptionConfig.__name__ == "DatasetConsumptionConfig"


def test_versions_on_sqlite_and_postgresql(any_ws: Workspace, tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    (data / "x.csv").write_text("a\n1\n")
    store = any_ws.get_default_datastore()
    store.upload(str(data), target_path="pg", overwrite=True, show_progress=False)
    first = Dataset.Tabular.from_delimited_files((store, "pg/x.csv")).register(any_ws, "pg")
    second = Dataset.Tabular.from_delimited_files((store, "pg/*.csv")).register(
        any_ws, "pg", create_new_version=True
    )
    assert (first.version, second.version) == (1, 2)
    assert [d.version for d in second.get_versions()] == [1, 2]
    with pytest.raises(ConflictError):
        Dataset.Tabular.from_delimited_files((store, "pg")).register(any_ws, "pg")
    assert Dataset.get_by_name(any_ws, "pg").id == second.id


def test_urls_are_read_and_registered(ws: Workspace, tmp_path: Path) -> None:
    import functools
    import http.server
    import threading

    served = tmp_path / "web"
    served.mkdir()
    (served / "iris.csv").write_text("sepal,species\n5.1,setosa\n4.9,setosa\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))

    class Quiet(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
            pass

    server = Quiet(("127.0.0.1", 0), handler)
    server.RequestHandlerClass.log_message = lambda *a, **k: None  # type: ignore[attr-defined,method-assign]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/iris.csv"
        table = Dataset.Tabular.from_delimited_files(url)
        assert table.to_pandas_dataframe()["species"].tolist() == ["setosa", "setosa"]
        files = Dataset.File.from_files(url)
        assert files.to_path() == ["/iris.csv"]
        assert Path(files.download(str(tmp_path / "dl"))[0]).read_text().startswith("sepal")
        registered = table.register(ws, "iris")
        assert registered.content["file_count"] == 1
        with pytest.raises(DatasetPathError, match="answered 404"):
            Dataset.Tabular.from_delimited_files(url.replace("iris", "nope"))
        later = Dataset.Tabular.from_delimited_files(url.replace("iris", "nope"), validate=False)
        with pytest.raises(DatasetPathError, match="answered 404"):
            later.to_pandas_dataframe()
    finally:
        server.shutdown()
        server.server_close()


def test_register_pandas_dataframe(ws: Workspace, store) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    registered = Dataset.Tabular.register_pandas_dataframe(frame, (store, "frames"), "frame")
    assert (registered.name, registered.version) == ("frame", 1)
    assert Dataset.get_by_name(ws, "frame").to_pandas_dataframe().equals(frame)
    (written,) = [p for p in store.list_files("frames") if p.endswith(".parquet")]
    assert written.startswith("frames/")
    again = Dataset.Tabular.register_pandas_dataframe(frame.head(1), store, "frame")
    assert again.version == 2 and len(again.to_pandas_dataframe()) == 1
