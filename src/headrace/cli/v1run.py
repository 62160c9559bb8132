"""`headrace run-v1 script.py [arguments]`: run SDK v1 code with its `azureml.` imports
unchanged (the launcher of headrace.v1, in this process)."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["run_v1"]


def run_v1(
    ctx: typer.Context,
    script: Annotated[str | None, typer.Argument(help="The script to run.")] = None,
    module: Annotated[
        str | None, typer.Option("-m", help="Run this module instead, as `python -m` does.")
    ] = None,
) -> None:
    """Run a Python script with the azureml import alias on: `import azureml.core`, `from
    azureml.pipeline.core import Pipeline` and the rest give headrace's objects, and a
    pipeline it submits runs its step scripts the same way. Everything after the script is
    passed to it. Refuses (exit 1) where a real Azure ML SDK is installed.
    """
    from headrace.v1 import main as launch

    if script is None and module is None:
        raise typer.BadParameter("give a script, or -m MODULE", param_hint="SCRIPT")
    target = [script] if module is None else ["-m", module, *([script] if script else [])]
    status = launch([*target, *ctx.args])
    if status:
        raise typer.Exit(status)
