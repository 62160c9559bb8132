"""MLflow 3's logged models (`mlflow.<flavor>.log_model`, autologging's models), kept with
the run that logged them: the model's files are run files under `logged_models/<model id>/`,
its record (MLflow's LoggedModel JSON) the run file `.headrace/mlflow-models/<model id>.json`
(hidden from the run's file list, like the journal).

A model id is `m-<run id>-<8 hex>`, so a request about a model finds its run without an index,
and the server's access rules can tell whose model it is. Used by `sdk.mlflow_tracking`.
"""

from __future__ import annotations

import json
import re
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headrace.errors import NotFoundError, UserError

if TYPE_CHECKING:
    from headrace.sdk.mlflow_tracking import MlflowTracking

__all__ = ["MODELS_FOLDER", "LoggedModels", "run_of_model"]

MODELS_FOLDER = "logged_models"
_RECORDS = ".headrace/mlflow-models"
_MODEL_ID = re.compile(r"^m-([A-Za-z0-9][\w-]{0,200})-[0-9a-f]{8}$")


def run_of_model(model_id: str) -> str | None:
    """The run a model id names (None: not a headrace model id)."""
    match = _MODEL_ID.match(model_id)
    return match.group(1) if match else None


def _pairs(items: Any, what: str) -> list[dict[str, str]]:
    if not isinstance(items, list) or not all(isinstance(i, dict) and "key" in i for i in items):
        raise UserError(f"{what!r} must be a list of objects with a 'key', as MLflow sends it.")
    return [{"key": str(i["key"]), "value": str(i.get("value", ""))} for i in items]


class LoggedModels:
    """The logged-models requests of one `MlflowTracking`."""

    def __init__(self, tracking: MlflowTracking) -> None:
        self.tracking = tracking

    def route(self, model_id: str, sub: str, method: str) -> Callable[[dict[str, Any]], Any]:
        found = {
            ("GET", ""): self.get,
            ("PATCH", ""): self.finalize,
            ("POST", "params"): self.log_params,
            ("PATCH", "tags"): self.set_tags,
        }.get((method, sub))
        if found is None:
            raise UserError(
                f"headrace's MLflow API does not serve {method} logged-models/<id>"
                f"{'/' + sub if sub else ''}; logged models can be made, read, finalized, "
                "tagged and given parameters."
            )
        return lambda body: found(model_id, body)

    # -- records ---------------------------------------------------------------------------
    def _run(self, model_id: str) -> str:
        run_id = run_of_model(model_id)
        if run_id is None:
            raise NotFoundError(f"No logged model {model_id[:80]!r}: not a headrace model id.")
        return run_id

    def _load(self, model_id: str) -> dict[str, Any]:
        run_id = self._run(model_id)
        name = f"{_RECORDS}/{model_id}.json"
        step = self.tracking.step
        try:
            if step is not None and run_id == step.run_id:
                text = (step.run_dir / name).read_text()
            elif self.tracking.backend is not None:
                text = self.tracking.backend.read_run_file(run_id, name).decode()
            else:
                text = ""
            record: dict[str, Any] = json.loads(text)
        except (OSError, ValueError, NotFoundError):
            record = {}
        if not record:
            raise NotFoundError(f"No logged model {model_id!r} in run {run_id}.")
        return record

    def _save(self, record: dict[str, Any]) -> dict[str, Any]:
        info = record["info"]
        info["last_updated_timestamp_ms"] = int(time.time() * 1000)
        run_id, name = info["source_run_id"], f"{_RECORDS}/{info['model_id']}.json"
        text = json.dumps(record, separators=(",", ":"))
        step = self.tracking.step
        if step is not None and run_id == step.run_id:
            path = step.run_dir / name
            path.parent.mkdir(parents=True, exist_ok=True)
            staged = path.with_suffix(".tmp")
            staged.write_text(text)
            staged.replace(path)
        else:
            assert self.tracking.backend is not None
            with tempfile.TemporaryDirectory() as scratch:
                staged = Path(scratch) / "model.json"
                staged.write_text(text)
                self.tracking.backend.upload_run_file(run_id, name, staged)
        return {"model": record}

    # -- requests --------------------------------------------------------------------------
    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        step = self.tracking.step
        run_id = str(body.get("source_run_id") or (step.run_id if step else ""))
        if not run_id:
            raise UserError(
                "A logged model belongs to a run in headrace: log it from a step (or in "
                "mlflow.start_run(run_id=...)), so its files are kept with that run."
            )
        experiment = self.tracking.experiment_of(run_id)  # or RunNotFoundError
        model_id = f"m-{run_id}-{secrets.token_hex(4)}"
        now = int(time.time() * 1000)
        record = {
            "info": {
                "model_id": model_id,
                "experiment_id": experiment,
                "name": str(body.get("name") or "model"),
                "creation_timestamp_ms": now,
                "artifact_uri": f"{self.tracking.artifact_uri(run_id)}/{MODELS_FOLDER}/{model_id}",
                "status": "LOGGED_MODEL_PENDING",
                "model_type": str(body.get("model_type") or ""),
                "source_run_id": run_id,
                "tags": _pairs(body.get("tags") or [], "tags"),
            },
            "data": {"params": _pairs(body.get("params") or [], "params"), "metrics": []},
        }
        return self._save(record)

    def get(self, model_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return {"model": self._load(model_id)}

    def finalize(self, model_id: str, body: dict[str, Any]) -> dict[str, Any]:
        record = self._load(model_id)
        status = str(body.get("status") or "LOGGED_MODEL_READY")
        if status not in ("LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED"):
            raise UserError(f"A logged model is finalized as READY or UPLOAD_FAILED, not {status}.")
        record["info"]["status"] = status
        return self._save(record)

    def log_params(self, model_id: str, body: dict[str, Any]) -> dict[str, Any]:
        record = self._load(model_id)
        record["data"]["params"] += _pairs(body.get("params") or [], "params")
        self._save(record)
        return {}

    def set_tags(self, model_id: str, body: dict[str, Any]) -> dict[str, Any]:
        record = self._load(model_id)
        tags = {t["key"]: t["value"] for t in record["info"].get("tags", [])}
        tags.update({t["key"]: t["value"] for t in _pairs(body.get("tags") or [], "tags")})
        record["info"]["tags"] = [{"key": k, "value": v} for k, v in tags.items()]
        self._save(record)
        return {}
