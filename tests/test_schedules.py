"""Schedules: SDK v1's Schedule/ScheduleRecurrence, recurrences across daylight saving, cron,
catch-up after downtime, and firing each slot exactly once.

The scheduler is driven pass by pass with explicit times (`Scheduler.tick(now)`), the
real scheduler a server or `headrace scheduler` runs, so no test waits for a wall-clock
slot. Runs it queues are checked as a user sees them (`Schedule.get_pipeline_runs()`,
their properties and run source); one test lets an agent execute a fired run.
"""

from __future__ import annotations

import itertools
import json
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from headrace import (
    NotFoundError,
    Pipeline,
    PipelineDisabledError,
    PipelineEndpoint,
    PipelineParameter,
    PublishedPipeline,
    PythonScriptStep,
    Schedule,
    ScheduleRecurrence,
    TimeZone,
    UserError,
    Workspace,
)
from headrace.engine import recurrence as rec
from headrace.engine.scheduler import Scheduler
from headrace.store.workspace_store import WorkspaceStore

UTC = timezone.utc
NY = rec.zone_of("America/New_York")


def publish(ws: Workspace, folder: Path, name: str = "say") -> PublishedPipeline:
    folder.mkdir(exist_ok=True)
    (folder / "say.py").write_text("import sys\nprint('n=' + sys.argv[1])\n")
    step = PythonScriptStep(
        "say.py",
        name="say",
        arguments=[PipelineParameter("n", default_value=1)],
        source_directory=str(folder),
    )
    return Pipeline(ws, steps=[step]).publish(name=name)


def scheduler(ws: Workspace) -> Scheduler:
    return Scheduler(ws.backend.store)  # type: ignore[attr-defined]


# -- ScheduleRecurrence: every rule, at once ---------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "rule"),
    [
        ({"frequency": "Minute", "interval": 5, "hours": [1]}, "hours and minutes can only"),
        ({"frequency": "Hour", "interval": 1, "minutes": [30]}, "hours and minutes can only"),
        ({"frequency": "Day", "interval": 1, "week_days": ["Monday"]}, "week_days can only"),
        ({"frequency": "Fortnight", "interval": 1}, "frequency 'Fortnight' is not valid"),
        ({"frequency": "Day", "interval": 0}, "interval must be an integer of at least 1"),
        ({"frequency": "Day", "interval": 1, "hours": [24]}, "hours must be integers from 0"),
        ({"frequency": "Day", "interval": 1, "minutes": [60]}, "minutes must be integers"),
        (
            {"frequency": "Day", "interval": 1, "time_of_day": "07:00", "hours": [7]},
            "time_of_day or hours/minutes, not both",
        ),
        ({"frequency": "Day", "interval": 1, "time_of_day": "7pm"}, "is not 'hh:mm'"),
        ({"frequency": "Week", "interval": 1, "week_days": ["Funday"]}, "is not a day"),
        (
            {"frequency": "Day", "interval": 1, "start_time": datetime(2026, 1, 1, tzinfo=UTC)},
            "start_time must be a naive datetime",
        ),
        ({"frequency": "Day", "interval": 1, "start_time": "tomorrow"}, "YYYY-MM-DDThh:mm:ss"),
        ({"frequency": "Day", "interval": 1, "time_zone": "Mars/Olympus"}, "Unknown time zone"),
    ],
)
def test_an_invalid_recurrence_raises_at_once_naming_the_rule(
    kwargs: dict[str, object], rule: str
) -> None:
    with pytest.raises(UserError, match=rule):
        ScheduleRecurrence(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("* * *", "needs five fields"),
        ("61 * * * *", "minute 61 is outside 0-59"),
        ("0 0 31 2 *", "names a day no month of it has"),
        ("0 0 * * funday", "is not a number"),
        ("*/0 * * * *", "must be >= 1"),
    ],
)
def test_an_invalid_cron_expression_says_what_is_wrong(expression: str, problem: str) -> None:
    with pytest.raises(UserError, match=problem):
        ScheduleRecurrence.from_cron(expression)


def slots(recurrence: ScheduleRecurrence, after: datetime, n: int) -> list[datetime]:
    data = {**recurrence._as_dict(), "anchor": after.isoformat()}
    found, at = [], after
    for _ in range(n):
        at = rec.next_slot(data, at, after)
        found.append(at)
        at += timedelta(seconds=1)
    return found


def test_a_daily_recurrence_keeps_its_wall_clock_time_across_daylight_saving() -> None:
    daily = ScheduleRecurrence(
        "Day", 1, time_of_day="09:00", time_zone=TimeZone.EasternStandardTime
    )
    fired = slots(daily, datetime(2026, 3, 6, tzinfo=UTC), 4)  # DST starts on March 8
    assert [s.astimezone(NY).strftime("%d %H:%M") for s in fired] == [
        "06 09:00",
        "07 09:00",
        "08 09:00",
        "09 09:00",
    ]
    assert fired[2] - fired[1] == timedelta(hours=23)  # the short day


def test_an_hourly_recurrence_counts_elapsed_time_through_the_repeated_hour() -> None:
    hourly = ScheduleRecurrence(
        "Hour", 1, start_time="2026-11-01T00:00:00", time_zone="America/New_York"
    )
    fired = slots(hourly, datetime(2026, 11, 1, 4, tzinfo=UTC), 4)  # clocks fall back at 2:00
    assert [b - a for a, b in itertools.pairwise(fired)] == [timedelta(hours=1)] * 3
    assert [s.astimezone(NY).strftime("%H:%M%z") for s in fired] == [
        "00:00-0400",
        "01:00-0400",
        "01:00-0500",
        "02:00-0500",
    ]


def test_a_cron_expression_follows_the_wall_clock_and_skipped_times_run_an_hour_later() -> None:
    nightly = ScheduleRecurrence.from_cron("30 2 * * *", time_zone="America/New_York")
    fired = slots(nightly, datetime(2026, 3, 7, tzinfo=UTC), 3)
    # 02:30 does not exist on March 8 (02:00 -> 03:00): it runs at 03:30 that night.
    assert [s.astimezone(NY).strftime("%d %H:%M") for s in fired] == [
        "07 02:30",
        "08 03:30",
        "09 02:30",
    ]
    weekdays = ScheduleRecurrence.from_cron("0 6 * * mon-fri")
    days = [s.strftime("%a") for s in slots(weekdays, datetime(2026, 12, 4, tzinfo=UTC), 3)]
    assert days == ["Fri", "Mon", "Tue"]


def test_week_days_and_hours_pick_the_slots_of_every_other_week() -> None:
    weekly = ScheduleRecurrence(
        "Week",
        2,
        start_time="2026-11-30T00:00:00",
        week_days=["Monday", "Friday"],
        hours=[6],
        minutes=[15],
    )
    fired = slots(weekly, datetime(2026, 11, 29, tzinfo=UTC), 4)
    assert [s.strftime("%m-%d %a %H:%M") for s in fired] == [
        "11-30 Mon 06:15",
        "12-04 Fri 06:15",
        "12-14 Mon 06:15",
        "12-18 Fri 06:15",
    ]


# -- Schedule: the SDK v1 API ----------------------------------------------------------------
def test_a_schedule_without_start_time_fires_at_once_then_on_its_slots(
    ws: Workspace, tmp_path: Path
) -> None:
    published = publish(ws, tmp_path / "src")
    recurrence = ScheduleRecurrence(frequency="Day", interval=2, hours=[22], minutes=[30])
    schedule = Schedule.create(
        ws,
        name="My_Schedule",
        pipeline_id=published.id,
        experiment_name="Schedule-run-sample",
        recurrence=recurrence,
        wait_for_provisioning=True,
        description="Schedule Run",
        pipeline_parameters={"n": 7},
    )
    assert schedule.status == "Active"
    assert schedule.provisioning_status == "Completed"
    assert schedule.recurrence is not None and schedule.recurrence.hours == [22]
    created = schedule.next_fire_time
    assert created is not None and abs(datetime.now(UTC) - created) < timedelta(seconds=5)

    fired = scheduler(ws).tick(created + timedelta(seconds=1))
    assert len(fired.run_ids) == 1
    (run,) = schedule.get_pipeline_runs()
    assert run.id == fired.run_ids[0]
    assert run.get_properties()["azureml.scheduleId"] == schedule.id
    assert run._record().run_source == "Schedule"
    assert run._record().parameters["n"] == 7
    assert run.experiment.name == "Schedule-run-sample"

    schedule = Schedule.get(ws, schedule.id)
    slot = schedule.next_fire_time
    assert slot is not None and slot > created
    assert slot.strftime("%H:%M") == "22:30"
    assert scheduler(ws).tick(slot - timedelta(seconds=1)).run_ids == []
    assert len(scheduler(ws).tick(slot).run_ids) == 1
    last = schedule.get_last_pipeline_run()
    assert last is not None and last.id != run.id
    assert len(schedule.get_pipeline_runs()) == 2


def test_list_get_update_disable_and_enable(ws: Workspace, tmp_path: Path) -> None:
    published = publish(ws, tmp_path / "src")
    other = publish(ws, tmp_path / "other", name="other")
    start = (datetime.now() + timedelta(days=1)).replace(microsecond=0)
    schedule = Schedule.create(
        ws, "nightly", published.id, "exp", ScheduleRecurrence("Minute", 15, start_time=start)
    )
    Schedule.create(ws, "other", other.id, "exp", ScheduleRecurrence("Hour", 1))
    assert [s.name for s in Schedule.list(ws, pipeline_id=published.id)] == ["nightly"]
    assert len(Schedule.list(ws)) == 2

    schedule.disable(wait_for_provisioning=True)
    assert Schedule.get(ws, schedule.id).status == "Disabled"
    assert [s.name for s in Schedule.list(ws)] == ["other"]
    assert {s.name for s in Schedule.list(ws, active_only=False)} == {"nightly", "other"}
    # A disabled schedule does not fire, however late it is.
    assert scheduler(ws).tick(datetime.now(UTC) + timedelta(days=3)).run_ids != []
    assert schedule.get_pipeline_runs() == []

    schedule.enable()
    schedule.update(
        name="My_Updated_Schedule",
        description="Updated",
        status="Active",
        recurrence=ScheduleRecurrence(frequency="Hour", interval=2),
    )
    fetched = Schedule.get(ws, schedule.id)
    assert (fetched.name, fetched.description, fetched.status) == (
        "My_Updated_Schedule",
        "Updated",
        "Active",
    )
    assert fetched.recurrence is not None and fetched.recurrence.frequency == "Hour"
    with pytest.raises(NotFoundError, match="No schedule with id 'nope'"):
        Schedule.get(ws, "nope")


def test_a_schedule_of_an_endpoint_submits_its_default_version(
    ws: Workspace, tmp_path: Path
) -> None:
    first = publish(ws, tmp_path / "one", name="one")
    second = publish(ws, tmp_path / "two", name="two")
    endpoint = PipelineEndpoint.publish(ws, "ep", "endpoint", first)
    schedule = Schedule.create_for_pipeline_endpoint(
        ws, "ep-schedule", endpoint.id, "exp", ScheduleRecurrence("Minute", 5)
    )
    assert [s.id for s in Schedule.list(ws, pipeline_endpoint_id=endpoint.id)] == [schedule.id]
    endpoint.add_default(second)
    scheduler(ws).tick(datetime.now(UTC) + timedelta(seconds=1))
    (run,) = schedule.get_pipeline_runs()
    assert run.get_properties()["azureml.pipelineid"] == second.id


# -- bad input --------------------------------------------------------------------------------
def test_a_schedule_needs_an_active_existing_pipeline_and_one_trigger(
    ws: Workspace, tmp_path: Path
) -> None:
    published = publish(ws, tmp_path / "src")
    every = ScheduleRecurrence("Minute", 15)
    with pytest.raises(NotFoundError, match="No published pipeline with id 'missing'"):
        Schedule.create(ws, "s", "missing", "exp", every)
    with pytest.raises(UserError, match="a recurrence or a datastore, not both"):
        Schedule.create(ws, "s", published.id, "exp", every, datastore=ws.get_default_datastore())
    with pytest.raises(UserError, match="needs a recurrence"):
        Schedule.create(ws, "s", published.id, "exp")
    with pytest.raises(UserError, match="'m' does not exist"):
        Schedule.create(ws, "s", published.id, "exp", every, pipeline_parameters={"m": 1})
    with pytest.raises(UserError, match="catch_up 'some' is not valid"):
        Schedule.create(ws, "s", published.id, "exp", every, catch_up="some")
    published.disable()
    with pytest.raises(PipelineDisabledError, match="Enable it first"):
        Schedule.create(ws, "s", published.id, "exp", every)
    assert Schedule.list(ws, active_only=False) == []


def test_a_pipeline_disabled_later_records_the_error_and_the_schedule_goes_on(
    ws: Workspace, tmp_path: Path
) -> None:
    published = publish(ws, tmp_path / "src")
    schedule = Schedule.create(ws, "s", published.id, "exp", ScheduleRecurrence("Minute", 10))
    now = datetime.now(UTC)
    published.disable()
    result = scheduler(ws).tick(now + timedelta(seconds=1))
    assert (result.run_ids, result.failed) == ([], 1)
    schedule = Schedule.get(ws, schedule.id)
    assert schedule.status == "Active"
    assert schedule.last_error is not None and "is Disabled" in schedule.last_error
    # The slot counts as fired (with its error): it is not retried in a loop.
    assert scheduler(ws).tick(now + timedelta(seconds=2)).failed == 0
    published.enable()
    assert len(scheduler(ws).tick(now + timedelta(minutes=10, seconds=2)).run_ids) == 1


# -- catch-up and exactly once ---------------------------------------------------------------
@pytest.mark.parametrize(("policy", "runs"), [("latest", 1), ("all", 6), ("skip", 0)])
def test_missed_slots_follow_the_catch_up_policy(
    ws: Workspace, tmp_path: Path, policy: str, runs: int
) -> None:
    published = publish(ws, tmp_path / "src")
    start = (datetime.now() + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    schedule = Schedule.create(
        ws,
        "s",
        published.id,
        "exp",
        ScheduleRecurrence("Minute", 10, start_time=start, time_zone=TimeZone.UTC),
        catch_up=policy,
    )
    first = start.replace(tzinfo=UTC)
    assert schedule.next_fire_time == first
    # Nobody ran the scheduler for 55 minutes: slots :00 :10 ... :50 were missed.
    result = scheduler(ws).tick(first + timedelta(minutes=55))
    assert len(result.run_ids) == runs
    fired = schedule.get_pipeline_runs()
    if policy == "latest":
        assert fired[0].get_properties()["headrace.missedSlots"] == 5
        assert fired[0].get_properties()["headrace.scheduleFire"].endswith(":50:00+00:00")
    assert Schedule.get(ws, schedule.id).next_fire_time == first + timedelta(minutes=60)
    assert scheduler(ws).tick(first + timedelta(minutes=59)).run_ids == []


def test_a_restarted_scheduler_does_not_fire_a_slot_again(ws: Workspace, tmp_path: Path) -> None:
    published = publish(ws, tmp_path / "src")
    schedule = Schedule.create(ws, "s", published.id, "exp", ScheduleRecurrence("Minute", 1))
    slot = schedule.next_fire_time
    assert slot is not None
    assert len(scheduler(ws).tick(slot).run_ids) == 1
    # A second process on the same workspace (or this one after a restart), late or not.
    again = Scheduler(WorkspaceStore.open(ws.backend.store.root))  # type: ignore[attr-defined]
    assert again.tick(slot).run_ids == []
    assert len(schedule.get_pipeline_runs()) == 1


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_three_schedulers_racing_fire_each_slot_once(
    tmp_path: Path, request: pytest.FixtureRequest, database: str
) -> None:
    url = request.getfixturevalue("postgres_url") if database == "postgres" else None
    ws = Workspace.create("race", path=tmp_path / "ws", database_url=url, show_output=False)
    try:
        published = publish(ws, tmp_path / "src")
        start = (datetime.now() + timedelta(hours=1)).replace(second=0, microsecond=0)
        every = ScheduleRecurrence("Minute", 1, start_time=start)
        schedules = [Schedule.create(ws, f"s{i}", published.id, "race", every) for i in range(20)]
        first = start.replace(tzinfo=UTC)
        stores = [WorkspaceStore.open(tmp_path / "ws") for _ in range(3)]
        racers = [Scheduler(store) for store in stores]
        totals: list[int] = []
        for minute in range(3):
            now = first + timedelta(minutes=minute)
            gate = threading.Barrier(len(racers))
            counts: list[int] = []

            def race(
                s: Scheduler,
                at: datetime = now,
                barrier: threading.Barrier = gate,
                out: list[int] = counts,
            ) -> None:
                barrier.wait()
                out.append(len(s.tick(at).run_ids))

            threads = [threading.Thread(target=race, args=(s,)) for s in racers]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            totals.append(sum(counts))
        assert totals == [20, 20, 20]
        for schedule in schedules:
            runs = schedule.get_pipeline_runs()
            keys = [r.get_properties()["headrace.scheduleFire"] for r in runs]
            assert len(keys) == len(set(keys)) == 3
        for store in stores:
            store.close()
    finally:
        ws.backend.store.close()  # type: ignore[attr-defined]


# -- datastore triggers ------------------------------------------------------------------------
def publish_reader(ws: Workspace, folder: Path) -> PublishedPipeline:
    """A pipeline whose DataPath parameter `input_data` is a file it prints."""
    from headrace import DataPath, DataPathComputeBinding

    folder.mkdir(exist_ok=True)
    (folder / "show.py").write_text(
        "import sys, pathlib\nprint('got ' + pathlib.Path(sys.argv[1]).read_text())\n"
    )
    ds = ws.get_default_datastore()
    param = PipelineParameter("input_data", default_value=DataPath(ds, "in/placeholder.txt"))
    pair = (param, DataPathComputeBinding(mode="mount"))
    step = PythonScriptStep(
        "show.py", name="show", arguments=[pair], inputs=[pair], source_directory=str(folder)
    )
    return Pipeline(ws, steps=[step]).publish(name="reader")


def test_a_datastore_trigger_fires_once_per_new_file_once_it_is_complete(
    ws: Workspace, tmp_path: Path
) -> None:
    published = publish_reader(ws, tmp_path / "src")
    ds = ws.get_default_datastore()
    folder = Path(ws.backend.local_datastore_path(ds.name) or "") / "in"  # type: ignore[attr-defined]
    folder.mkdir(parents=True)
    (folder / "old.txt").write_text("there before")
    schedule = Schedule.create(
        ws,
        "on-new-data",
        published.id,
        "triggered",
        datastore=ds,
        path_on_datastore="in",
        polling_interval=5,
        data_path_parameter_name="input_data",
    )
    t = datetime.now(UTC)
    every = timedelta(minutes=5)
    s = scheduler(ws)
    assert s.tick(t).run_ids == []  # the first poll takes stock: old.txt never fires
    (folder / "a.txt").write_text("first")
    (folder / "b.txt").write_text("half writ")
    (folder / "sub").mkdir()
    (folder / "sub" / "deep.txt").write_text("not watched: SDK v1 ignores sub-folders")
    assert s.tick(t + every).run_ids == []  # new: pending until seen unchanged once
    assert s.tick(t + every + timedelta(minutes=1)).polled == 0  # not time to poll yet
    (folder / "b.txt").write_text("half written, now complete")  # still being written
    fired = s.tick(t + 2 * every)
    assert len(fired.run_ids) == 1  # a.txt; b.txt changed since the last poll
    assert len(s.tick(t + 3 * every).run_ids) == 1  # b.txt, now stable
    assert s.tick(t + 4 * every).run_ids == []
    runs = schedule.get_pipeline_runs()
    bound = sorted(r._record().parameters["input_data"]["path"] for r in runs)
    assert bound == ["in/a.txt", "in/b.txt"]
    # A fired run really runs with the changed file bound to its DataPath parameter.
    ws.backend.ensure_agent()
    last = runs[0]
    last.wait_for_completion(show_output=False)
    (step,) = last.get_steps()
    assert step.get_stdout_log().strip() == "got half written, now complete"
    # A rewritten file is a change: it fires again, once.
    (folder / "a.txt").write_text("second version")
    s.tick(t + 5 * every)
    assert len(s.tick(t + 6 * every).run_ids) == 1
    assert len(schedule.get_pipeline_runs()) == 3


def test_sub_folders_and_one_run_per_batch_are_options(ws: Workspace, tmp_path: Path) -> None:
    published = publish_reader(ws, tmp_path / "src")
    ds = ws.get_default_datastore()
    root = Path(ws.backend.local_datastore_path(ds.name) or "")  # type: ignore[attr-defined]
    (root / "drop").mkdir()
    schedule = Schedule.create(
        ws,
        "batches",
        published.id,
        "triggered",
        datastore=ds,
        path_on_datastore="drop",
        data_path_parameter_name="input_data",
        include_subfolders=True,
        run_per="batch",
    )
    t = datetime.now(UTC)
    s = scheduler(ws)
    s.tick(t)
    for name in ("x.csv", "y.csv", "deep/z.csv"):
        (root / "drop" / name).parent.mkdir(exist_ok=True)
        (root / "drop" / name).write_text(name)
    s.tick(t + timedelta(minutes=5))
    assert len(s.tick(t + timedelta(minutes=10)).run_ids) == 1
    (run,) = schedule.get_pipeline_runs()
    properties = run.get_properties()
    assert properties["headrace.changedFileCount"] == 3
    assert json.loads(properties["headrace.changedFiles"]) == [
        "drop/deep/z.csv",
        "drop/x.csv",
        "drop/y.csv",
    ]
    assert run._record().parameters["input_data"]["path"] == "drop"


def test_an_unreachable_datastore_is_recorded_and_polled_again_without_double_fires(
    ws: Workspace, tmp_path: Path
) -> None:
    from headrace import Datastore

    published = publish_reader(ws, tmp_path / "src")
    share = tmp_path / "share"
    (share / "in").mkdir(parents=True)
    ds = Datastore.register_local(ws, "share", share)
    schedule = Schedule.create(
        ws,
        "share-watch",
        published.id,
        "triggered",
        datastore=ds,
        path_on_datastore="in",
        polling_interval=1,
        data_path_parameter_name="input_data",
    )
    t = datetime.now(UTC)
    s = scheduler(ws)
    s.tick(t)
    (share / "in" / "a.txt").write_text("a")
    s.tick(t + timedelta(minutes=1))  # a.txt pending
    share.rename(tmp_path / "unmounted")  # the share goes away
    for minute in (2, 3):
        result = s.tick(t + timedelta(minutes=minute))
        assert (result.polled, result.run_ids) == (1, [])
    error = Schedule.get(ws, schedule.id).last_error
    assert error is not None and "does not exist" in error and "keeps polling" in error
    (tmp_path / "unmounted").rename(share)  # back
    assert len(s.tick(t + timedelta(minutes=4)).run_ids) == 1  # a.txt, once
    assert s.tick(t + timedelta(minutes=5)).run_ids == []
    assert Schedule.get(ws, schedule.id).last_error is None
    assert len(schedule.get_pipeline_runs()) == 1


def test_a_trigger_checks_its_datastore_and_parameter(ws: Workspace, tmp_path: Path) -> None:
    from headrace.errors import DatastoreNotFoundError

    published = publish_reader(ws, tmp_path / "src")
    with pytest.raises(DatastoreNotFoundError, match="No datastore named 'nowhere'"):
        Schedule.create(ws, "t", published.id, "e", datastore="nowhere")
    with pytest.raises(UserError, match=r"'input' is not a DataPath parameter.*input_data"):
        Schedule.create(
            ws,
            "t",
            published.id,
            "e",
            datastore="workspaceblobstore",
            data_path_parameter_name="input",
        )
    with pytest.raises(UserError, match="polling_interval is in minutes"):
        Schedule.create(
            ws, "t", published.id, "e", datastore="workspaceblobstore", polling_interval=0
        )
    with pytest.raises(UserError, match="run_per 'day' is not valid"):
        Schedule.create(ws, "t", published.id, "e", datastore="workspaceblobstore", run_per="day")


def test_a_scheduler_killed_mid_fire_leaves_no_half_fire_and_the_next_fires_the_rest(
    ws: Workspace, tmp_path: Path
) -> None:
    import signal
    import subprocess
    import sys
    import time

    published = publish(ws, tmp_path / "src")
    start = (datetime.now() + timedelta(hours=1)).replace(second=0, microsecond=0)
    every = ScheduleRecurrence("Minute", 1, start_time=start)
    schedules = [Schedule.create(ws, f"s{i}", published.id, "crash", every) for i in range(60)]
    slot = start.replace(tzinfo=UTC)
    root = ws.backend.store.root  # type: ignore[attr-defined]
    code = (
        "import sys; from datetime import datetime\n"
        "from headrace.engine.scheduler import Scheduler\n"
        "from headrace.store.workspace_store import WorkspaceStore\n"
        "Scheduler(WorkspaceStore.open(sys.argv[1])).tick(datetime.fromisoformat(sys.argv[2]))\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code, str(root), slot.isoformat()])
    deadline = time.monotonic() + 60
    while len(ws.backend.list_pipeline_runs(limit=500)) < 5:
        assert process.poll() is None, "the scheduler ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)  # mid-fire: some slots fired, most not
    process.wait()
    runs_before = {r.id for r in ws.backend.list_pipeline_runs(limit=500)}
    assert 5 <= len(runs_before) < len(schedules)
    meta = ws.backend.store.meta  # type: ignore[attr-defined]
    fired = {f.run_id for s in schedules for f in meta.list_schedule_fires(s.id)}
    assert fired == runs_before  # every run has its fire, every fire its run
    result = scheduler(ws).tick(slot + timedelta(seconds=30))  # the restart, late
    assert len(result.run_ids) == len(schedules) - len(runs_before)
    for schedule in schedules:
        (run,) = schedule.get_pipeline_runs()
        assert run.get_properties()["headrace.scheduleFire"] == "slot:" + slot.isoformat()


@pytest.mark.usefixtures("aliased")
def test_the_schedule_notebooks_calls_work_as_written(ws: Workspace, tmp_path: Path) -> None:
    """The calls of aml-pipelines-setup-schedule-for-a-published-pipeline and
    aml-pipelines-showcasing-datapath-and-pipelineparameter, keyword for keyword."""
    from azureml.core.datastore import Datastore
    from azureml.pipeline.core.schedule import Schedule as V1Schedule
    from azureml.pipeline.core.schedule import ScheduleRecurrence as V1Recurrence

    pub_pipeline_id = publish_reader(ws, tmp_path / "src").id
    recurrence = V1Recurrence(frequency="Day", interval=2, hours=[22], minutes=[30])
    schedule = V1Schedule.create(
        workspace=ws,
        name="My_Schedule",
        pipeline_id=pub_pipeline_id,
        experiment_name="Schedule-run-sample",
        recurrence=recurrence,
        wait_for_provisioning=True,
        description="Schedule Run",
    )
    schedules = V1Schedule.list(ws, pipeline_id=pub_pipeline_id)
    assert [s.id for s in schedules if s.recurrence is not None] == [schedule.id]
    fetched_schedule = V1Schedule.get(ws, schedule.id)
    fetched_schedule.disable(wait_for_provisioning=True)
    assert V1Schedule.get(ws, schedule.id).status == "Disabled"
    fetched_schedule.enable(wait_for_provisioning=True)
    fetched_schedule.update(
        name="My_Updated_Schedule",
        description="Updated_Schedule_Run",
        status="Active",
        wait_for_provisioning=True,
        recurrence=V1Recurrence(frequency="Hour", interval=2),
    )
    fetched_schedule = V1Schedule.get(ws, fetched_schedule.id)
    assert fetched_schedule.recurrence is not None
    assert (fetched_schedule.name, fetched_schedule.recurrence.frequency) == (
        "My_Updated_Schedule",
        "Hour",
    )
    datastore = Datastore(workspace=ws, name="workspaceblobstore")
    trigger = V1Schedule.create(
        workspace=ws,
        name="Datastore_trigger_schedule",
        pipeline_id=pub_pipeline_id,
        experiment_name="Scheduled_Pipeline",
        datastore=datastore,
        wait_for_provisioning=True,
        description="Datastore trigger schedule demo",
        path_on_datastore="sample_datapath_for_folder",
        data_path_parameter_name="input_data",
    )
    trigger.disable()
    assert "datastore workspaceblobstore:sample_datapath_for_folder" in repr(trigger)
