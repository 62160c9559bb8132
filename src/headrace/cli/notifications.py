"""`headrace notification add|list|remove|test|deliveries` and
`headrace trigger add|list|remove|firings`: telling people when runs end, and starting a
published pipeline when a run of another ends (sdk/notifications.py).

Secrets given here (`--smtp-password`, `--webhook`) can be `env:NAME` (read where the message
is sent) or `-` (read from standard input, so they stay out of the shell's history); listings
never show them.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from headrace.cli.common import JsonOption, WorkspaceOption, open_workspace
from headrace.cli.output import console, new_table, print_json
from headrace.errors import UserError
from headrace.sdk.notifications import (
    Notification,
    RunTrigger,
    destination_text,
    scope_texts,
)

__all__ = ["app", "trigger_app"]

app = typer.Typer(
    no_args_is_help=True, help="Emails and webhooks sent when runs finish, fail or are canceled."
)
trigger_app = typer.Typer(
    no_args_is_help=True, help="Start a published pipeline when a run of another one ends."
)

StatusOption = Annotated[
    list[str] | None,
    typer.Option("--status", help="Finished, Failed or Canceled; repeat for several."),
]


def _secret(value: str | None, what: str) -> str | None:
    if value != "-":
        return value
    line = sys.stdin.readline().strip()
    if not line:
        raise UserError(f"{what} '-' reads it from standard input, which gave nothing.")
    return line


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="A name for it, e.g. team-slack.")],
    webhook: Annotated[
        str | None, typer.Option(help="Webhook URL (or env:NAME, or - for stdin).")
    ] = None,
    email: Annotated[
        list[str] | None, typer.Option("--email", help="Recipient; repeat for several.")
    ] = None,
    smtp_host: Annotated[str | None, typer.Option(help="SMTP server (with --email).")] = None,
    smtp_port: Annotated[int, typer.Option(help="SMTP port.")] = 25,
    smtp_tls: Annotated[str, typer.Option(help="none, starttls or ssl.")] = "none",
    smtp_user: Annotated[str | None, typer.Option(help="SMTP login user.")] = None,
    smtp_password: Annotated[
        str | None, typer.Option(help="SMTP password: env:NAME, or - to read it from stdin.")
    ] = None,
    sender: Annotated[str | None, typer.Option(help="The mails' From address.")] = None,
    status: StatusOption = None,
    pipeline: Annotated[
        str | None, typer.Option(help="Only runs of this published pipeline (id).")
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option(help="Only runs of this pipeline endpoint (name).")
    ] = None,
    experiment: Annotated[str | None, typer.Option(help="Only runs of this experiment.")] = None,
    on_request: Annotated[
        bool, typer.Option(help="Only runs submitted with enable_email_notification=True.")
    ] = False,
    max_attempts: Annotated[int, typer.Option(help="Tries before giving up.")] = 5,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the far side.")] = 10.0,
    overwrite: Annotated[bool, typer.Option(help="Replace one of the same name.")] = False,
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """Add a webhook (--webhook) or an email (--email ... --smtp-host ...) notification."""
    if (webhook is None) == (not email):
        raise UserError("Give either --webhook URL or --email ADDRESS (with --smtp-host).")
    ws = open_workspace(workspace)
    common: dict[str, Any] = {
        "statuses": status,
        "pipeline": pipeline,
        "endpoint": endpoint,
        "experiment_name": experiment,
        "on_request": on_request,
        "max_attempts": max_attempts,
        "timeout_seconds": timeout,
        "overwrite": overwrite,
    }
    if webhook is not None:
        url = _secret(webhook, "--webhook") or ""
        added = Notification.webhook(ws, name, url=url, **common)
    else:
        added = Notification.email(
            ws,
            name,
            to=list(email or []),
            smtp_host=smtp_host or "",
            smtp_port=smtp_port,
            smtp_tls=smtp_tls,
            smtp_user=smtp_user,
            smtp_password=_secret(smtp_password, "--smtp-password"),
            sender=sender,
            **common,
        )
    document = Notification.get(ws, added.name).document
    if json_:
        print_json(document)
        return
    typer.echo(f"Added {document['kind']} notification {name!r}: {destination_text(document)}.")


@app.command("list")
def list_(workspace: WorkspaceOption = None, json_: JsonOption = False) -> None:
    """Every notification (never its secrets)."""
    documents = [n.document for n in Notification.list(open_workspace(workspace))]
    if json_:
        print_json(documents)
        return
    table = new_table("NAME", "KIND", "TO", "STATUSES", "FOR")
    for doc in documents:
        table.add_row(
            doc["name"],
            doc["kind"],
            destination_text(doc),
            ", ".join(doc["statuses"]),
            "; ".join(scope_texts(doc)),
        )
    console().print(table)


@app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="The notification's name.")],
    workspace: WorkspaceOption = None,
) -> None:
    """Remove a notification and its secrets; deliveries not yet sent are dropped."""
    Notification.get(open_workspace(workspace), name).remove()
    typer.echo(f"Removed notification {name!r}.")


@app.command("test")
def test(
    name: Annotated[str, typer.Argument(help="The notification's name.")],
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """Send a test message now; fails saying why the far side refused it."""
    result = Notification.get(open_workspace(workspace), name).test()
    if json_:
        print_json(result)
        return
    typer.echo(f"Sent a test message through {name!r}: {result}.")


def _outbox_table(documents: list[dict[str, Any]], extra: str | None = None) -> None:
    headers = ["ID", "TARGET", "RUN", "RUN STATUS", "STATE", "ATTEMPTS", "LAST ERROR"]
    table = new_table(*headers, *([extra.upper().replace("_", " ")] if extra else []))
    for doc in documents:
        row = [
            str(doc["id"]),
            doc["target"],
            doc["run_id"],
            doc["run_status"],
            doc["state"],
            str(doc["attempts"]),
            doc["last_error"] or "",
        ]
        table.add_row(*row, *([str(doc.get(extra) or "")] if extra else []))
    console().print(table)


@app.command("deliveries")
def deliveries(
    name: Annotated[str | None, typer.Argument(help="Only this notification's.")] = None,
    run: Annotated[str | None, typer.Option(help="Only this run's.")] = None,
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """What was sent (or is still being tried), newest first."""
    ws = open_workspace(workspace)
    documents = ws.backend.list_notification_deliveries(name=name, run_id=run)
    if json_:
        print_json(documents)
        return
    _outbox_table(documents)


# -- run triggers --------------------------------------------------------------------------
@trigger_app.command("add")
def trigger_add(
    name: Annotated[str, typer.Argument(help="A name for it, e.g. score-after-train.")],
    experiment: Annotated[str, typer.Option(help="The experiment the started runs go to.")],
    source_pipeline: Annotated[
        str | None, typer.Option(help="Runs of this published pipeline (id) fire it.")
    ] = None,
    source_endpoint: Annotated[
        str | None, typer.Option(help="Runs of this pipeline endpoint (name) fire it.")
    ] = None,
    target_pipeline: Annotated[
        str | None, typer.Option(help="The published pipeline (id) it starts.")
    ] = None,
    target_endpoint: Annotated[
        str | None, typer.Option(help="The pipeline endpoint (name) whose default it starts.")
    ] = None,
    status: StatusOption = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            help="TARGET=SOURCE, SOURCE one of parameter:NAME, output:STEP/OUTPUT, run:id, "
            "run:status, value:TEXT; repeat for several.",
        ),
    ] = None,
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """Start a published pipeline (or endpoint) once for every run of another that ends."""
    mapping: dict[str, str] = {}
    for item in param or []:
        target, sep, source = item.partition("=")
        if not sep or not target:
            raise UserError(f"--param {item!r} must be TARGET=SOURCE, e.g. m=parameter:n.")
        mapping[target] = source
    ws = open_workspace(workspace)
    spec: dict[str, Any] = {
        "name": name,
        "experiment_name": experiment,
        "statuses": status,
        "parameters": mapping,
        "source_pipeline_id": source_pipeline,
        "source_endpoint": source_endpoint,
        "target_pipeline_id": target_pipeline,
        "target_endpoint": target_endpoint,
    }
    document = ws.backend.add_run_trigger({k: v for k, v in spec.items() if v is not None})
    if json_:
        print_json(document)
        return
    typer.echo(f"Added run trigger {name!r} ({', '.join(document['statuses'])}).")


@trigger_app.command("list")
def trigger_list(workspace: WorkspaceOption = None, json_: JsonOption = False) -> None:
    """Every run trigger."""
    documents = [t.document for t in RunTrigger.list(open_workspace(workspace))]
    if json_:
        print_json(documents)
        return
    table = new_table("NAME", "WHEN A RUN OF", "ENDS", "STARTS", "IN EXPERIMENT", "PARAMETERS")
    for doc in documents:
        source = doc["source_pipeline_id"] or f"endpoint {doc['source_endpoint_id']}"
        target = doc["target_pipeline_id"] or f"endpoint {doc['target_endpoint_id']}"
        mapping = ", ".join(f"{k}={v}" for k, v in doc["parameters"].items())
        table.add_row(
            doc["name"], source, ", ".join(doc["statuses"]), target, doc["experiment_name"], mapping
        )
    console().print(table)


@trigger_app.command("remove")
def trigger_remove(
    name: Annotated[str, typer.Argument(help="The run trigger's name.")],
    workspace: WorkspaceOption = None,
) -> None:
    """Remove a run trigger; firings not yet started are dropped."""
    RunTrigger.get(open_workspace(workspace), name).remove()
    typer.echo(f"Removed run trigger {name!r}.")


@trigger_app.command("disable")
def trigger_disable(
    name: Annotated[str, typer.Argument(help="The run trigger's name.")],
    workspace: WorkspaceOption = None,
) -> None:
    """Stop a run trigger firing (runs that end meanwhile are not fired later)."""
    RunTrigger.get(open_workspace(workspace), name).disable()
    typer.echo(f"Disabled run trigger {name!r}.")


@trigger_app.command("enable")
def trigger_enable(
    name: Annotated[str, typer.Argument(help="The run trigger's name.")],
    workspace: WorkspaceOption = None,
) -> None:
    """Let a disabled run trigger fire again."""
    RunTrigger.get(open_workspace(workspace), name).enable()
    typer.echo(f"Enabled run trigger {name!r}.")


@trigger_app.command("firings")
def trigger_firings(
    name: Annotated[str | None, typer.Argument(help="Only this trigger's.")] = None,
    run: Annotated[str | None, typer.Option(help="Only those this source run fired.")] = None,
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """What the triggers started, newest first."""
    documents = open_workspace(workspace).backend.list_trigger_firings(name=name, run_id=run)
    if json_:
        print_json(documents)
        return
    _outbox_table(documents, "started_run_id")
