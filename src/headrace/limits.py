"""The limits on what users pass in, in one place, so the SDK, the REST API, the portal, the
store and the engine refuse the same things with the same words (and docs/rest.md and
docs/user-guide.md cite these numbers).

Each limit comes from something real: the file system (a name of 255 bytes), object stores
(a key of 1,024 bytes), the Linux kernel (one argument or environment string of 128 KiB,
MAX_ARG_STRLEN), or what the server can answer without failing (JSON nesting, URL length).
Like `errors` and `config`, this module imports nothing from headrace but `errors`.
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any

from headrace.errors import UserError

__all__ = [
    "ARG_STRLEN",
    "IDENTIFIER_MAX_BYTES",
    "JSON_MAX_DEPTH",
    "MAX_RETRIES",
    "MODEL_NAME",
    "NAME_MAX_BYTES",
    "PATH_MAX_BYTES",
    "TEXT_MAX_CHARS",
    "TIMEOUT_MAX_SECONDS",
    "URL_MAX_BYTES",
    "arg_max",
    "json_depth_over",
    "json_tags",
    "path_problem",
    "scalar_tags",
]

# A registered model's name (also its folder in the registry, so no `/` and no leading dot).
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
# One file or folder name (a component of a datastore path): Linux's NAME_MAX.
NAME_MAX_BYTES = 255
# A whole datastore path: S3, GCS and Azure Blob all stop at 1,024 bytes per key, and a local
# datastore stays well inside PATH_MAX (4,096) with its root in front.
PATH_MAX_BYTES = 1024
# Port, parameter and data names (letters, digits, underscores): they become parts of folder
# names (`<step run id>-<attempt>-<port>`, 42 bytes before the port) that must fit NAME_MAX.
IDENTIFIER_MAX_BYTES = 128
# A name stored in the metadata store (step, experiment, published pipeline, version...):
# the database columns are VARCHAR(255).
TEXT_MAX_CHARS = 255
# One argv or environment string, its terminating NUL included: Linux's MAX_ARG_STRLEN
# (32 pages). A longer one makes execve fail with "Argument list too long".
ARG_STRLEN = 32 * 4096
# The request target (path and query) of an HTTP request; longer ones get 414.
URL_MAX_BYTES = 8192
# How deeply a JSON request body may nest; deeper bodies get 400 (what the server stores it
# must be able to answer again, and its JSON encoder stops far below Python's 1,000).
JSON_MAX_DEPTH = 64
# A step's retries and timeout (headrace's extensions of SDK v1).
MAX_RETRIES = 100
TIMEOUT_MAX_SECONDS = 366 * 24 * 3600


def arg_max() -> int:
    """ARG_MAX of this machine: all of a process's argv and environment strings, with their
    pointers (Linux: a quarter of the stack limit, 2 MiB by default)."""
    try:
        found = os.sysconf("SC_ARG_MAX")
    except (ValueError, OSError):
        found = -1
    return found if found > 0 else 2 * 1024 * 1024


def path_problem(text: str, what: str = "path") -> str | None:
    """Why `text` (a relative path with '/' separators) is too long, or None."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > PATH_MAX_BYTES:
        return (
            f"The {what} {_short(text)} is {size:,} bytes long; datastore paths are limited "
            f"to {PATH_MAX_BYTES:,} bytes (UTF-8), the longest key object stores accept."
        )
    for part in text.split("/"):
        length = len(part.encode("utf-8", "surrogatepass"))
        if length > NAME_MAX_BYTES:
            return (
                f"The {what} {_short(text)} has a file or folder name of {length:,} bytes "
                f"({_short(part)}); each name is limited to {NAME_MAX_BYTES} bytes (UTF-8), "
                "the file system's limit. Shorten it."
            )
    return None


def _short(text: str, keep: int = 40) -> str:
    """`text` quoted, its middle left out when it is long (errors stay readable)."""
    if len(text) <= 2 * keep + 3:
        return repr(text)
    return repr(f"{text[:keep]}...{text[-keep:]}") + f" ({len(text):,} characters)"


def json_depth_over(value: Any, limit: int = JSON_MAX_DEPTH) -> bool:
    """Whether lists and dicts in `value` nest more than `limit` levels (iterative: a value
    nested past Python's recursion limit is measured too)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        elif isinstance(item, tuple):
            item = list(item)
        if isinstance(item, list):
            if depth + 1 > limit:
                return True
            stack.extend((child, depth + 1) for child in item)
    return False


def scalar_tags(tags: Any, what: str = "tags") -> dict[str, Any]:
    """`tags` checked: a dict of text keys to text, number, true/false or None values (what
    SDK v1 tags are), or UserError naming the first tag that is not."""
    if tags is None:
        return {}
    if not isinstance(tags, dict):
        raise UserError(
            f"{what} must be a dict of tag name to value, such as {{'team': 'vision'}}, not "
            f"{type(tags).__name__}."
        )
    checked: dict[str, Any] = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not key:
            raise UserError(f"{what}: the tag name {key!r} must be non-empty text.")
        if len(key) > TEXT_MAX_CHARS:
            raise UserError(
                f"{what}: the tag name {_short(key)} is longer than {TEXT_MAX_CHARS} characters."
            )
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise UserError(
                f"{what}: the value of tag {key!r} is a {type(value).__name__}; a tag's value "
                "is text, a number, true/false or None (use json.dumps for structured data)."
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(
                f"{what}: the value of tag {key!r} is {value}; give a finite number or text."
            )
        checked[key] = value
    return checked


def json_tags(tags: Any, what: str = "tags") -> dict[str, Any]:
    """Tags of a run that exists (`Run.tag`, `set_tags`): text keys to any JSON value up to
    `JSON_MAX_DEPTH` levels deep (what is stored must be answerable again), or UserError."""
    if not isinstance(tags, dict):
        raise UserError(f"{what} must be a dict of tag name to value, not {type(tags).__name__}.")
    for key, value in tags.items():
        if not isinstance(key, str) or not key or len(key) > TEXT_MAX_CHARS:
            raise UserError(
                f"{what}: the tag name {_short(str(key))} must be text of 1 to "
                f"{TEXT_MAX_CHARS} characters."
            )
        if json_depth_over(value):
            raise UserError(
                f"{what}: the value of tag {key!r} is nested more than {JSON_MAX_DEPTH} levels "
                "deep; flatten it."
            )
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise UserError(
                f"{what}: the value of tag {key!r} cannot be stored as JSON ({exc}); give text, "
                "numbers, true/false, lists or dicts of them."
            ) from exc
    return dict(tags)
