"""The `headrace` command: `headrace <noun> <verb>`, assembled from one module per noun.

Errors stop here: a HeadraceError (or a file that cannot be read) becomes one `error: ...`
line on stderr and exit code 1; usage errors are typer's (exit code 2). No traceback is
shown unless HEADRACE_DEBUG=1.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from headrace.cli import datastores, runs, server, steps, tokens, workspace
from headrace.cli.common import WORKSPACE_ENV, close_workspaces
from headrace.errors import HeadraceError

__all__ = ["app", "main"]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def _os_error_text(exc: OSError) -> str:
    if exc.filename is not None and exc.strerror:
        return f"{exc.strerror}: {exc.filename}"
    return str(exc)


class HeadraceGroup(TyperGroup):
    """The root command group; turns expected errors into one line on stderr."""

    def invoke(self, ctx: Any) -> Any:  # typer.core.Context lives in a private module
        saved = os.environ.get(WORKSPACE_ENV)
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):
            raise
        except HeadraceError as exc:
            raise _fail(str(exc)) from None
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
            # `--workspace` sets HEADRACE_WORKSPACE for pipeline files; an in-process caller
            # (tests, notebooks) gets its environment back.
            if saved is None:
                os.environ.pop(WORKSPACE_ENV, None)
            else:
                os.environ[WORKSPACE_ENV] = saved


app = typer.Typer(
    cls=HeadraceGroup,
    name="headrace",
    help="Self-hosted ML pipelines with the Azure ML SDK v1 pipeline API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(workspace.app, name="workspace")
app.add_typer(datastores.app, name="datastore")
app.add_typer(runs.app, name="run")
app.add_typer(steps.app, name="step")
app.add_typer(tokens.app, name="token")
app.command("server")(server.server)


def _version(value: bool) -> None:
    if value:
        from headrace import __version__

        typer.echo(f"headrace {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    workspace: Annotated[
        str | None,
        typer.Option(
            "--workspace",
            "-w",
            help="Workspace folder or name for the command (same as the command's own "
            "--workspace).",
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
    .azureml/config.json of this folder or above) and --json.
    """
    if workspace:
        # The commands' own --workspace options read this variable.
        os.environ[WORKSPACE_ENV] = workspace


def main() -> None:
    """Entry point of the `headrace` console script."""
    app()
