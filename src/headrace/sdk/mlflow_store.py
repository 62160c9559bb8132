"""The `mlflow` client's tracking store for `headrace://<workspace folder>` URIs.

headrace registers it under MLflow's `mlflow.tracking_store` entry point, so any process
with headrace installed resolves `MLFLOW_TRACKING_URI=headrace:///path/to/workspace`:

- in a step (the step runtime sets that URI and `MLFLOW_RUN_ID`), `mlflow.log_metric` and
  the rest write the step's run journal, as `Run.get_context().log` does: no server, no
  socket, no database (a confined step has none of them), microseconds a call; artifacts go
  straight into the run's files (`file://` artifact URI of its run folder);
- elsewhere (a notebook, `ws.get_mlflow_tracking_uri()` of a workspace folder), it opens the
  workspace and answers from its store.

It is MLflow's REST store with the HTTP call replaced: every request is still MLflow's own
request message, answered by `sdk.mlflow_tracking.MlflowTracking`, the code behind the
server's `/api/2.0/mlflow` routes, so both ways behave alike. This module is imported only by
mlflow (it imports mlflow); nothing in headrace imports it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    RESOURCE_DOES_NOT_EXIST,
)
from mlflow.store.tracking.rest_store import RestStore
from mlflow.utils.proto_json_utils import parse_dict
from mlflow.utils.rest_utils import MlflowHostCreds

from headrace.errors import HeadraceError, NotFoundError, UserError
from headrace.sdk.mlflow_tracking import MlflowTracking, StepSide

__all__ = ["SCHEME", "HeadraceTrackingStore", "workspace_of_uri"]

SCHEME = "headrace"
_PREFIX = "/api/2.0/mlflow/"


def workspace_of_uri(uri: str) -> Path:
    """The workspace folder of `headrace:///path`."""
    parsed = urlparse(uri)
    if parsed.scheme != SCHEME or not parsed.path or parsed.netloc not in ("", "localhost"):
        raise UserError(
            f"MLflow tracking URI {uri!r} is not a headrace workspace URI; use "
            "ws.get_mlflow_tracking_uri() (headrace:///path/to/workspace)."
        )
    return Path(unquote(parsed.path))


def _step_side(root: Path) -> StepSide | None:
    """This process's step, when it runs as a step of the workspace at `root` and can write
    its run folder."""
    env = os.environ
    run_id, run_dir = env.get("HEADRACE_RUN_ID"), env.get("HEADRACE_RUN_DIR")
    if not run_id or not run_dir or not os.access(run_dir, os.W_OK):
        return None
    mine = env.get("HEADRACE_WORKSPACE")
    if mine and os.path.realpath(mine) != os.path.realpath(root):
        return None
    return StepSide(
        run_id=run_id,
        run_dir=Path(run_dir),
        experiment=env.get("HEADRACE_EXPERIMENT", ""),
        step_name=env.get("HEADRACE_STEP_NAME", run_id),
        started_ms=int(time.time() * 1000),
    )


class HeadraceTrackingStore(RestStore):
    """MLflow's tracking store over a headrace workspace folder (see the module docstring)."""

    def __init__(self, store_uri: str, artifact_uri: str | None = None) -> None:
        super().__init__(lambda: MlflowHostCreds(store_uri))  # type: ignore[no-untyped-call]
        self._root = workspace_of_uri(store_uri)
        step = _step_side(self._root)
        self._tracking = MlflowTracking(None, step=step, artifact_uri=self._artifact_uri)
        self._backend: Any = None

    def _artifact_uri(self, run_id: str) -> str:
        step = self._tracking.step
        if step is not None and run_id == step.run_id:
            return step.run_dir.as_uri()
        return (self._root / "artifacts" / "runs" / run_id).as_uri()

    def _open_backend(self) -> Any:
        """The workspace's backend, opened on the first request about another run (a step
        that logs only its own never opens the database)."""
        if self._backend is None:
            from headrace.sdk.workspace import Workspace

            run_id = os.environ.get("HEADRACE_RUN_ID")
            if run_id:
                # A step whose run folder is not writable here: it cannot reach its run's
                # journal, and a confined step may not open the workspace either.
                raise UserError(
                    f"MLflow in step run {run_id} cannot reach its run: its run folder "
                    f"({os.environ.get('HEADRACE_RUN_DIR') or 'HEADRACE_RUN_DIR unset'}) is "
                    "not writable on this machine. Log with Run.get_context().log(...), "
                    "which goes through the server with the step's token."
                )
            self._backend = Workspace(path=str(self._root)).backend
        return self._backend

    def _answer(self, endpoint: str, body: dict[str, Any], method: str) -> dict[str, Any]:
        if self._tracking.step is None and self._tracking.backend is None:
            self._tracking.backend = self._open_backend()
        return self._tracking.handle(endpoint, body, method)

    def _call_endpoint(
        self,
        api: Any,
        json_body: str | None = None,
        endpoint: str | None = None,
        retry_timeout_seconds: float | None = None,
        response_proto: Any = None,
        **_other: Any,
    ) -> Any:
        known = getattr(self, "_V3_METHOD_TO_INFO", {})
        info = known.get(api) if api in getattr(self, "_V3_APIS", ()) else None
        path, method = info or self._METHOD_TO_INFO[api]
        name = (endpoint or path).split(_PREFIX, 1)[-1]
        body = json.loads(json_body) if json_body else {}
        try:
            answer = self._answer(name, body, method)
        except NotFoundError as exc:
            raise MlflowException(str(exc), error_code=RESOURCE_DOES_NOT_EXIST) from exc
        except HeadraceError as exc:
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from exc
        response = response_proto or api.Response()
        parse_dict(answer, response)  # type: ignore[no-untyped-call]
        return response
