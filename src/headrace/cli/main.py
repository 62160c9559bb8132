"""The `headrace` command: `headrace <noun> <verb>`, assembled from one module per noun.

A command's module is imported only when that command runs (or its help is shown): the root
group lists every command from `_COMMANDS` (name, short help), so `headrace --version`,
`headrace --help` and `headrace run show` do not pay for importing the other nouns (the SDK,
the store, the server).

Errors stop here: a HeadraceError (or a file that cannot be read) becomes one `error: ...`
line on stderr and exit code 1; usage errors are typer's (exit code 2). No traceback is
shown unless HEADRACE_DEBUG=1.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from headrace.cli.env import SERVER_ENV, TOKEN_ENV, WORKSPACE_ENV
from headrace.cli.lazy import LazyGroup, Unloaded, function_command, typer_group
from headrace.cli.params import prepare_params
from headrace.errors import HeadraceError

__all__ = ["app", "main"]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def _os_error_text(exc: OSError) -> str:
    if exc.filename is not None and exc.strerror:
        return f"{exc.strerror}: {exc.filename}"
    return str(exc)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file (an in-process caller's capture)
        pass


@dataclass(frozen=True)
class _Entry:
    """A command of the root group: where it lives (a module's Typer app, or a function),
    and what `headrace --help` lists for it without importing it."""

    module: str
    attr: str
    help: str  # the first paragraph of its help (a test keeps it the module's own)
    hidden: bool = False
    context_settings: dict[str, Any] = field(default_factory=dict)


def _noun(module: str, help: str, *, hidden: bool = False) -> _Entry:
    return _Entry(f"headrace.cli.{module}", "app", help, hidden)


_DATASETS = "Registered datasets: versions, content identity and lineage."
_MODELS = "List registered models, show and download them."
_ENVIRONMENTS = "List and show registered environments."
_SCHEDULES = "Schedules: run a published pipeline on a recurrence or when files change."

# In `headrace --help` order. The plural spellings are hidden aliases.
_COMMANDS: dict[str, _Entry] = {
    "server": _Entry(
        "headrace.cli.server",
        "server",
        "Serve the workspace: REST submission of published pipelines, with API tokens.",
    ),
    "scheduler": _Entry(
        "headrace.cli.schedules",
        "scheduler",
        "Fire a workspace folder's schedules in the foreground until Ctrl-C (on a laptop;\n"
        "`headrace server` fires them itself). Runs it queues go to the workspace's agent.",
    ),
    "agent": _Entry(
        "headrace.cli.server",
        "agent",
        "Run one more agent for a workspace folder, in the foreground, until Ctrl-C.",
    ),
    "ui": _Entry(
        "headrace.cli.server",
        "ui",
        "Open the web portal of a workspace folder on this machine (no tokens: loopback only).",
    ),
    "run-v1": _Entry(
        "headrace.cli.v1run",
        "run_v1",
        "Run a Python script with the azureml import alias on: `import azureml.core`, `from\n"
        "azureml.pipeline.core import Pipeline` and the rest give headrace's objects, and a\n"
        "pipeline it submits runs its step scripts the same way. Everything after the script "
        "is\npassed to it. Refuses (exit 1) where a real Azure ML SDK is installed.",
        # Everything after the script is the script's, `--help` included.
        context_settings={"allow_extra_args": True, "allow_interspersed_args": False},
    ),
    "workspace": _noun("workspace", "Create and inspect workspaces."),
    "datastore": _noun("datastores", "List datastores, upload and download files."),
    "dataset": _noun("datasets", _DATASETS),
    "datasets": _noun("datasets", _DATASETS, hidden=True),
    "run": _noun("runs", "Submit pipeline runs, watch and inspect them."),
    "step": _noun("steps", "Inspect step runs, their files and metrics."),
    "token": _noun("tokens", "Create, list and revoke the server's API tokens."),
    "pipeline": _noun(
        "pipelines",
        "Publish pipelines, list and inspect them, enable or disable them, submit them.",
    ),
    "endpoint": _noun(
        "endpoints", "Pipeline endpoints: one name over versions of published pipelines."
    ),
    "model": _noun("models", _MODELS),
    "models": _noun("models", _MODELS, hidden=True),  # `headrace models list` reads well too
    "environment": _noun("environments", _ENVIRONMENTS),
    "environments": _noun("environments", _ENVIRONMENTS, hidden=True),
    "schedule": _noun("schedules", _SCHEDULES),
    "schedules": _noun("schedules", _SCHEDULES, hidden=True),
    "notification": _noun(
        "notifications", "Emails and webhooks sent when runs finish, fail or are canceled."
    ),
    "trigger": _Entry(
        "headrace.cli.notifications",
        "trigger_app",
        "Start a published pipeline when a run of another one ends.",
    ),
}


def _load(name: str, entry: _Entry, parent: TyperGroup) -> Any:
    target = getattr(importlib.import_module(entry.module), entry.attr)
    if isinstance(target, typer.Typer):
        return typer_group(target, name=name, hidden=entry.hidden, parent=parent)
    return function_command(
        target, name=name, context_settings=entry.context_settings, parent=parent
    )


class HeadraceGroup(LazyGroup):
    """The root command group: every command a stand-in until used (`_COMMANDS`); turns
    expected errors into one line on stderr."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        prepare_params(self)
        for name, entry in _COMMANDS.items():
            stand_in = Unloaded(
                name=name,
                help=entry.help,
                hidden=entry.hidden,
                load=functools.partial(_load, name, entry, self),
            )
            self.commands.setdefault(name, stand_in)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        # typer adds the completion options after __init__: they need preparing too.
        prepare_params(self)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:  # typer.core.Context lives in a private module
        from headrace.cli.common import close_workspaces, set_remote

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
    from headrace.cli.common import set_remote

    set_remote(server_url, token)
    if server_url:
        # Published pipelines' REST URLs (PublishedPipeline.endpoint) name this server too.
        os.environ[SERVER_ENV] = server_url


def main() -> None:
    """Entry point of the `headrace` console script."""
    app()
