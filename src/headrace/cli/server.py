"""`headrace server`: serve a workspace over HTTP (SDK v1 REST submission, JSON API); `headrace
agent`: one more agent for a workspace folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from headrace.cli.common import WorkspaceOption, open_workspace
from headrace.server.run import STEP_NICE

__all__ = ["agent", "server", "ui"]


def server(
    workspace: WorkspaceOption = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on; a non-loopback one needs auth.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8765,
    workers: Annotated[
        int,
        typer.Option(
            help="uvicorn worker processes answering HTTP; the agents run once, beside them."
        ),
    ] = 1,
    agents: Annotated[
        int,
        typer.Option(
            help="Agent processes executing runs, supervised and restarted by the server. "
            "Each honours a compute target's max_nodes on its own: N agents may run up to "
            "N x max_nodes steps of one target."
        ),
    ] = 1,
    grace_seconds: Annotated[
        float,
        typer.Option(
            help="On SIGTERM/SIGINT, how long running steps may finish before they are "
            "stopped and requeued for the next start."
        ),
    ] = 30.0,
    step_nice: Annotated[
        int,
        typer.Option(
            min=0,
            max=19,
            help="How much lower the steps' CPU priority is than the server's (Unix niceness), "
            "so the API answers quickly while steps keep the cores busy; 0 keeps them equal.",
        ),
    ] = STEP_NICE,
    no_auth: Annotated[
        bool,
        typer.Option("--no-auth", help="Accept requests without a token (loopback hosts only)."),
    ] = False,
    database_url: Annotated[
        str | None,
        typer.Option(help="The workspace's database URL (must match its workspace.json)."),
    ] = None,
    max_body_bytes: Annotated[
        int, typer.Option(help="Largest request body accepted (bytes).")
    ] = 1_000_000,
    step_isolation: Annotated[
        str,
        typer.Option(
            help="How steps are kept from the workspace's database, keys and other runs: "
            "auto (Landlock where the kernel has it, and --step-user when root), on "
            "(Landlock required) or off. See docs/security.md.",
        ),
    ] = "auto",
    step_user: Annotated[
        str | None,
        typer.Option(
            help="The OS user steps run as (default when the server runs as root: nobody); "
            "the server's own user means no switch.",
        ),
    ] = None,
) -> None:
    """Serve the workspace: REST submission of published pipelines, with API tokens."""
    from headrace.server.run import check_bind, serve
    from headrace.server.run import step_isolation as resolve_isolation

    check_bind(host, auth=not no_auth, workers=workers, agents=agents)
    isolation = resolve_isolation(step_isolation, step_user, auth=not no_auth)
    ws = open_workspace(workspace, resume=False)
    path = ws.path
    if path is None:
        raise typer.BadParameter("the workspace has no folder", param_hint="--workspace")
    from headrace.server.app import prepare_isolation

    prepare_isolation(Path(path).absolute(), isolation)
    typer.echo(
        f"Serving workspace {ws.name!r} ({path}) on http://{host}:{port} "
        f"({'no auth' if no_auth else 'token auth'}) with {agents} agent(s), steps "
        f"{isolation.describe()}; Ctrl-C stops (running steps get {grace_seconds:g} s to "
        "finish).",
        err=True,
    )
    serve(
        Path(path),
        host=host,
        port=port,
        workers=workers,
        auth=not no_auth,
        database_url=database_url,
        max_body_bytes=max_body_bytes,
        agents=agents,
        grace_seconds=grace_seconds,
        step_nice=step_nice,
        isolation=isolation,
    )


def ui(
    workspace: WorkspaceOption = None,
    host: Annotated[str, typer.Option(help="Loopback address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8766,
) -> None:
    """Open the web portal of a workspace folder on this machine (no tokens: loopback only)."""
    from headrace.server.run import serve_ui

    ws = open_workspace(workspace, resume=False)
    if ws.path is None:
        raise typer.BadParameter("the workspace has no folder", param_hint="--workspace")

    def ready(url: str) -> None:
        typer.echo(
            f"Portal of workspace {ws.name!r} ({ws.path}) at {url} ; Ctrl-C stops.", err=True
        )

    serve_ui(Path(ws.path), host=host, port=port, ready=ready)


def agent(
    workspace: WorkspaceOption = None,
    slot: Annotated[
        int,
        typer.Option(
            min=0, help="Agent slot: 0 is the workspace's usual agent, N > 0 an additional one."
        ),
    ] = 1,
    idle_seconds: Annotated[
        float,
        typer.Option(help="Exit after this long with nothing to do ('inf': keep running)."),
    ] = float("inf"),
    grace_seconds: Annotated[
        float,
        typer.Option(
            help="On SIGTERM/SIGINT, how long running steps may finish before they are "
            "stopped and requeued."
        ),
    ] = 30.0,
    step_nice: Annotated[
        int, typer.Option(min=0, max=19, help="Run steps this much nicer than the agent.")
    ] = 0,
) -> None:
    """Run one more agent for a workspace folder, in the foreground, until Ctrl-C.

    With the workspace on PostgreSQL, agents claim runs side by side (SKIP LOCKED), so
    throughput grows with agents (on this machine or others that see the same folder)."""
    from headrace.engine.agent import main as agent_main

    ws = open_workspace(workspace, resume=False)
    if ws.path is None:
        raise typer.BadParameter("the workspace has no folder", param_hint="--workspace")
    typer.echo(
        f"Agent slot {slot} serving workspace {ws.name!r} ({ws.path}); Ctrl-C stops.", err=True
    )
    code = agent_main(
        [
            "--workspace",
            str(ws.path),
            "--slot",
            str(slot),
            "--idle-seconds",
            str(idle_seconds),
            "--grace-seconds",
            str(grace_seconds),
            "--step-nice",
            str(step_nice),
        ]
    )
    raise typer.Exit(code)
