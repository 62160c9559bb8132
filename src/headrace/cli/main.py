"""The `headrace` command: `headrace <noun> <verb>`, assembled from one module per noun.

Errors stop here: a HeadraceError (or a file that cannot be read) becomes one `error: ...`
line on stderr and exit code 1; usage errors are typer's (exit code 2). No traceback is
shown unless HEADRACE_DEBUG=1.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any, get_args

import typer
from typer.core import TyperArgument, TyperGroup, TyperOption
from typer.exceptions import TyperException

from headrace.cli import (
    datasets,
    datastores,
    endpoints,
    environments,
    models,
    notifications,
    pipelines,
    runs,
    schedules,
    server,
    steps,
    tokens,
    v1run,
    workspace,
)
from headrace.cli.common import (
    SERVER_ENV,
    TOKEN_ENV,
    WORKSPACE_ENV,
    close_workspaces,
    set_remote,
)
from headrace.errors import HeadraceError

__all__ = ["app", "main"]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def _os_error_text(exc: OSError) -> str:
    if exc.filename is not None and exc.strerror:
        return f"{exc.strerror}: {exc.filename}"
    return str(exc)


_METAVARS = {int: "INTEGER", float: "NUMBER"}


def _metavar(param: TyperOption) -> str:
    """What `--help` shows for a value: TEXT, INTEGER, NUMBER, PATH, or the choices."""
    kind = param.type_descriptor
    if kind.choices:
        return "[" + "|".join(str(c) for c in kind.choices) + "]"
    if kind.is_path:
        return "PATH"
    annotation: Any = kind.annotation
    if kind.is_list and get_args(annotation):
        annotation = get_args(annotation)[0]
    return _METAVARS.get(annotation, "TEXT")


def _no_type(ctx: Any) -> None:
    return None


def plain_metavars(command: Any) -> None:
    """Give every option of `command` and its subcommands a click-style metavar (TEXT,
    INTEGER, none for a flag) instead of typer's `<str>`, `<bool>`, `<list[str]>`; arguments
    show their name alone."""
    for param in command.params:
        if isinstance(param, TyperOption):
            if param.is_flag or param.count:
                param.metavar = ""
            elif param.metavar is None:
                param.metavar = _metavar(param)
        elif isinstance(param, TyperArgument):
            if param.metavar is None and param.name:
                param.metavar = param.name.upper()
            # typer prints the argument's Python type beside its name; the name says enough.
            param.display_type_rich = _no_type  # type: ignore[method-assign]
    for sub in getattr(command, "commands", {}).values():
        plain_metavars(sub)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file (an in-process caller's capture)
        pass


class HeadraceGroup(TyperGroup):
    """The root command group; turns expected errors into one line on stderr."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plain_metavars(self)

    def invoke(self, ctx: Any) -> Any:  # typer.core.Context lives in a private module
        saved = {name: os.environ.get(name) for name in (WORKSPACE_ENV, SERVER_ENV)}
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):
            raise
        except HeadraceError as exc:
            raise _fail(exc.cli_message or str(exc)) from None
        except BrokenPipeError:
            # `headrace run list | head`: the reader has what it wanted; no error, no noise
            # from the interpreter flushing stdout at exit.
            _silence_stdout()
            raise typer.Exit(0) from None
        except OSError as exc:
            raise _fail(_os_error_text(exc)) from None
        except KeyboardInterrupt:
            raise _fail("interrupted") from None
        except Exception as exc:
            if os.environ.get("HEADRACE_DEBUG"):
                raise
            raise _fail(
                f"unexpected {type(exc).__name__}: {exc} (this is a headrace bug; rerun with "
                "HEADRACE_DEBUG=1 to see the traceback and report it)"
            ) from None
        finally:
            close_workspaces()
            set_remote(None, None)
            # `--workspace` and `--server` set HEADRACE_WORKSPACE and HEADRACE_SERVER_URL for
            # pipeline files and the SDK; an in-process caller (tests, notebooks) gets its
            # environment back.
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


app = typer.Typer(
    cls=HeadraceGroup,
    name="headrace",
    help="Self-hosted ML pipelines with the Azure ML SDK v1 pipeline API.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(workspace.app, name="workspace")
app.add_typer(datastores.app, name="datastore")
app.add_typer(datasets.app, name="dataset")
app.add_typer(datasets.app, name="datasets", hidden=True)  # the plural spelling works too
app.add_typer(runs.app, name="run")
app.add_typer(steps.app, name="step")
app.add_typer(tokens.app, name="token")
app.add_typer(pipelines.app, name="pipeline")
app.add_typer(endpoints.app, name="endpoint")
app.add_typer(models.app, name="model")
app.add_typer(models.app, name="models", hidden=True)  # `headrace models list` reads well too
app.add_typer(environments.app, name="environment")
app.add_typer(environments.app, name="environments", hidden=True)
app.add_typer(schedules.app, name="schedule")
app.add_typer(schedules.app, name="schedules", hidden=True)
app.add_typer(notifications.app, name="notification")
app.add_typer(notifications.trigger_app, name="trigger")
app.command("server")(server.server)
app.command("scheduler")(schedules.scheduler)
app.command("agent")(server.agent)
app.command("ui")(server.ui)
app.command(
    "run-v1",
    # Everything after the script is the script's, `--help` included.
    context_settings={"allow_extra_args": True, "allow_interspersed_args": False},
)(v1run.run_v1)

# Commands that work on the workspace's folder itself: $HEADRACE_SERVER_URL (which the SDK
# also reads, for published pipelines' URLs) does not send them to a server.
_LOCAL_ONLY = frozenset({"agent", "server", "token", "ui", "workspace"})  # not run-v1: its
# script may submit to the server named by --server / HEADRACE_SERVER_URL


def _version(value: bool) -> None:
    if value:
        from headrace import __version__

        typer.echo(f"headrace {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    workspace: Annotated[
        str | None,
        typer.Option(
            "--workspace",
            "-w",
            help="Workspace folder or name for the command (same as the command's own "
            "--workspace).",
        ),
    ] = None,
    server_url: Annotated[
        str | None,
        typer.Option(
            "--server",
            envvar=SERVER_ENV,
            show_envvar=True,
            help="Send the command to the headrace server at this URL instead of opening a "
            "local workspace.",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar=TOKEN_ENV,
            show_envvar=True,
            help="API token for --server (sent as Authorization: Bearer).",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Self-hosted ML pipelines with the Azure ML SDK v1 pipeline API.

    Every command takes --workspace PATH|NAME (or HEADRACE_WORKSPACE; default: the
    .azureml/config.json of this folder or above) and --json. With --server URL (or
    HEADRACE_SERVER_URL) and --token, commands go to a headrace server instead.
    """
    if workspace:
        # The commands' own --workspace options read this variable.
        os.environ[WORKSPACE_ENV] = workspace
    if server_url and ctx.invoked_subcommand in _LOCAL_ONLY:
        source = ctx.get_parameter_source("server_url")
        if source is not None and source.name == "COMMANDLINE":
            raise typer.BadParameter(
                f"`headrace {ctx.invoked_subcommand}` works on a local workspace folder; drop "
                "--server.",
                param_hint="--server",
            )
        server_url = None
    set_remote(server_url, token)
    if server_url:
        # Published pipelines' REST URLs (PublishedPipeline.endpoint) name this server too.
        os.environ[SERVER_ENV] = server_url


def main() -> None:
    """Entry point of the `headrace` console script."""
    app()
