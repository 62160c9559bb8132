"""Type checks of the arguments users pass to SDK constructors and `submit`.

A wrong type is refused where it is passed, with a UserError that names the argument, says
what it accepts and shows what it got; SDK v1 (and Python) would otherwise fail later with an
AttributeError or TypeError from deep inside. Problems of a pipeline's definition (names,
edges, placeholders) are not type errors: `Pipeline.validate()` reports those, all at once.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal, overload

from headrace.errors import UserError
from headrace.limits import MAX_RETRIES, TEXT_MAX_CHARS, TIMEOUT_MAX_SECONDS

if TYPE_CHECKING:
    from headrace.sdk.workspace import Workspace

__all__ = [
    "check_bool",
    "check_dict",
    "check_folder",
    "check_list",
    "check_retries",
    "check_seconds",
    "check_text",
    "check_workspace",
]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _got(value: Any) -> str:
    return f"{_show(value)} ({type(value).__name__})"


@overload
def check_text(
    value: Any,
    what: str,
    *,
    optional: Literal[False] = False,
    max_chars: int = ...,
    empty_ok: bool = ...,
) -> str: ...


@overload
def check_text(
    value: Any, what: str, *, optional: Literal[True], max_chars: int = ..., empty_ok: bool = ...
) -> str | None: ...


def check_text(
    value: Any,
    what: str,
    *,
    optional: bool = False,
    max_chars: int = TEXT_MAX_CHARS,
    empty_ok: bool = False,
) -> str | None:
    """`value` if it is text of at most `max_chars` characters, non-empty unless `empty_ok`
    (a datastore path '' is the datastore's root), or None when `optional`."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not (empty_ok or value.strip()):
        accepts = ("text" if empty_ok else "non-empty text") + (" or None" if optional else "")
        raise UserError(f"{what} must be {accepts}, not {_got(value)}.")
    if len(value) > max_chars:
        raise UserError(
            f"{what} is {len(value):,} characters long; at most {max_chars:,} are allowed."
        )
    return value


def check_bool(value: Any, what: str) -> bool:
    """`value` if it is True or False (a text such as 'no' would silently mean True)."""
    if not isinstance(value, bool):
        raise UserError(f"{what} must be True or False, not {_got(value)}.")
    return value


def check_list(value: Any, what: str, accepts: str = "a list") -> list[Any]:
    """`value` as a list: a list or tuple, or None for an empty one."""
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise UserError(f"{what} must be {accepts} (or None), not {_got(value)}.")
    return list(value)


def check_dict(value: Any, what: str, accepts: str = "a dict") -> dict[Any, Any]:
    """`value` as a dict, or None for an empty one."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"{what} must be {accepts} (or None), not {_got(value)}.")
    return dict(value)


def check_folder(value: Any, what: str) -> str | None:
    """A folder given as text or a path object (or None)."""
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise UserError(f"{what} must be a folder (text or a Path) or None, not {_got(value)}.")
    return str(os.fspath(value))


def check_retries(value: Any, what: str = "max_retries") -> int:
    """A number of retries: an int (its range, 0 to `limits.MAX_RETRIES`, is checked with
    the rest of the pipeline by `Pipeline.validate()`)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{what} must be an int from 0 to {MAX_RETRIES}, not {_got(value)}.")
    return value


def check_seconds(value: Any, what: str = "timeout_seconds") -> float | None:
    """A duration in seconds: a number, or None for no limit (its range, positive, finite,
    up to `limits.TIMEOUT_MAX_SECONDS`, is checked by `Pipeline.validate()`)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(
            f"{what} must be a positive number of seconds up to {TIMEOUT_MAX_SECONDS:,} "
            f"(366 days), or None, not {_got(value)}."
        )
    return value


def check_workspace(value: Any, what: str) -> Workspace:
    """A Workspace (from Workspace.get, create or from_config)."""
    from headrace.sdk.workspace import Workspace

    if not isinstance(value, Workspace):
        raise UserError(
            f"{what} must be a Workspace (Workspace.from_config(), Workspace.get(...) or "
            f"Workspace.create(...)), not {_got(value)}."
        )
    return value
