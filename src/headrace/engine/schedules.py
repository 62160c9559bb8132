"""Creating and changing schedules: every check SDK v1 made, and headrace's own, at once.

`create_schedule` and `update_schedule` are what the local backend and the server call; a
schedule that passes them can fire (engine/scheduler.py fires it). A recurrence arrives as
the plain dict of `recurrence.check_recurrence` and is checked again here, so a REST body
gets the same messages as Python code.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from headrace.engine import recurrence as rec
from headrace.engine.graphs import load_graph
from headrace.engine.submission import resolve_parameters
from headrace.errors import PipelineDisabledError, UserError
from headrace.graph.validate import did_you_mean
from headrace.limits import json_tags
from headrace.store.datastores import clean_relative_path
from headrace.store.orm import utcnow
from headrace.store.publishing import ACTIVE
from headrace.store.records import ScheduleRecord
from headrace.store.schedules import DISABLED
from headrace.store.workspace_store import WorkspaceStore

__all__ = [
    "CATCH_UP_POLICIES",
    "RUN_PER",
    "checked_recurrence",
    "create_schedule",
    "schedule_pipeline_id",
    "update_schedule",
]

CATCH_UP_POLICIES = ("latest", "all", "skip")
RUN_PER = ("file", "batch")
_EXPERIMENT = re.compile(r"^[A-Za-z0-9][\w-]{0,254}$")
_RECURRENCE_FIELDS = (
    "frequency",
    "interval",
    "start_time",
    "time_zone",
    "hours",
    "minutes",
    "week_days",
    "time_of_day",
    "cron",
)


def checked_recurrence(raw: Any) -> dict[str, Any]:
    """A stored recurrence dict (from the SDK or a REST body) checked again."""
    if not isinstance(raw, dict):
        raise UserError("A recurrence must be an object with frequency and interval.")
    raw = {k: v for k, v in raw.items() if k != "anchor"}
    unknown = sorted(set(raw) - set(_RECURRENCE_FIELDS))
    if unknown:
        raise UserError(
            f"Unknown recurrence field(s) {', '.join(unknown)}; a recurrence has "
            f"{', '.join(_RECURRENCE_FIELDS)}."
        )
    if raw.get("frequency") == "Cron" or raw.get("cron") is not None:
        return rec.check_recurrence(
            None,
            None,
            cron=raw.get("cron"),
            start_time=raw.get("start_time"),
            time_zone=raw.get("time_zone"),
        )
    return rec.check_recurrence(
        raw.get("frequency"),
        raw.get("interval"),
        **{k: raw.get(k) for k in _RECURRENCE_FIELDS[2:8]},
    )


def _stored(checked: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {**checked, "anchor": now.replace(microsecond=0).isoformat()}


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise UserError(f"A schedule needs a {what} of 1-255 characters, got {name!r}.")
    return name


def schedule_pipeline_id(ws: WorkspaceStore, schedule: ScheduleRecord) -> str:
    """The published pipeline a schedule submits now (an endpoint's current default);
    NotFoundError or PipelineDisabledError when it cannot."""
    from headrace.engine.publishing import endpoint_pipeline_id

    if schedule.pipeline_endpoint_id is not None:
        endpoint = ws.meta.get_pipeline_endpoint(id=schedule.pipeline_endpoint_id)
        return endpoint_pipeline_id(endpoint, None)
    assert schedule.pipeline_id is not None
    return schedule.pipeline_id


def _check_target(
    ws: WorkspaceStore,
    pipeline_id: str | None,
    pipeline_endpoint_id: str | None,
    parameters: dict[str, Any],
    data_path_parameter_name: str | None,
) -> None:
    """The pipeline (or endpoint) exists and is Active, and the parameters fit it."""
    from headrace.engine.publishing import endpoint_pipeline_id

    if (pipeline_id is None) == (pipeline_endpoint_id is None):
        raise UserError("A schedule submits a published pipeline or a pipeline endpoint: give one.")
    if pipeline_endpoint_id is not None:
        endpoint = ws.meta.get_pipeline_endpoint(id=pipeline_endpoint_id)
        pipeline_id = endpoint_pipeline_id(endpoint, None)
    assert pipeline_id is not None
    published = ws.meta.get_published_pipeline(pipeline_id)
    if published.status != ACTIVE:
        raise PipelineDisabledError(
            f"Published pipeline {published.name!r} ({published.id}) is {published.status}; "
            "a schedule cannot submit it. Enable it first with "
            f"PublishedPipeline.get(ws, {published.id!r}).enable()."
        )
    graph = load_graph(ws.meta, published.graph_id)
    resolve_parameters(graph, parameters)  # ParameterError naming each problem
    if data_path_parameter_name is not None:
        datapaths = [p.name for p in graph.parameters if p.type == "datapath"]
        if data_path_parameter_name not in datapaths:
            raise UserError(
                f"data_path_parameter_name {data_path_parameter_name!r} is not a DataPath "
                f"parameter of pipeline {published.name!r}"
                f"{did_you_mean(data_path_parameter_name, datapaths)}; its DataPath "
                f"parameters: {', '.join(datapaths) or 'none'}."
            )


def _trigger_fields(
    ws: WorkspaceStore,
    datastore_name: str | None,
    path_on_datastore: str | None,
    polling_interval: Any,
    include_subfolders: Any,
    run_per: Any,
) -> dict[str, Any]:
    if datastore_name is None:
        return {}
    ws.datastore_files(datastore_name)  # DatastoreNotFoundError lists the known ones
    if (
        isinstance(polling_interval, bool)
        or not isinstance(polling_interval, (int, float))
        or not 0 < polling_interval <= 60 * 24 * 31
    ):
        raise UserError(
            f"polling_interval is in minutes and must be a positive number, got "
            f"{polling_interval!r}."
        )
    if run_per not in RUN_PER:
        raise UserError(f"run_per {run_per!r} is not valid; use one of {', '.join(RUN_PER)}.")
    return {
        "datastore_name": datastore_name,
        "path_on_datastore": clean_relative_path(path_on_datastore or "", what="path_on_datastore"),
        "polling_interval": float(polling_interval),
        "trigger": {"include_subfolders": bool(include_subfolders), "run_per": run_per},
    }


def create_schedule(
    ws: WorkspaceStore,
    *,
    name: str,
    experiment_name: str,
    pipeline_id: str | None = None,
    pipeline_endpoint_id: str | None = None,
    recurrence: dict[str, Any] | None = None,
    description: str | None = None,
    pipeline_parameters: dict[str, Any] | None = None,
    datastore_name: str | None = None,
    polling_interval: float = 5,
    data_path_parameter_name: str | None = None,
    continue_on_step_failure: bool | None = None,
    path_on_datastore: str | None = None,
    include_subfolders: bool = False,
    run_per: str = "file",
    catch_up: str = "latest",
    now: datetime | None = None,
) -> ScheduleRecord:
    """Check everything, then store an Active schedule whose first slot (or first poll,
    which only takes stock of the files there) is computed from `now`."""
    now = now or utcnow()
    _check_name(name, "name")
    if not isinstance(experiment_name, str) or not _EXPERIMENT.match(experiment_name):
        raise UserError(
            f"Experiment name {experiment_name!r} is invalid: use 1-255 letters, digits, "
            "'-' or '_', starting with a letter or digit."
        )
    if recurrence is not None and datastore_name is not None:
        raise UserError(
            "A schedule takes a recurrence or a datastore, not both: give recurrence= for a "
            "time schedule, or datastore= for a trigger on changed files."
        )
    if recurrence is None and datastore_name is None:
        raise UserError(
            "A schedule needs a recurrence (ScheduleRecurrence) or a datastore to watch."
        )
    if data_path_parameter_name is not None and datastore_name is None:
        raise UserError("data_path_parameter_name only applies to a schedule with a datastore.")
    if catch_up not in CATCH_UP_POLICIES:
        raise UserError(
            f"catch_up {catch_up!r} is not valid; use one of {', '.join(CATCH_UP_POLICIES)}."
        )
    parameters = json_tags(pipeline_parameters or {}, "pipeline_parameters")
    checked = None if recurrence is None else _stored(checked_recurrence(recurrence), now)
    _check_target(ws, pipeline_id, pipeline_endpoint_id, parameters, data_path_parameter_name)
    fields = _trigger_fields(
        ws, datastore_name, path_on_datastore, polling_interval, include_subfolders, run_per
    )
    next_fire_at = now if checked is None else rec.first_slot(checked, now, now)
    return ws.meta.create_schedule(
        name=name,
        description=description,
        pipeline_id=pipeline_id,
        pipeline_endpoint_id=pipeline_endpoint_id,
        experiment_name=experiment_name,
        status=ACTIVE,
        recurrence=checked,
        data_path_parameter_name=data_path_parameter_name,
        pipeline_parameters=parameters,
        continue_on_step_failure=continue_on_step_failure,
        catch_up=catch_up,
        next_fire_at=next_fire_at,
        **({"polling_interval": 5.0, "trigger": {}} | fields),
    )


def update_schedule(
    ws: WorkspaceStore,
    schedule_id: str,
    *,
    name: str | None = None,
    description: str | None = None,
    recurrence: dict[str, Any] | None = None,
    pipeline_parameters: dict[str, Any] | None = None,
    status: str | None = None,
    datastore_name: str | None = None,
    polling_interval: float | None = None,
    data_path_parameter_name: str | None = None,
    continue_on_step_failure: bool | None = None,
    path_on_datastore: str | None = None,
    experiment_name: str | None = None,
    catch_up: str | None = None,
    now: datetime | None = None,
) -> ScheduleRecord:
    """Change what is given (None: unchanged). A new recurrence starts as a new schedule
    would; enabling a recurrence again fires at its next slot from now."""
    now = now or utcnow()
    current = ws.meta.get_schedule(schedule_id)
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = _check_name(name, "name")
    if description is not None:
        changes["description"] = description
    if experiment_name is not None:
        if not isinstance(experiment_name, str) or not _EXPERIMENT.match(experiment_name):
            raise UserError(f"Experiment name {experiment_name!r} is invalid.")
        changes["experiment_name"] = experiment_name
    if catch_up is not None:
        if catch_up not in CATCH_UP_POLICIES:
            raise UserError(
                f"catch_up {catch_up!r} is not valid; use one of {', '.join(CATCH_UP_POLICIES)}."
            )
        changes["catch_up"] = catch_up
    if status is not None:
        if status not in (ACTIVE, DISABLED):
            raise UserError(f"Schedule status {status!r} is not valid; use Active or Disabled.")
        changes["status"] = status
    if continue_on_step_failure is not None:
        changes["continue_on_step_failure"] = continue_on_step_failure
    if recurrence is not None and (current.datastore_name or datastore_name):
        raise UserError(
            "This schedule watches a datastore; a recurrence cannot be added to it (create "
            "a separate schedule with the recurrence)."
        )
    if datastore_name is not None and current.recurrence is not None:
        raise UserError(
            "This schedule has a recurrence; a datastore cannot be added to it (create a "
            "separate schedule for the datastore)."
        )
    parameters = current.pipeline_parameters
    if pipeline_parameters is not None:
        parameters = json_tags(pipeline_parameters, "pipeline_parameters")
        changes["pipeline_parameters"] = parameters
    data_param = (
        current.data_path_parameter_name
        if data_path_parameter_name is None
        else data_path_parameter_name
    )
    if pipeline_parameters is not None or data_path_parameter_name is not None:
        _check_target(ws, current.pipeline_id, current.pipeline_endpoint_id, parameters, data_param)
        changes["data_path_parameter_name"] = data_param
    if current.datastore_name is not None and (
        datastore_name is not None or polling_interval is not None or path_on_datastore is not None
    ):
        fields = _trigger_fields(
            ws,
            datastore_name or current.datastore_name,
            current.path_on_datastore if path_on_datastore is None else path_on_datastore,
            current.polling_interval if polling_interval is None else polling_interval,
            current.trigger.get("include_subfolders", False),
            current.trigger.get("run_per", "file"),
        )
        changes.update(fields)
        if (fields["datastore_name"], fields["path_on_datastore"]) != (
            current.datastore_name,
            current.path_on_datastore,
        ):
            ws.meta.forget_listing(schedule_id)  # a new place to watch: take stock afresh
    if recurrence is not None:
        checked = _stored(checked_recurrence(recurrence), now)
        changes["recurrence"] = checked
        changes["next_fire_at"] = rec.first_slot(checked, now, now)
    elif status == ACTIVE and current.status != ACTIVE:
        if current.recurrence is not None:
            changes["next_fire_at"] = rec.next_slot(current.recurrence, now, current.created_at)
        else:
            changes["next_fire_at"] = now
    return ws.meta.update_schedule(schedule_id, **changes)
