"""`headrace schedule ...`: schedules of published pipelines, and `headrace scheduler`, the
foreground process that fires them on a laptop (`headrace server` fires them itself).

A schedule is named on the command line by its id (a unique prefix will do) or its name.
"""

from __future__ import annotations

import signal
import threading
from typing import Annotated, Any

import typer
from rich.text import Text

from headrace.cli.common import JsonOption, WorkspaceOption, open_workspace
from headrace.cli.output import (
    console,
    details_table,
    format_time,
    iso,
    new_table,
    print_json,
    run_document,
    status_text,
)
from headrace.cli.pipelines import ParamOption, find_published, parameter_values
from headrace.errors import NotFoundError, UserError
from headrace.graph.validate import did_you_mean
from headrace.sdk.schedule import Schedule
from headrace.sdk.workspace import Workspace

__all__ = ["app", "scheduler"]

app = typer.Typer(
    no_args_is_help=True,
    help="Schedules: run a published pipeline on a recurrence or when files change.",
)

ScheduleArgument = Annotated[
    str, typer.Argument(metavar="ID|NAME", help="Schedule id (a unique prefix) or name.")
]


def find_schedule(ws: Workspace, spec: str) -> Schedule:
    spec = spec.strip()
    every = Schedule.list(ws, active_only=False)
    for s in every:
        if s.id == spec:
            return s
    matches = [s for s in every if s.name == spec] or (
        [s for s in every if s.id.startswith(spec)] if spec else []
    )
    if len(matches) == 1:
        return matches[0]
    if matches:
        listing = ", ".join(f"{s.name} ({s.id})" for s in matches)
        raise UserError(f"{len(matches)} schedules match {spec!r}: {listing}; give the id.")
    raise NotFoundError(
        f"No schedule named {spec!r} (nor with that id)"
        f"{did_you_mean(spec, [s.name for s in every])}; `headrace schedule list --all` "
        "lists them."
    )


def _what(s: Schedule) -> str:
    if s.recurrence is not None:
        from headrace.engine.recurrence import describe

        return describe(s.recurrence._as_dict())
    return (
        f"files in {s.datastore_name}:{s.path_on_datastore or '/'} every {s.polling_interval:g} min"
    )


def schedule_document(s: Schedule) -> dict[str, Any]:
    last = s.get_last_pipeline_run()
    return {
        "id": s.id,
        "name": s.name,
        "description": s.description,
        "status": s.status,
        "pipeline_id": s.pipeline_id,
        "pipeline_endpoint_id": s.pipeline_endpoint_id,
        "experiment_name": s.experiment_name,
        "trigger": _what(s),
        "recurrence": None if s.recurrence is None else s.recurrence._as_dict(),
        "datastore": s.datastore_name,
        "path_on_datastore": s.path_on_datastore,
        "polling_interval": s.polling_interval,
        "data_path_parameter_name": s.data_path_parameter_name,
        "pipeline_parameters": s.pipeline_parameters,
        "catch_up": s.catch_up,
        "next_fire_time": iso(s.next_fire_time),
        "last_run_id": None if last is None else last.id,
        "last_error": s.last_error,
    }


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The schedule's name.")],
    experiment: Annotated[str, typer.Option("--experiment", "-e", help="Experiment of its runs.")],
    pipeline: Annotated[
        str | None, typer.Option(metavar="ID|NAME", help="Published pipeline to submit.")
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(metavar="NAME|ID", help="Pipeline endpoint (its default version) instead."),
    ] = None,
    frequency: Annotated[str | None, typer.Option(help="Minute, Hour, Day, Week or Month.")] = None,
    interval: Annotated[int, typer.Option(help="Every N frequency units.")] = 1,
    hours: Annotated[list[int] | None, typer.Option("--hour", help="Hour (Day/Week).")] = None,
    minutes: Annotated[
        list[int] | None, typer.Option("--minute", help="Minute (Day/Week).")
    ] = None,
    week_days: Annotated[
        list[str] | None, typer.Option("--week-day", help="Monday ... Sunday (Week).")
    ] = None,
    time_of_day: Annotated[str | None, typer.Option(help="hh:mm (Day/Week).")] = None,
    start_time: Annotated[
        str | None, typer.Option(help="YYYY-MM-DDThh:mm:ss in the time zone.")
    ] = None,
    time_zone: Annotated[
        str | None, typer.Option(help="SDK v1 zone name or IANA name (default UTC).")
    ] = None,
    cron: Annotated[
        str | None, typer.Option(help="A cron expression instead, e.g. '0 6 * * 1-5'.")
    ] = None,
    datastore: Annotated[
        str | None, typer.Option(help="Watch this datastore for new or changed files.")
    ] = None,
    path: Annotated[str | None, typer.Option(help="Folder on the datastore to watch.")] = None,
    polling_interval: Annotated[float, typer.Option(help="Minutes between polls.")] = 5,
    data_path_parameter: Annotated[
        str | None, typer.Option(help="DataPath parameter that gets the changed file.")
    ] = None,
    include_subfolders: Annotated[
        bool, typer.Option(help="Watch sub-folders too (SDK v1 did not).")
    ] = False,
    run_per: Annotated[
        str, typer.Option(help="file (SDK v1: one run per changed file) or batch.")
    ] = "file",
    catch_up: Annotated[
        str, typer.Option(help="Missed slots: latest (one run), all, or skip.")
    ] = "latest",
    param: ParamOption = None,
    description: Annotated[str | None, typer.Option(help="Description.")] = None,
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """Create a schedule: give a recurrence (--frequency/--cron) or a --datastore."""
    from headrace.cli.endpoints import find_endpoint
    from headrace.sdk.schedule import ScheduleRecurrence

    ws = open_workspace(workspace)
    if (pipeline is None) == (endpoint is None):
        raise UserError("Give --pipeline ID|NAME or --endpoint NAME|ID (one of them).")
    recurrence = None
    if cron is not None:
        recurrence = ScheduleRecurrence.from_cron(cron, time_zone, start_time)
    elif frequency is not None:
        recurrence = ScheduleRecurrence(
            frequency,
            interval,
            start_time=start_time,
            time_zone=time_zone,
            hours=hours,
            minutes=minutes,
            week_days=week_days,
            time_of_day=time_of_day,
        )
    common: dict[str, Any] = {
        "recurrence": recurrence,
        "description": description,
        "datastore": datastore,
        "polling_interval": polling_interval,
        "data_path_parameter_name": data_path_parameter,
        "path_on_datastore": path,
        "include_subfolders": include_subfolders,
        "run_per": run_per,
        "catch_up": catch_up,
    }
    if pipeline is not None:
        published = find_published(ws, pipeline)
        values = parameter_values(published.get_graph(), param or []) or {}
        schedule = Schedule.create(
            ws, name, published.id, experiment, pipeline_parameters=values, **common
        )
    else:
        assert endpoint is not None
        found = find_endpoint(ws, endpoint)
        values = parameter_values(found.get_pipeline().get_graph(), param or []) or {}
        schedule = Schedule.create_for_pipeline_endpoint(
            ws, name, found.id, experiment, pipeline_parameters=values, **common
        )
    if json_:
        print_json(schedule_document(schedule))
        return
    typer.echo(
        f"Created schedule {schedule.name!r} ({schedule.id}): {_what(schedule)}; next "
        f"{format_time(schedule.next_fire_time)}. `headrace server` or `headrace scheduler` "
        "fires it."
    )


@app.command("list")
def list_(
    all_: Annotated[bool, typer.Option("--all", "-a", help="Include disabled schedules.")] = False,
    pipeline: Annotated[
        str | None, typer.Option(metavar="ID|NAME", help="Only this pipeline's.")
    ] = None,
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """List schedules with their next fire time and last run."""
    ws = open_workspace(workspace)
    pipeline_id = None if pipeline is None else find_published(ws, pipeline).id
    schedules = Schedule.list(ws, active_only=not all_, pipeline_id=pipeline_id)
    if json_:
        print_json({"schedules": [schedule_document(s) for s in schedules]})
        return
    if not schedules:
        console().print(
            "No schedules" + ("" if all_ else " (--all includes disabled ones)") + "; create "
            "one with `headrace schedule create NAME --pipeline ID -e EXP --frequency Day`."
        )
        return
    table = new_table("NAME", "ID", "STATUS", "TRIGGER", "NEXT", "LAST RUN", "ERROR")
    for s in schedules:
        last = s.get_last_pipeline_run()
        table.add_row(
            Text(s.name),
            s.id,
            status_text(s.status),
            Text(_what(s)),
            format_time(s.next_fire_time),
            "" if last is None else last.id,
            Text(s.last_error or ""),
        )
    console().print(table)


@app.command("show")
def show(
    schedule: ScheduleArgument, workspace: WorkspaceOption = None, json_: JsonOption = False
) -> None:
    """Show a schedule: what fires it, when next, and its last error."""
    ws = open_workspace(workspace)
    found = find_schedule(ws, schedule)
    document = schedule_document(found)
    if json_:
        print_json(document)
        return
    rows: list[tuple[str, str | Text]] = [
        ("Name", found.name),
        ("Id", found.id),
        ("Status", status_text(found.status)),
        ("Pipeline", found.pipeline_id or f"endpoint {found.pipeline_endpoint_id}"),
        ("Experiment", found.experiment_name),
        ("Trigger", Text(_what(found))),
        ("Catch-up", found.catch_up),
        ("Next", format_time(found.next_fire_time)),
        ("Last run", document["last_run_id"] or ""),
    ]
    if found.pipeline_parameters:
        rows.append(("Parameters", Text(str(found.pipeline_parameters))))
    if found.last_error:
        rows.append(("Last error", Text(found.last_error, style="red")))
    console().print(details_table(rows))


def _set_status(schedule: str, workspace: str | None, json_: bool, enable: bool) -> None:
    ws = open_workspace(workspace)
    found = find_schedule(ws, schedule)
    found.enable() if enable else found.disable()
    if json_:
        print_json(schedule_document(found))
    else:
        typer.echo(f"Schedule {found.name!r} ({found.id}) is {found.status}.")


@app.command("enable")
def enable(
    schedule: ScheduleArgument, workspace: WorkspaceOption = None, json_: JsonOption = False
) -> None:
    """Enable a schedule: it fires at its next slot from now."""
    _set_status(schedule, workspace, json_, True)


@app.command("disable")
def disable(
    schedule: ScheduleArgument, workspace: WorkspaceOption = None, json_: JsonOption = False
) -> None:
    """Disable a schedule: it fires no more until enabled."""
    _set_status(schedule, workspace, json_, False)


@app.command("update")
def update(
    schedule: ScheduleArgument,
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    description: Annotated[str | None, typer.Option(help="New description.")] = None,
    frequency: Annotated[str | None, typer.Option(help="New recurrence's frequency.")] = None,
    interval: Annotated[int, typer.Option(help="New recurrence's interval.")] = 1,
    cron: Annotated[str | None, typer.Option(help="New recurrence as cron.")] = None,
    time_zone: Annotated[str | None, typer.Option(help="New recurrence's zone.")] = None,
    polling_interval: Annotated[float | None, typer.Option(help="Minutes between polls.")] = None,
    catch_up: Annotated[str | None, typer.Option(help="latest, all or skip.")] = None,
    param: ParamOption = None,
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """Change a schedule's name, recurrence, parameters, polling or catch-up."""
    from headrace.sdk.schedule import ScheduleRecurrence

    ws = open_workspace(workspace)
    found = find_schedule(ws, schedule)
    recurrence = None
    if cron is not None:
        recurrence = ScheduleRecurrence.from_cron(cron, time_zone)
    elif frequency is not None:
        recurrence = ScheduleRecurrence(frequency, interval, time_zone=time_zone)
    values = None
    if param:
        pipeline_id = found.pipeline_id
        if pipeline_id is None:
            from headrace.cli.endpoints import find_endpoint

            assert found.pipeline_endpoint_id is not None
            graph = find_endpoint(ws, found.pipeline_endpoint_id).get_pipeline().get_graph()
        else:
            graph = find_published(ws, pipeline_id).get_graph()
        values = {**found.pipeline_parameters, **(parameter_values(graph, param) or {})}
    found.update(
        name=name,
        description=description,
        recurrence=recurrence,
        pipeline_parameters=values,
        polling_interval=polling_interval,
        catch_up=catch_up,
    )
    if json_:
        print_json(schedule_document(found))
    else:
        typer.echo(f"Updated schedule {found.name!r} ({found.id}): {_what(found)}.")


@app.command("runs")
def runs(
    schedule: ScheduleArgument, workspace: WorkspaceOption = None, json_: JsonOption = False
) -> None:
    """The runs a schedule queued, newest first."""
    ws = open_workspace(workspace)
    found = find_schedule(ws, schedule)
    fired = found.get_pipeline_runs()
    if json_:
        print_json({"runs": [run_document(r._record()) for r in fired]})
        return
    if not fired:
        console().print(f"Schedule {found.name!r} has queued no runs yet.")
        return
    table = new_table("RUN", "STATUS", "EXPERIMENT", "CREATED")
    for r in fired:
        record = r._record()
        table.add_row(
            r.id, status_text(record.status), record.experiment_name, format_time(record.created_at)
        )
    console().print(table)


def scheduler(
    workspace: WorkspaceOption = None,
    max_sleep: Annotated[
        float, typer.Option(help="Look for new and changed schedules at least this often (s).")
    ] = 1.0,
) -> None:
    """Fire a workspace folder's schedules in the foreground until Ctrl-C (on a laptop;
    `headrace server` fires them itself). Runs it queues go to the workspace's agent."""
    from headrace.engine.scheduler import Scheduler

    ws = open_workspace(workspace, resume=False)
    backend: Any = ws.backend
    if ws.path is None:
        raise UserError(
            "`headrace scheduler` fires the schedules of a workspace folder; a server fires "
            "its own schedules."
        )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    typer.echo(f"Scheduler of workspace {ws.name!r} ({ws.path}); Ctrl-C stops.", err=True)
    Scheduler(backend.store, on_fired=backend.start_work, max_sleep=max_sleep).run(stop)
    typer.echo("Scheduler stopped.", err=True)
