"""Datastore triggers on object stores, against real servers on 127.0.0.1: moto's S3, Azurite
(Azure Blob; skipped when not installed) and the GCS emulator. Changes are found by listing
(ETags), files in sub-folders are not watched by default, and each new object fires once.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from headrace import Datastore, Schedule, Workspace
from headrace.engine.scheduler import Scheduler
from tests.objectstores import MotoS3
from tests.test_object_datastores import azurite, moto, s3_store, store  # noqa: F401 (fixtures)
from tests.test_schedules import publish_reader


def upload(ds: Datastore, tmp_path: Path, path: str, text: str) -> None:
    source = tmp_path / "upload" / path
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(text)
    ds.upload_files([str(source)], relative_root=str(tmp_path / "upload"), overwrite=True,
                    show_progress=False)  # fmt: skip


def test_a_trigger_on_an_object_store_fires_once_per_new_object(
    ws: Workspace,
    store: Datastore,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    published = publish_reader(ws, tmp_path / "src")
    upload(store, tmp_path, "in/old.csv", "there before")
    schedule = Schedule.create(
        ws,
        "objects",
        published.id,
        "triggered",
        datastore=store,
        path_on_datastore="in",
        polling_interval=1,
        data_path_parameter_name="input_data",
    )
    scheduler = Scheduler(ws.backend.store)  # type: ignore[attr-defined]
    t = datetime.now(timezone.utc)
    assert scheduler.tick(t).run_ids == []  # takes stock
    upload(store, tmp_path, "in/new.csv", "new")
    upload(store, tmp_path, "in/deeper/ignored.csv", "a sub-folder: not watched")
    assert scheduler.tick(t + timedelta(minutes=1)).run_ids == []  # pending
    assert len(scheduler.tick(t + timedelta(minutes=2)).run_ids) == 1
    assert scheduler.tick(t + timedelta(minutes=3)).run_ids == []
    (run,) = schedule.get_pipeline_runs()
    bound = run._record().parameters["input_data"]
    assert bound == {"datastore": store.name, "path": "in/new.csv"}
    upload(store, tmp_path, "in/new.csv", "rewritten: a new ETag")
    scheduler.tick(t + timedelta(minutes=4))
    assert len(scheduler.tick(t + timedelta(minutes=5)).run_ids) == 1
    assert Schedule.get(ws, schedule.id).last_error is None


def test_an_s3_trigger_sees_every_page_of_a_long_listing(
    ws: Workspace,
    moto: MotoS3,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    """The S3 listing is streamed a page (1,000 keys) at a time: objects past the first
    page are taken stock of too (only the new one fires), and a folder whose name merely
    starts like the watched one is not watched."""
    ds = s3_store(ws, moto, "s3pages")
    bucket = ds.bucket_name  # type: ignore[attr-defined]
    moto.filesystem().pipe(
        {f"{bucket}/many/f{i:04d}.csv": b"x" for i in range(1201)} | {f"{bucket}/many2/x.csv": b"x"}
    )
    published = publish_reader(ws, tmp_path / "src")
    schedule = Schedule.create(ws, "pages", published.id, "triggered", datastore=ds,
                    path_on_datastore="many", polling_interval=1,
                    data_path_parameter_name="input_data")  # fmt: skip
    scheduler = Scheduler(ws.backend.store)  # type: ignore[attr-defined]
    t = datetime.now(timezone.utc)
    assert scheduler.tick(t).run_ids == []  # takes stock of all 1,201
    upload(ds, tmp_path, "many/g.csv", "new, after the first page")
    upload(ds, tmp_path, "many2/y.csv", "a sibling folder: not watched")
    scheduler.tick(t + timedelta(minutes=1))
    assert len(scheduler.tick(t + timedelta(minutes=2)).run_ids) == 1
    (run,) = schedule.get_pipeline_runs()
    bound = run._record().parameters["input_data"]
    assert bound == {"datastore": "s3pages", "path": "many/g.csv"}
