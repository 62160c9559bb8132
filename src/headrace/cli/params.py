"""How the CLI's parameters show in `--help` and turn into values, beside typer's defaults.

- Metavars: click-style (TEXT, INTEGER, none for a flag) instead of typer's `<str>`,
  `<bool>`, `<list[str]>`; arguments show their name alone.
- Values: typer (0.2x) converts every value with a pydantic TypeAdapter, and importing
  pydantic costs a fresh `headrace run show` more than everything else it does. Plain text,
  whole numbers within their range and lists of text (nearly every value the CLI gets) are
  converted here to exactly what that adapter would give; anything else (a number out of
  range, a path, a malformed number) goes to typer's own conversion, built when first needed,
  so its errors stay typer's.
"""

from __future__ import annotations

import re
from typing import Any, get_args

from typer.core import TyperArgument, TyperOption

__all__ = ["prepare_params"]

_METAVARS = {int: "INTEGER", float: "NUMBER"}
_WHOLE = re.compile(r"(?:0|[1-9][0-9]{0,17})")
_UNKNOWN = object()


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


def _in_range(value: int | float, info: Any) -> bool:
    return (info.min is None or value >= info.min) and (info.max is None or value <= info.max)


def _quick(param: Any, value: Any) -> Any:
    """`value` converted as typer's adapter would, or _UNKNOWN when that needs the adapter."""
    multiple = param.multiple or param.nargs == -1
    if value is None:
        return () if multiple else None
    kind = param.type_descriptor
    info = kind.parameter_info
    if info.parser is not None or info.clamp or kind.file_annotation is not None:
        return _UNKNOWN
    annotation = kind.annotation
    if multiple:
        if annotation == list[str] and isinstance(value, (list, tuple)):
            if all(isinstance(item, str) for item in value):
                return list(value)
        return _UNKNOWN
    if annotation is str and isinstance(value, str):
        return value
    if annotation is int and not isinstance(value, bool):
        if isinstance(value, str) and _WHOLE.fullmatch(value):
            value = int(value)
        if isinstance(value, int) and _in_range(value, info):
            return value
    if annotation is float and isinstance(value, float) and _in_range(value, info):
        return value
    return _UNKNOWN


class _QuickConversion:
    """Stands where typer keeps a parameter's converter (`_runtime_param`)."""

    def __init__(self) -> None:
        self._typer: Any = None

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        quick = _quick(param, value)
        if quick is not _UNKNOWN:
            return quick
        if self._typer is None:
            from typer._coercion import build_runtime_param

            self._typer = build_runtime_param(param.type_descriptor)
        return self._typer.coerce(value, param=param, ctx=ctx)


def _quick_conversion(param: Any) -> None:
    if getattr(param, "_runtime_param", _UNKNOWN) is None:
        param._runtime_param = _QuickConversion()


def _with_quick_help(command: Any) -> None:
    """The `--help` option, which typer makes when a command first parses, converts quickly
    too (its value is None unless asked for help)."""
    if getattr(command, "_quick_help", False):
        return
    made = command.get_help_option

    def get_help_option(ctx: Any) -> Any:
        option = made(ctx)
        if option is not None:
            _quick_conversion(option)
        return option

    command.get_help_option = get_help_option
    command._quick_help = True


def prepare_params(command: Any) -> None:
    """Plain metavars and the quick conversion for every parameter of `command` and of its
    (loaded) subcommands."""
    _with_quick_help(command)
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
        _quick_conversion(param)
    for sub in getattr(command, "commands", {}).values():
        prepare_params(sub)
