"""`Notification` and `RunTrigger`: telling people, and starting pipelines, when runs end.

SDK v1 had only `Pipeline(..., enable_email_notification=True)`, which mailed the submitter.
Here a workspace keeps named notifications (an email through an SMTP server, or a webhook
that receives a Slack-compatible JSON POST), each for some final statuses and some runs
(every run, one published pipeline's, one endpoint's, one experiment's, or only those
submitted with `enable_email_notification=True`). A `RunTrigger` starts a published
pipeline or endpoint when a run of another ends, passing its parameters or outputs
(Prefect's automations and Dagster's run status sensors do this; SDK v1 did not).

    Notification.webhook(ws, "team-slack", url="https://hooks.slack.com/services/...",
                         statuses=["Failed", "Canceled"])
    Notification.email(ws, "oncall", to=["oncall@example.com"], smtp_host="smtp.example.com",
                       smtp_port=587, smtp_tls="starttls", smtp_user="bot",
                       smtp_password="env:SMTP_PASSWORD", pipeline=published)
    RunTrigger.create(ws, "score-after-train", source=train_pipeline, target=score_pipeline,
                      experiment_name="scoring", parameters={"model": "output:train/model"})

Secrets (an SMTP password, a webhook URL with its token) are kept in the workspace's secrets
file or read from the sending process's environment ("env:NAME"); nothing here ever shows
them. All the work happens behind the workspace's Backend.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

from headrace.errors import UserError
from headrace.sdk.checks import check_workspace

if TYPE_CHECKING:
    from headrace.sdk.workspace import Workspace

__all__ = ["Notification", "RunTrigger", "destination_text", "scope_texts"]


def destination_text(document: dict[str, Any]) -> str:
    """Where a notification goes, as the CLI and the portal show it (no secret)."""
    config = document["config"]
    if document["kind"] == "webhook":
        return str(config.get("url_shown", ""))
    server = f"{config.get('smtp_host')}:{config.get('smtp_port')}"
    return f"{', '.join(config.get('to', []))} via {server}"


def scope_texts(document: dict[str, Any]) -> builtins.list[str]:
    """Which runs a notification tells about, in words."""
    parts = []
    if document.get("pipeline_id"):
        parts.append(f"pipeline {document['pipeline_id']}")
    if document.get("endpoint_id"):
        parts.append(f"endpoint {document['endpoint_id']}")
    if document.get("experiment_name"):
        parts.append(f"experiment {document['experiment_name']}")
    if document.get("on_request"):
        parts.append("runs submitted with enable_email_notification=True")
    return parts or ["every run"]


def _pipeline_id(value: Any, what: str) -> str | None:
    if value is None:
        return None
    found = getattr(value, "id", value)
    if not isinstance(found, str):
        raise UserError(f"{what} must be a PublishedPipeline or its id, not {value!r}.")
    return found


def _endpoint_name(value: Any, what: str) -> str | None:
    if value is None:
        return None
    found = getattr(value, "name", value)
    if not isinstance(found, str):
        raise UserError(f"{what} must be a PipelineEndpoint or its name, not {value!r}.")
    return found


def _statuses(statuses: Any) -> list[str] | None:
    if statuses is None:
        return None
    return [statuses] if isinstance(statuses, str) else list(statuses)


class _Named:
    """A notification's or trigger's document (as the backend gives it; no secret)."""

    def __init__(self, workspace: Workspace, document: dict[str, Any]) -> None:
        self._workspace = workspace
        self._document = dict(document)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, statuses={self.statuses})"

    @property
    def document(self) -> dict[str, Any]:
        """Everything recorded about it, as the API and `--json` show it."""
        return dict(self._document)

    @property
    def name(self) -> str:
        return str(self._document["name"])

    @property
    def statuses(self) -> builtins.list[str]:
        """The final run statuses it acts on."""
        return list(self._document["statuses"])


class Notification(_Named):
    """A named notification of a workspace (no secret is ever held here)."""

    @property
    def kind(self) -> str:
        """ "email" or "webhook"."""
        return str(self._document["kind"])

    @property
    def settings(self) -> dict[str, Any]:
        """Its settings without secrets (a webhook URL shows as `https://host/…`)."""
        return dict(self._document["config"])

    @property
    def pipeline_id(self) -> str | None:
        return self._document.get("pipeline_id")

    @property
    def experiment_name(self) -> str | None:
        return self._document.get("experiment_name")

    @property
    def on_request(self) -> bool:
        return bool(self._document.get("on_request"))

    # -- adding ----------------------------------------------------------------------------
    @staticmethod
    def _add(workspace: Workspace, spec: dict[str, Any], overwrite: bool) -> Notification:
        ws = check_workspace(workspace, "The notification's workspace")
        document = ws.backend.add_notification(spec, overwrite=overwrite)
        return Notification(ws, document)

    @staticmethod
    def email(
        workspace: Workspace,
        name: str,
        *,
        to: str | list[str],
        smtp_host: str,
        smtp_port: int = 25,
        smtp_tls: str = "none",
        smtp_user: str | None = None,
        smtp_password: str | None = None,
        sender: str | None = None,
        statuses: list[str] | str | None = None,
        pipeline: Any = None,
        endpoint: Any = None,
        experiment_name: str | None = None,
        on_request: bool = False,
        max_attempts: int = 5,
        timeout_seconds: float = 10.0,
        overwrite: bool = False,
    ) -> Notification:
        """Mail `to` when a run ends with one of `statuses` (default: all three).

        `smtp_tls`: "none", "starttls" or "ssl". `smtp_password`: the password (kept in the
        workspace secrets file) or "env:NAME" (read where the mail is sent). Scope: every
        run, or only `pipeline`'s (a PublishedPipeline or id), `endpoint`'s (a
        PipelineEndpoint or name) or `experiment_name`'s; `on_request=True`: only runs
        submitted with `enable_email_notification=True`."""
        spec = {
            "name": name,
            "kind": "email",
            "to": to,
            "smtp_host": smtp_host,
            "smtp_port": smtp_port,
            "smtp_tls": smtp_tls,
            "smtp_user": smtp_user,
            "smtp_password": smtp_password,
            "sender": sender,
            "statuses": _statuses(statuses),
            "pipeline_id": _pipeline_id(pipeline, "pipeline"),
            "endpoint": _endpoint_name(endpoint, "endpoint"),
            "experiment_name": experiment_name,
            "on_request": on_request,
            "max_attempts": max_attempts,
            "timeout_seconds": timeout_seconds,
        }
        return Notification._add(workspace, spec, overwrite)

    @staticmethod
    def webhook(
        workspace: Workspace,
        name: str,
        *,
        url: str,
        statuses: list[str] | str | None = None,
        pipeline: Any = None,
        endpoint: Any = None,
        experiment_name: str | None = None,
        on_request: bool = False,
        max_attempts: int = 5,
        timeout_seconds: float = 10.0,
        overwrite: bool = False,
    ) -> Notification:
        """POST `{"text": ..., "run_id", "status", ...}` to `url` (a Slack, Teams or Mattermost
        incoming webhook reads `text`) when a run ends with one of `statuses`. `url` is kept
        in the workspace secrets file (it often holds a token) or given as "env:NAME"."""
        spec = {
            "name": name,
            "kind": "webhook",
            "url": url,
            "statuses": _statuses(statuses),
            "pipeline_id": _pipeline_id(pipeline, "pipeline"),
            "endpoint": _endpoint_name(endpoint, "endpoint"),
            "experiment_name": experiment_name,
            "on_request": on_request,
            "max_attempts": max_attempts,
            "timeout_seconds": timeout_seconds,
        }
        return Notification._add(workspace, spec, overwrite)

    # -- finding ---------------------------------------------------------------------------
    @staticmethod
    def get(workspace: Workspace, name: str) -> Notification:
        ws = check_workspace(workspace, "The notification's workspace")
        return Notification(ws, ws.backend.get_notification(name))

    @staticmethod
    def list(workspace: Workspace) -> list[Notification]:
        ws = check_workspace(workspace, "The notifications' workspace")
        return [Notification(ws, d) for d in ws.backend.list_notifications()]

    # -- using -----------------------------------------------------------------------------
    def remove(self) -> None:
        """Remove it (and its secrets); deliveries not yet sent are dropped."""
        self._workspace.backend.remove_notification(self.name)

    def test(self) -> dict[str, Any]:
        """Send a test message now; raises NotificationError saying why it failed."""
        return self._workspace.backend.test_notification(self.name)

    def deliveries(self, run_id: str | None = None) -> builtins.list[dict[str, Any]]:
        """Its deliveries, newest first: run, state (pending, sending, done, failed),
        attempts and the last error."""
        return self._workspace.backend.list_notification_deliveries(name=self.name, run_id=run_id)


class RunTrigger(_Named):
    """Starts `target` (a published pipeline or endpoint) when a run of `source` ends."""

    @property
    def enabled(self) -> bool:
        return bool(self._document.get("enabled", True))

    @property
    def parameters(self) -> dict[str, str]:
        return dict(self._document["parameters"])

    @property
    def experiment_name(self) -> str:
        return str(self._document["experiment_name"])

    @staticmethod
    def create(
        workspace: Workspace,
        name: str,
        *,
        source: Any,
        target: Any,
        experiment_name: str,
        statuses: list[str] | str | None = None,
        parameters: dict[str, str] | None = None,
    ) -> RunTrigger:
        """When a run of `source` ends with one of `statuses` (default ["Finished"]), start
        `target` in `experiment_name` once. `source`/`target`: a PublishedPipeline (or its
        id) or a PipelineEndpoint (its default version at the time). `parameters` maps a
        target parameter to `parameter:NAME`, `output:STEP/OUTPUT`, `run:id`, `run:status`
        or `value:TEXT`."""
        ws = check_workspace(workspace, "The run trigger's workspace")
        spec: dict[str, Any] = {
            "name": name,
            "experiment_name": experiment_name,
            "statuses": _statuses(statuses),
            "parameters": dict(parameters or {}),
        }
        for side, value in (("source", source), ("target", target)):
            if type(value).__name__ == "PipelineEndpoint":
                spec[f"{side}_endpoint"] = _endpoint_name(value, side)
            else:
                spec[f"{side}_pipeline_id"] = _pipeline_id(value, side)
        return RunTrigger(ws, ws.backend.add_run_trigger(spec))

    @staticmethod
    def get(workspace: Workspace, name: str) -> RunTrigger:
        ws = check_workspace(workspace, "The run trigger's workspace")
        return RunTrigger(ws, ws.backend.get_run_trigger(name))

    @staticmethod
    def list(workspace: Workspace) -> list[RunTrigger]:
        ws = check_workspace(workspace, "The run triggers' workspace")
        return [RunTrigger(ws, d) for d in ws.backend.list_run_triggers()]

    def remove(self) -> None:
        self._workspace.backend.remove_run_trigger(self.name)

    def disable(self) -> None:
        """Stop firing; runs that end meanwhile are not fired later."""
        self._document = self._workspace.backend.set_run_trigger_enabled(self.name, False)

    def enable(self) -> None:
        self._document = self._workspace.backend.set_run_trigger_enabled(self.name, True)

    def firings(self, run_id: str | None = None) -> builtins.list[dict[str, Any]]:
        """What it did, newest first: source run, state, attempts, last error and the id
        of the run it started (`started_run_id`)."""
        return self._workspace.backend.list_trigger_firings(name=self.name, run_id=run_id)
