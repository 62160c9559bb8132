"""Notifications: checking and keeping their settings, composing a run's message, sending it.

A notification is an email (SMTP, `smtplib`) or a webhook (an HTTP POST of a Slack-compatible
JSON body: `{"text": ...}` plus structured fields, `urllib`). `add_notification` checks a
spec, keeps its secrets (the SMTP password, the webhook URL, which often holds a token) in
`<workspace>/secrets/notifications.json` (mode 0600, like datastore credentials) or as an
`env:NAME` reference, and stores the rest: the URL only as `scheme://host/…`. Secrets are
read back only by `deliver`, in the process that sends; they never reach the database, a
log line, an error message, the API or the portal.

Sending happens in engine/outbox.py's background sender, never in the agent's loop.
"""

from __future__ import annotations

import json
import os
import re
import smtplib
import socket
import ssl
import urllib.error
import urllib.request
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from headrace.errors import ConfigError, NotificationError, UserError
from headrace.store.notifications import ENDED_STATUSES, NotificationRecord
from headrace.store.objectstores import load_secrets, save_secrets
from headrace.store.orm import utcnow
from headrace.store.records import PipelineRunRecord
from headrace.store.workspace_store import WorkspaceStore

__all__ = [
    "SECRETS_FILE",
    "add_notification",
    "checked_statuses",
    "deliver",
    "message_for",
    "notification_from_spec",
    "remove_notification",
]

SECRETS_FILE = "secrets/notifications.json"
KINDS = ("email", "webhook")
TLS_MODES = ("none", "starttls", "ssl")
DEFAULT_TIMEOUT = 10.0
DEFAULT_ATTEMPTS = 5
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


def _secret_ref(value: Any, what: str, secrets: dict[str, str], field: str) -> str | None:
    """A secret as the config records it: "env:NAME" as given, anything else kept in the
    secrets file (recorded as "workspace")."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise UserError(f"The notification's {what} must be text (or 'env:NAME').")
    if value.startswith("env:") and len(value) > 4:
        return value
    secrets[field] = value
    return "workspace"


def _http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. a broken IPv6 address
        return False


def checked_statuses(value: Any, default: list[str], problems: list[str]) -> list[str]:
    """Final run statuses from a spec (text or a list of text); problems are appended."""
    if value is None or value == []:
        return default
    statuses = [value] if isinstance(value, str) else value
    if not isinstance(statuses, list) or any(s not in ENDED_STATUSES for s in statuses):
        problems.append(
            f"statuses {value!r} are not final run statuses; use any of "
            f"{', '.join(ENDED_STATUSES)}."
        )
        return default
    return statuses


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}/…"


def notification_from_spec(
    spec: dict[str, Any], *, endpoint_id: str | None = None
) -> tuple[NotificationRecord, dict[str, str]]:
    """Check a notification spec (every problem at once) and split it into the record to
    store and the secrets to keep in the secrets file."""
    problems: list[str] = []
    name = spec.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append(
            f"name {name!r} must be 1 to 100 letters, digits, '_', '.' or '-', "
            "for example 'team-mail'."
        )
    kind = spec.get("kind")
    if kind not in KINDS:
        problems.append(f"kind {kind!r} must be 'email' or 'webhook'.")
    statuses = checked_statuses(spec.get("statuses"), list(ENDED_STATUSES), problems)
    config: dict[str, Any] = {}
    secrets: dict[str, str] = {}
    timeout = spec.get("timeout_seconds", DEFAULT_TIMEOUT)
    attempts = spec.get("max_attempts", DEFAULT_ATTEMPTS)
    # At most half the outbox lease (120 s): a sender still waiting is never taken over.
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 60:
        problems.append(f"timeout_seconds {timeout!r} must be a number of seconds in (0, 60].")
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 20:
        problems.append(f"max_attempts {attempts!r} must be a whole number from 1 to 20.")
    config["timeout_seconds"] = timeout
    config["max_attempts"] = attempts
    if kind == "email":
        to = spec.get("to")
        to_list = [to] if isinstance(to, str) else to if isinstance(to, list) else []
        if not to_list or not all(isinstance(a, str) and _ADDRESS.match(a) for a in to_list):
            problems.append(f"to {to!r} must be one or more email addresses.")
        host = spec.get("smtp_host")
        if not isinstance(host, str) or not host:
            problems.append("smtp_host is missing: the SMTP server to send through.")
        port = spec.get("smtp_port", 25)
        if not isinstance(port, int) or not 0 < port < 65536:
            problems.append(f"smtp_port {port!r} must be a port number.")
        tls = spec.get("smtp_tls", "none")
        if tls not in TLS_MODES:
            problems.append(f"smtp_tls {tls!r} must be one of {', '.join(TLS_MODES)}.")
        sender = spec.get("sender") or "headrace@localhost"
        if not isinstance(sender, str) or not _ADDRESS.match(sender):
            problems.append(f"sender {sender!r} must be an email address.")
        user = spec.get("smtp_user")
        config.update(
            to=to_list,
            smtp_host=host,
            smtp_port=port,
            smtp_tls=tls,
            sender=sender,
            smtp_user=user if isinstance(user, str) and user else None,
            smtp_password=_secret_ref(
                spec.get("smtp_password"), "smtp_password", secrets, "smtp_password"
            ),
        )
    elif kind == "webhook":
        url = spec.get("url")
        if not isinstance(url, str) or url in ("", "env:"):
            problems.append("url is missing: the webhook's URL (or 'env:NAME' holding it).")
        elif not url.startswith("env:") and not _http_url(url):
            problems.append("url must be an http:// or https:// URL (or 'env:NAME').")
        else:
            config["url"] = _secret_ref(url, "url", secrets, "url")
            config["url_shown"] = url if url.startswith("env:") else _redacted(url)
    if not isinstance(spec.get("on_request", False), bool):
        problems.append("on_request must be true or false.")
    for key in ("pipeline_id", "experiment_name"):
        if spec.get(key) is not None and not isinstance(spec.get(key), str):
            problems.append(f"{key} must be text.")
    if problems:
        raise UserError("The notification cannot be added:\n- " + "\n- ".join(problems))
    record = NotificationRecord(
        name=str(name),
        kind=str(kind),
        config=config,
        statuses=[s for s in ENDED_STATUSES if s in statuses],
        pipeline_id=spec.get("pipeline_id"),
        endpoint_id=endpoint_id,
        experiment_name=spec.get("experiment_name"),
        on_request=bool(spec.get("on_request", False)),
        created_at=utcnow(),
    )
    return record, secrets


def add_notification(
    ws: WorkspaceStore, spec: dict[str, Any], *, overwrite: bool = False
) -> NotificationRecord:
    """Check `spec`, keep its secrets, store it; the record has no secret."""
    endpoint_id = None
    if spec.get("endpoint"):
        endpoint_id = ws.meta.get_pipeline_endpoint(name=str(spec["endpoint"])).id
    record, secrets = notification_from_spec(spec, endpoint_id=endpoint_id)
    if record.pipeline_id is not None:
        ws.meta.get_published_pipeline(record.pipeline_id)  # raises, naming it, when missing
    if ws.meta.find_notification(record.name) is not None and not overwrite:
        ws.meta.add_notification(record, overwrite=False)  # raises ConflictError
    save_secrets(ws.root, record.name, secrets, SECRETS_FILE)
    ws.meta.add_notification(record, overwrite=overwrite)
    return record


def remove_notification(ws: WorkspaceStore, name: str) -> None:
    ws.meta.remove_notification(name)
    save_secrets(ws.root, name, {}, SECRETS_FILE)


def _secret(ws: WorkspaceStore, record: NotificationRecord, field: str) -> str | None:
    ref = record.config.get(field)
    if ref is None:
        return None
    if isinstance(ref, str) and ref.startswith("env:"):
        value = os.environ.get(ref[4:])
        if not value:
            raise ConfigError(
                f"Notification {record.name!r} reads its {field} from the environment "
                f"variable {ref[4:]}, which is not set in the process that sends (the agent "
                "or server); set it there."
            )
        return value
    value = load_secrets(ws.root, record.name, SECRETS_FILE).get(field)
    if value is None:
        raise ConfigError(
            f"Notification {record.name!r} keeps its {field} in the workspace secrets file, "
            f"which has none for it; add the notification again with its {field}."
        )
    return value


def _duration(run: PipelineRunRecord) -> str:
    if run.started_at is None or run.ended_at is None:
        return ""
    seconds = int((run.ended_at - run.started_at).total_seconds())
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    text = f"{hours}h {minutes}m {seconds}s" if hours else f"{minutes}m {seconds}s"
    return f" after {text}"


def message_for(ws: WorkspaceStore, run: PipelineRunRecord, status: str) -> dict[str, Any]:
    """What every channel says about a run's ending: a subject, a text, and fields."""
    server = os.environ.get("HEADRACE_SERVER_URL")
    url = f"{server}/ui/runs/{run.id}" if server else None
    error = (run.error or {}).get("message") if status != "Finished" else None
    lines = str((run.error or {}).get("stderr_tail") or "").strip().splitlines()
    if error and lines:
        error += f" (its last line of stderr: {lines[-1].strip()[:300]})"
    subject = f"[headrace] {run.experiment_name}: run {run.id[:8]} {status}"
    text = f"Pipeline run {run.id} of experiment {run.experiment_name!r} {status}{_duration(run)}"
    if error:
        text += f": {error}"
    text += "."
    if url:
        text += f" {url}"
    return {
        "subject": subject,
        "text": text,
        "fields": {
            "workspace": ws.name,
            "run_id": run.id,
            "experiment": run.experiment_name,
            "status": status,
            "pipeline_id": run.properties.get("azureml.pipelineid"),
            "error": error,
            "started_at": run.started_at.isoformat() if run.started_at else None,
            "ended_at": run.ended_at.isoformat() if run.ended_at else None,
            "url": url,
        },
    }


def deliver(
    ws: WorkspaceStore, record: NotificationRecord, message: dict[str, Any], delivery_id: str
) -> dict[str, Any]:
    """Send `message` once through `record`'s channel; returns what the far side answered.
    Raises NotificationError (refused, timed out, unreachable) or ConfigError (a secret is
    missing). `delivery_id` is the same for every attempt of one delivery, so a receiver
    can drop a repeat (Message-ID, X-Headrace-Delivery)."""
    timeout = float(record.config.get("timeout_seconds", DEFAULT_TIMEOUT))
    if record.kind == "email":
        return _send_email(ws, record, message, delivery_id, timeout)
    return _post_webhook(ws, record, message, delivery_id, timeout)


def _send_email(
    ws: WorkspaceStore,
    record: NotificationRecord,
    message: dict[str, Any],
    delivery_id: str,
    timeout: float,
) -> dict[str, Any]:
    config = record.config
    mail = EmailMessage()
    mail["Subject"] = message["subject"]
    mail["From"] = config["sender"]
    mail["To"] = ", ".join(config["to"])
    mail["Message-ID"] = f"<{delivery_id}@headrace>"
    fields = "\n".join(f"{k}: {v}" for k, v in message["fields"].items() if v is not None)
    mail.set_content(f"{message['text']}\n\n{fields}\n")
    host, port, tls = str(config["smtp_host"]), int(config["smtp_port"]), config["smtp_tls"]
    where = f"SMTP server {host}:{port}"
    password = _secret(ws, record, "smtp_password")
    try:
        client: smtplib.SMTP
        if tls == "ssl":
            client = smtplib.SMTP_SSL(host, port, timeout=timeout)
        else:
            client = smtplib.SMTP(host, port, timeout=timeout)
        with client:
            if tls == "starttls":
                client.starttls(context=ssl.create_default_context())
            if config.get("smtp_user"):
                client.login(str(config["smtp_user"]), password or "")
            refused = client.send_message(mail)
    except smtplib.SMTPAuthenticationError as exc:
        raise NotificationError(
            f"The {where} refused the login of {config.get('smtp_user')!r} "
            f"({exc.smtp_code}); check the user and password."
        ) from None
    except smtplib.SMTPResponseException as exc:
        raise NotificationError(
            f"The {where} answered {exc.smtp_code}: {_text(exc.smtp_error)}."
        ) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise NotificationError(f"Cannot send through the {where}: {_reason(exc)}.") from None
    if refused:
        raise NotificationError(f"The {where} refused the recipients {', '.join(sorted(refused))}.")
    return {"recipients": list(config["to"])}


def _post_webhook(
    ws: WorkspaceStore,
    record: NotificationRecord,
    message: dict[str, Any],
    delivery_id: str,
    timeout: float,
) -> dict[str, Any]:
    url = _secret(ws, record, "url") or ""
    shown = record.config.get("url_shown", "the webhook")
    if not _http_url(url):  # an env: URL is checked only here
        raise ConfigError(f"The webhook {shown} is not an http:// or https:// URL; fix it.")
    body = json.dumps({"text": message["text"], **message["fields"]}).encode()
    request = urllib.request.Request(  # noqa: S310 (http and https only: checked above)
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "headrace",
            "X-Headrace-Delivery": delivery_id,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            return {"http_status": answer.status}
    except urllib.error.HTTPError as exc:
        raise NotificationError(f"The webhook {shown} answered HTTP {exc.code}.") from None
    except (urllib.error.URLError, OSError) as exc:
        raise NotificationError(f"Cannot reach the webhook {shown}: {_reason(exc)}.") from None


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _reason(exc: BaseException) -> str:
    """Why a connection failed, without the URL (it may hold a token)."""
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    detail = getattr(reason, "strerror", None)
    return type(reason).__name__ + (f" ({detail})" if detail else "")
