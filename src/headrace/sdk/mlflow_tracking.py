"""MLflow's tracking REST API, answered from headrace's runs: one request (an endpoint such as
`runs/log-metric` and its JSON body) in, MLflow's JSON answer out.

Both ways MLflow reaches headrace use it: the server's `/api/2.0/mlflow/...` routes
(server/api_mlflow.py) and the `headrace://` tracking store the `mlflow` client loads in a
step or for a workspace folder (sdk/mlflow_store.py). Nothing here imports mlflow.

Which headrace run is an MLflow run: a step run or a pipeline run, by its id; MLflow's
experiment id is the headrace experiment's name. MLflow metrics are scalar metrics (with
their step), parameters are tags named `mlflow.param.<key>`, tags are tags.

Inside a step (`StepSide`) the step's own run is written through the run journal, exactly as
`Run.get_context().log` does (the agent records it; no database, no network), and read back
from it. There, as in an Azure ML job, the step's run is the only run: `mlflow.start_run()`
(with or without `MLFLOW_RUN_ID`) and `mlflow.set_experiment(...)` give the step's run and
experiment instead of making new ones. Other runs are read and written through a `Backend`
when there is one (a workspace folder, or the server's own).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headrace.errors import HeadraceError, NotFoundError, RunNotFoundError, UserError
from headrace.sdk.mlflow_models import LoggedModels
from headrace.store.journal import JOURNAL_NAME, read_journal
from headrace.store.records import MetricRecord

__all__ = ["ENDPOINTS", "PARAM_PREFIX", "MlflowTracking", "StepSide", "mlflow_status"]

PARAM_PREFIX = "mlflow.param."

# headrace run status -> MLflow RunStatus name
_STATUS = {
    "NotStarted": "SCHEDULED",
    "Queued": "SCHEDULED",
    "Preparing": "SCHEDULED",
    "Running": "RUNNING",
    "Finished": "FINISHED",
    "Completed": "FINISHED",
    "Failed": "FAILED",
    "Canceled": "KILLED",
    "Cancelled": "KILLED",
}


def mlflow_status(status: str) -> str:
    return _STATUS.get(status, "RUNNING")


def _millis(when: Any) -> int | None:
    return None if when is None else int(when.timestamp() * 1000)


def _float(value: Any, what: str) -> float:
    try:
        return float(value)  # MLflow sends NaN and infinities as the strings "NaN", "Infinity"
    except (TypeError, ValueError):
        raise UserError(f"{what} must be a number, not {value!r}.") from None


# MLflow's own limits on names and values; longer ones are refused as MLflow refuses them.
KEY_MAX = 250
VALUE_MAX = 8000
STEP_MAX = 2**62


def _required(body: dict[str, Any], key: str, endpoint: str) -> str:
    value = body.get(key)
    if value is None or value == "":
        raise UserError(f"MLflow request {endpoint} needs {key!r}.")
    return str(value)


def _key(value: Any, what: str) -> str:
    text = str(value)
    if not text or len(text) > KEY_MAX:
        raise UserError(f"{what} name {text[:40]!r} must be 1 to {KEY_MAX} characters.")
    return text


def _text(value: Any, what: str) -> str:
    text = "" if value is None else str(value)
    if len(text) > VALUE_MAX:
        raise UserError(f"{what} value is longer than {VALUE_MAX} characters; shorten it.")
    return text


def _run_id(body: dict[str, Any], endpoint: str) -> str:
    return str(body.get("run_id") or body.get("run_uuid") or _required(body, "run_id", endpoint))


@dataclass
class StepSide:
    """The step this process runs as: its run, run folder and experiment (from HEADRACE_*)."""

    run_id: str
    run_dir: Path
    experiment: str
    step_name: str
    started_ms: int
    _file: Any = field(default=None, repr=False, compare=False)
    _pid: int = field(default=0, repr=False, compare=False)

    @property
    def journal(self) -> Path:
        return self.run_dir / JOURNAL_NAME

    def append(self, entries: list[dict[str, Any]]) -> None:
        """Entries in one write (a log_batch is one append, as a script's run.log is), on a
        handle kept open: the agent reads the journal by offset while the step runs, and each
        write is one O_APPEND write(2) of whole lines, so nothing half-written is read."""
        text = "".join(
            json.dumps({"target": "self", **e}, separators=(",", ":")) + "\n" for e in entries
        )
        if self._file is None or self._pid != os.getpid():  # a forked child opens its own
            self.journal.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.journal.open("a", encoding="utf-8", buffering=1 << 16)
            self._pid = os.getpid()
        self._file.write(text)
        self._file.flush()


@dataclass
class _RunView:
    run_id: str
    experiment: str
    name: str
    status: str
    start_ms: int | None
    end_ms: int | None
    metrics: list[MetricRecord]
    tags: dict[str, Any]


class MlflowTracking:
    """Answers MLflow tracking requests. `backend`: a headrace Backend, or None (a step that
    reaches only its own run); `artifact_uri(run_id)`: where MLflow puts a run's artifacts."""

    def __init__(
        self,
        backend: Any | None,
        *,
        step: StepSide | None = None,
        artifact_uri: Callable[[str], str],
    ) -> None:
        self.backend = backend
        self.step = step
        self.artifact_uri = artifact_uri
        self.models = LoggedModels(self)

    # -- dispatch ----------------------------------------------------------------------------
    def handle(self, endpoint: str, body: dict[str, Any], method: str = "POST") -> dict[str, Any]:
        """MLflow's answer to `method` `endpoint` (the path under /api/2.0/mlflow/)."""
        endpoint = endpoint.split("?", 1)[0].strip("/")
        try:
            result: dict[str, Any] = self._route(endpoint, method)(body)
        except HeadraceError:
            raise
        except (TypeError, KeyError, AttributeError, ValueError) as exc:
            # A body of the wrong shape (a list where MLflow sends objects, and so on).
            raise UserError(
                f"MLflow request {endpoint} is malformed ({type(exc).__name__}: {exc}); send "
                "it as MLflow's client does."
            ) from exc
        return result

    def _route(self, endpoint: str, method: str) -> Callable[[dict[str, Any]], Any]:
        parts = endpoint.split("/")
        if parts[0] == "logged-models" and len(parts) in (2, 3) and parts[1] != "search":
            return self.models.route(parts[1], parts[2] if len(parts) == 3 else "", method)
        handler = getattr(self, "_" + endpoint.replace("/", "_").replace("-", "_"), None)
        if endpoint not in ENDPOINTS or handler is None:
            raise UserError(
                f"headrace's MLflow API does not serve {endpoint[:200]!r}; it serves runs, "
                "parameters, metrics, tags, logged models and artifacts: "
                + ", ".join(sorted(ENDPOINTS))
            )
        found: Callable[[dict[str, Any]], Any] = handler
        return found

    # -- experiments ---------------------------------------------------------------------
    def _experiment(self, name: str) -> dict[str, Any]:
        return {
            "experiment_id": name,
            "name": name,
            "artifact_location": "",
            "lifecycle_stage": "active",
            "tags": [],
        }

    def _experiment_names(self) -> list[str]:
        names: list[str] = []
        if self.backend is not None:
            names = [record.name for record, _count in self.backend.list_experiments()]
        if self.step is not None and self.step.experiment not in names:
            names.append(self.step.experiment)
        return names

    def _find_experiment(self, name: str) -> dict[str, Any]:
        if self.step is not None:
            # As in an Azure ML job: a step's runs stay in its experiment, whatever
            # mlflow.set_experiment(...) names.
            return self._experiment(self.step.experiment)
        if name in self._experiment_names():
            return self._experiment(name)
        raise NotFoundError(
            f"No experiment named {name!r} in this workspace; experiments are made by "
            "submitting a pipeline to them (Experiment(ws, name).submit(pipeline))."
        )

    def _experiments_get_by_name(self, body: dict[str, Any]) -> dict[str, Any]:
        name = _required(body, "experiment_name", "experiments/get-by-name")
        return {"experiment": self._find_experiment(name)}

    def _experiments_get(self, body: dict[str, Any]) -> dict[str, Any]:
        name = _required(body, "experiment_id", "experiments/get")
        return {"experiment": self._find_experiment(name)}

    def _experiments_create(self, body: dict[str, Any]) -> dict[str, Any]:
        name = _required(body, "name", "experiments/create")
        if self.step is None:
            raise UserError(
                f"Experiment {name!r} cannot be made through MLflow: headrace makes an "
                "experiment when a pipeline is submitted to it, and MLflow logs from the "
                "steps of its runs."
            )
        return {"experiment_id": self.step.experiment}

    def _experiments_search(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"experiments": [self._experiment(n) for n in self._experiment_names()]}

    # -- runs ----------------------------------------------------------------------------
    def _own(self, run_id: str) -> bool:
        return self.step is not None and run_id == self.step.run_id

    def experiment_of(self, run_id: str) -> str:
        """The experiment of run `run_id` (a RunNotFoundError if there is no such run): one
        or two row reads, none of its metrics."""
        if self.step is not None and self._own(run_id):
            return self.step.experiment
        if self.backend is None:
            return self.view(run_id).experiment  # raises: a step reaches only its own run
        step = self.backend.find_step_run(run_id)
        pipeline_run_id = step.pipeline_run_id if step is not None else run_id
        return str(self.backend.get_pipeline_run(pipeline_run_id).experiment_name)

    def view(self, run_id: str) -> _RunView:
        if self.step is not None and self._own(run_id):
            return self._step_view(self.step)
        if self.backend is None:
            raise RunNotFoundError(
                f"Run {run_id!r} is not this step's run; a step logs to and reads its own "
                f"run through MLflow (MLFLOW_RUN_ID, {self.step.run_id if self.step else ''})."
            )
        step = self.backend.find_step_run(run_id)
        if step is not None:
            parent = self.backend.get_pipeline_run(step.pipeline_run_id)
            return _RunView(
                run_id,
                parent.experiment_name,
                step.name,
                step.status,
                _millis(step.started_at or step.created_at),
                _millis(step.ended_at),
                self.backend.list_metrics([run_id]),
                dict(step.tags),
            )
        run = self.backend.get_pipeline_run(run_id)  # RunNotFoundError names the id
        return _RunView(
            run_id,
            run.experiment_name,
            run.description or run.experiment_name,
            run.status,
            _millis(getattr(run, "started_at", None) or run.created_at),
            _millis(getattr(run, "ended_at", None)),
            self.backend.list_metrics([run_id]),
            dict(run.tags),
        )

    def _step_view(self, step: StepSide) -> _RunView:
        entries, _ = read_journal(step.journal, 0)
        metrics: list[MetricRecord] = []
        tags: dict[str, Any] = {}
        for e in entries:
            if e.target != "self":
                continue
            if e.kind == "tag":
                tags[e.name] = e.value
            else:
                metrics.append(MetricRecord(step.run_id, e.name, e.kind, e.value, e.step))
        return _RunView(
            step.run_id, step.experiment, step.step_name, "Running", step.started_ms, None,
            metrics, tags,
        )  # fmt: skip

    def _run_info(self, view: _RunView) -> dict[str, Any]:
        info: dict[str, Any] = {
            "run_id": view.run_id,
            "run_uuid": view.run_id,
            "run_name": view.name,
            "experiment_id": view.experiment,
            "user_id": "",
            "status": mlflow_status(view.status),
            "artifact_uri": self.artifact_uri(view.run_id),
            "lifecycle_stage": "active",
        }
        if view.start_ms is not None:
            info["start_time"] = view.start_ms
        if view.end_ms is not None:
            info["end_time"] = view.end_ms
        return info

    def _run(self, view: _RunView) -> dict[str, Any]:
        latest: dict[str, dict[str, Any]] = {}
        for m in _scalars(view.metrics):
            latest[m["key"]] = m
        params = [
            {"key": k[len(PARAM_PREFIX) :], "value": str(v)}
            for k, v in view.tags.items()
            if k.startswith(PARAM_PREFIX)
        ]
        tags = [
            {"key": k, "value": str(v)}
            for k, v in view.tags.items()
            if not k.startswith(PARAM_PREFIX)
        ]
        tags.append({"key": "mlflow.runName", "value": view.name})
        return {
            "info": self._run_info(view),
            "data": {"metrics": list(latest.values()), "params": params, "tags": tags},
            "inputs": {},
        }

    def _runs_get(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"run": self._run(self.view(_run_id(body, "runs/get")))}

    def _runs_create(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.step is None:
            raise UserError(
                "mlflow.start_run() outside a pipeline step has no headrace run to log to: "
                "MLflow calls in a step's script land in that step's run (MLFLOW_RUN_ID), "
                "or pass the id of an existing run, mlflow.start_run(run_id=...)."
            )
        # In a step every MLflow run is the step's run (a second start_run, a nested one).
        tags = {
            _key(t["key"], "Tag"): _text(t.get("value"), "Tag")
            for t in _objects(body, "tags")
            if t["key"] not in ("mlflow.parentRunId", "mlflow.runName")
        }
        if tags:
            self._write(self.step.run_id, tags=tags)
        return {"run": self._run(self.view(self.step.run_id))}

    def _runs_update(self, body: dict[str, Any]) -> dict[str, Any]:
        # A step run's status is its process's: MLflow's RUNNING/FINISHED is not recorded.
        return {"run_info": self._run_info(self.view(_run_id(body, "runs/update")))}

    def _runs_search(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("filter"):
            raise UserError(
                "headrace's MLflow API searches runs without a filter; read metrics of "
                "many runs with `headrace run metrics` or the portal's compare page."
            )
        wanted = [str(e) for e in body.get("experiment_ids") or []]
        limit = int(body.get("max_results") or 1000)
        runs: list[dict[str, Any]] = []
        if self.backend is None:
            if self.step is not None and (not wanted or self.step.experiment in wanted):
                runs.append(self._run(self.view(self.step.run_id)))
            return {"runs": runs}
        for name in wanted or self._experiment_names():
            for pipeline in self.backend.list_pipeline_runs(experiment_name=name, limit=limit):
                for step in self.backend.list_step_runs(pipeline.id):
                    runs.append(self._run(self.view(step.id)))
                    if len(runs) >= limit:
                        return {"runs": runs}
        return {"runs": runs}

    # -- logging -------------------------------------------------------------------------
    def _write(
        self,
        run_id: str,
        metrics: Sequence[tuple[str, float, int | None]] = (),
        tags: dict[str, Any] | None = None,
    ) -> None:
        tags = tags or {}
        if self.step is not None and self._own(run_id):
            entries = [
                {"kind": "scalar", "name": k, "value": _journal_value(v), "step": s}
                for k, v, s in metrics
            ]
            entries += [{"kind": "tag", "name": k, "value": v} for k, v in tags.items()]
            self.step.append(entries)
            return
        self.experiment_of(run_id)  # the run exists (or a RunNotFoundError naming it)
        assert self.backend is not None
        if metrics:
            self.backend.log_metrics(
                [MetricRecord(run_id, k, "scalar", _journal_value(v), s) for k, v, s in metrics]
            )
        if tags:
            self.backend.tag_run(run_id, tags)

    def _runs_log_metric(self, body: dict[str, Any]) -> dict[str, Any]:
        key = _key(_required(body, "key", "runs/log-metric"), "Metric")
        value = _float(body.get("value"), f"Metric {key!r}")
        self._write(_run_id(body, "runs/log-metric"), [(key, value, _step(body))])
        return {}

    def _runs_log_parameter(self, body: dict[str, Any]) -> dict[str, Any]:
        key = _key(_required(body, "key", "runs/log-parameter"), "Parameter")
        value = _text(body.get("value"), f"Parameter {key!r}")
        self._write(_run_id(body, "runs/log-parameter"), tags={PARAM_PREFIX + key: value})
        return {}

    def _runs_set_tag(self, body: dict[str, Any]) -> dict[str, Any]:
        key = _key(_required(body, "key", "runs/set-tag"), "Tag")
        value = _text(body.get("value"), f"Tag {key!r}")
        self._write(_run_id(body, "runs/set-tag"), tags={key: value})
        return {}

    def _runs_log_batch(self, body: dict[str, Any]) -> dict[str, Any]:
        run_id = _run_id(body, "runs/log-batch")
        metrics = [
            (_key(m["key"], "Metric"), _float(m.get("value"), f"Metric {m['key']!r}"), _step(m))
            for m in _objects(body, "metrics")
        ]
        tags = {
            PARAM_PREFIX + _key(p["key"], "Parameter"): _text(p.get("value"), "Parameter")
            for p in _objects(body, "params")
        }
        tags.update(
            {_key(t["key"], "Tag"): _text(t.get("value"), "Tag") for t in _objects(body, "tags")}
        )
        self._write(run_id, metrics, tags)
        return {}

    def _runs_log_inputs(self, body: dict[str, Any]) -> dict[str, Any]:
        # Dataset inputs (autologging records the training data's digest): headrace keeps
        # its own lineage of registered datasets; MLflow's is accepted and not kept.
        self.experiment_of(_run_id(body, "runs/log-inputs"))
        return {}

    def _logged_models(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.models.create(body)

    def _runs_outputs(self, body: dict[str, Any]) -> dict[str, Any]:
        # Which models a run produced: they are kept in its own files already.
        self.experiment_of(_run_id(body, "runs/outputs"))
        return {}

    def _runs_log_model(self, body: dict[str, Any]) -> dict[str, Any]:
        # MLflow 2 records a logged model's MLmodel on its run; the files are the record.
        self.experiment_of(_run_id(body, "runs/log-model"))
        return {}

    def _logged_models_search(self, body: dict[str, Any]) -> dict[str, Any]:
        # MLflow 3 looks for models logged by name before listing `runs:/` artifacts;
        # headrace keeps models in its registry (run.register_model), none here.
        return {"models": []}

    def _metrics_get_history(self, body: dict[str, Any]) -> dict[str, Any]:
        key = _required(body, "metric_key", "metrics/get-history")
        view = self.view(_run_id(body, "metrics/get-history"))
        return {"metrics": [m for m in _scalars(view.metrics) if m["key"] == key]}


ENDPOINTS: dict[str, str] = {
    # endpoint under /api/2.0/mlflow/ -> HTTP method MLflow's client uses
    "experiments/get-by-name": "GET",
    "experiments/get": "GET",
    "experiments/create": "POST",
    "experiments/search": "POST",
    "runs/get": "GET",
    "runs/create": "POST",
    "runs/update": "POST",
    "runs/search": "POST",
    "runs/log-metric": "POST",
    "runs/log-parameter": "POST",
    "runs/set-tag": "POST",
    "runs/log-batch": "POST",
    "runs/log-inputs": "POST",
    "metrics/get-history": "GET",
    "logged-models/search": "POST",
    "logged-models": "POST",
    "runs/outputs": "POST",
    "runs/log-model": "POST",
}


def _step(body: dict[str, Any]) -> int:
    try:
        step = int(body.get("step") or 0)
    except (TypeError, ValueError):
        step = -1
    if not 0 <= step <= STEP_MAX:
        raise UserError(
            f"A metric's step must be an integer from 0 to 2**62, not {body.get('step')!r}."
        )
    return step


def _objects(body: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = body.get(key) or []
    if not isinstance(items, list) or not all(isinstance(i, dict) and "key" in i for i in items):
        raise UserError(f"{key!r} must be a list of objects with a 'key', as MLflow sends it.")
    return items


def _journal_value(value: float) -> float | str:
    # JSON has no NaN or infinity: such values are kept as MLflow spells them.
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _scalars(metrics: list[MetricRecord]) -> list[dict[str, Any]]:
    found = []
    now = int(time.time() * 1000)
    for m in metrics:
        if m.kind != "scalar" or isinstance(m.value, bool):
            continue
        try:
            value = float(m.value)
        except (TypeError, ValueError):
            continue
        found.append(
            {
                "key": m.name,
                "value": value if math.isfinite(value) else str(m.value),
                "timestamp": _millis(m.created_at) or now,
                "step": m.step or 0,
            }
        )
    return found
