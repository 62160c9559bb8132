"""Commands built when first used.

Typer turns every command of an app into a click command up front: it imports the module and
evaluates every parameter's annotation (`Annotated[..., typer.Option(...)]`), which for the
whole CLI costs far more than a `headrace run list` itself. Here a group holds stand-ins
(`Unloaded`: a name, the help `--help` lists, hidden or not) and builds a command, importing
its module if need be, only when it is looked up to run, complete or show its own help.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup
from typer.models import CommandInfo, TyperInfo

from headrace.cli.params import prepare_params

__all__ = ["LazyGroup", "Unloaded", "function_command", "typer_group"]

# What typer would pass down from the root app (typer.Typer's default).
_PRETTY_EXCEPTIONS_SHORT = True


class Unloaded(TyperCommand):
    """Stands in for a command not built yet: enough for a group's `--help` listing and
    typo suggestions; `LazyGroup.get_command` builds the real one before it is used."""

    def __init__(
        self,
        *,
        name: str,
        help: str | None,
        load: Callable[[], Any],
        hidden: bool = False,
        short_help: str | None = None,
        deprecated: bool = False,
    ) -> None:
        super().__init__(
            name=name, help=help, short_help=short_help, hidden=hidden, deprecated=deprecated
        )
        self.load = load


class LazyGroup(TyperGroup):
    """A group whose commands may be stand-ins, built when looked up."""

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command: Any = self.commands.get(cmd_name)
        if isinstance(command, Unloaded):
            command = self.commands[cmd_name] = command.load()
        return command

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """The commands and their short help, as click lists them, from the stand-ins: the
        listing builds and imports nothing."""
        shown = [(name, c) for name, c in self.commands.items() if not c.hidden]
        if not shown:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in shown)
        with formatter.section("Commands"):
            formatter.write_dl([(name, c.get_short_help_str(limit)) for name, c in shown])


def _built(info: CommandInfo, parent: TyperGroup) -> Any:
    command = typer.main.get_command_from_info(
        info,
        pretty_exceptions_short=_PRETTY_EXCEPTIONS_SHORT,
        rich_markup_mode=parent.rich_markup_mode,
    )
    prepare_params(command)
    return command


def typer_group(target: typer.Typer, *, name: str, hidden: bool, parent: TyperGroup) -> Any:
    """The group of typer app `target` (a noun: `run`, `step`, ...), its commands stand-ins."""
    shell = copy.copy(target)
    shell.registered_commands = []  # the group alone: its options, help, no_args_is_help
    group = typer.main.get_group_from_info(
        TyperInfo(shell, name=name, hidden=hidden, cls=LazyGroup),
        pretty_exceptions_short=_PRETTY_EXCEPTIONS_SHORT,
        suggest_commands=parent.suggest_commands,
        rich_markup_mode=parent.rich_markup_mode,
    )
    for info in target.registered_commands:
        assert info.callback is not None
        command_name = info.name or typer.main.get_command_name(info.callback.__name__)
        group.commands[command_name] = Unloaded(
            name=command_name,
            help=inspect.cleandoc(info.help) if info.help else inspect.getdoc(info.callback),
            short_help=info.short_help,
            hidden=info.hidden,
            deprecated=info.deprecated,
            load=functools.partial(_built, info, group),
        )
    prepare_params(group)
    return group


def function_command(
    function: Callable[..., Any], *, name: str, context_settings: dict[str, Any], parent: Any
) -> Any:
    """The command that runs `function` (its parameters typer options and arguments)."""
    info = CommandInfo(name=name, callback=function, context_settings=context_settings)
    return _built(info, parent)
