"""`headrace token create|list|revoke`: the server's API tokens (secrets are shown once)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

import typer

from headrace.cli.common import JsonOption, WorkspaceOption, open_workspace
from headrace.cli.output import console, format_time, iso, new_table, print_json
from headrace.server.auth import ROLES, issue_token, parse_expires
from headrace.store.tokens import TokenRecord
from headrace.store.workspace_store import WorkspaceStore

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="Create, list and revoke the server's API tokens.")


def _store(spec: str | None) -> WorkspaceStore:
    ws = open_workspace(spec, resume=False)
    if ws.path is None:
        raise typer.BadParameter("the workspace has no folder", param_hint="--workspace")
    return WorkspaceStore.open(ws.path)


def _state(token: TokenRecord) -> str:
    if token.revoked_at is not None:
        return "revoked"
    if not token.usable_at(datetime.now(timezone.utc)):
        return "expired"
    return "active"


def _document(token: TokenRecord) -> dict[str, Any]:
    return {
        "name": token.name,
        "role": token.role,
        "state": _state(token),
        "scope_run_id": token.scope_run_id,
        "created_at": iso(token.created_at),
        "expires_at": iso(token.expires_at),
        "revoked_at": iso(token.revoked_at),
        "last_used_at": iso(token.last_used_at),
    }


@app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="A unique name, e.g. ci-submitter.")],
    role: Annotated[str, typer.Option("--role", help=f"One of: {', '.join(ROLES)}.")] = "submitter",
    expires: Annotated[
        str | None,
        typer.Option("--expires", help="30d, 12h, 90m, or a date 2026-12-31 (default: never)."),
    ] = None,
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """Create a token and print its secret (only this once: store it now)."""
    expires_at = parse_expires(expires) if expires else None
    store = _store(workspace)
    try:
        secret, record = issue_token(store.meta, name=name, role=role, expires_at=expires_at)
    finally:
        store.database.dispose()
    if json_:
        print_json({**_document(record), "token": secret})
        return
    typer.echo(secret)
    typer.echo(
        f"Created {record.role} token {record.name!r}"
        + (f", expires {format_time(record.expires_at)}" if record.expires_at else "")
        + ". This is the only time the token is shown; send it as "
        "'Authorization: Bearer <token>' or set HEADRACE_TOKEN.",
        err=True,
    )


@app.command("list")
def list_(workspace: WorkspaceOption = None, json_: JsonOption = False) -> None:
    """List tokens (names, roles, states; never the secrets)."""
    store = _store(workspace)
    try:
        tokens = store.meta.list_tokens()
    finally:
        store.database.dispose()
    if json_:
        print_json([_document(t) for t in tokens])
        return
    if not tokens:
        typer.echo("No tokens; create one with `headrace token create --name NAME --role ROLE`.")
        return

    table = new_table("Name", "Role", "State", "Created", "Expires", "Last used")
    for t in tokens:
        table.add_row(
            t.name,
            t.role,
            _state(t),
            format_time(t.created_at),
            format_time(t.expires_at) if t.expires_at else "never",
            format_time(t.last_used_at) if t.last_used_at else "-",
        )
    console().print(table)


@app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="The token's name.")],
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """Revoke a token: requests using it are refused from now on."""
    store = _store(workspace)
    try:
        record = store.meta.revoke_token(name)
    finally:
        store.database.dispose()
    if json_:
        print_json(_document(record))
        return
    typer.echo(f"Revoked token {record.name!r}.")
