"""The SDK v1 placeholders in arguments and commands, found and expanded.

Two spellings are understood: `$AML_PARAMETER_lr` (what SDK v1 writes for a parameter passed
as an argument) and `${AML_PARAMETER_lr}` (what headrace writes when a parameter is formatted
into a longer string, such as f"--lr={lr}"; the braces keep `f"{lr}_x"` unambiguous). The
same holds for `$AZUREML_DATAREFERENCE_<port>`. An unbraced name followed by more word
characters resolves to the longest known name it starts with.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

__all__ = ["DATA", "PARAMETER", "expand", "references", "unknown_references"]

DATA = "AZUREML_DATAREFERENCE"
PARAMETER = "AML_PARAMETER"
_PATTERN = re.compile(
    r"\$\{(AZUREML_DATAREFERENCE|AML_PARAMETER)_(\w+)\}|\$(AZUREML_DATAREFERENCE|AML_PARAMETER)_(\w+)"
)


def _resolve(word: str, braced: bool, known: Collection[str]) -> tuple[str, str] | None:
    """(name, rest-of-word) for a referenced word, or None when no known name fits."""
    if word in known:
        return word, ""
    if braced:
        return None
    for name in sorted(known, key=len, reverse=True):
        if word.startswith(name):
            return name, word[len(name) :]
    return None


def references(text: str) -> list[tuple[str, str, bool]]:
    """(kind, word, braced) for every placeholder in `text`; kind is DATA or PARAMETER."""
    found = []
    for m in _PATTERN.finditer(text):
        if m.group(1):
            found.append((m.group(1), m.group(2), True))
        else:
            found.append((m.group(3), m.group(4), False))
    return found


def unknown_references(text: str, kind: str, known: Collection[str]) -> list[str]:
    """Words of `kind` placeholders in `text` that match no known name."""
    return [
        word
        for k, word, braced in references(text)
        if k == kind and _resolve(word, braced, known) is None
    ]


def known_references(text: str, kind: str, known: Collection[str]) -> list[str]:
    """Known names of `kind` that `text` refers to."""
    names = []
    for k, word, braced in references(text):
        if k == kind:
            resolved = _resolve(word, braced, known)
            if resolved is not None:
                names.append(resolved[0])
    return names


def expand(text: str, data: Mapping[str, str], parameters: Mapping[str, str]) -> str:
    """Replace every resolvable placeholder in `text` with its value; leave others as they are."""

    def replace(m: re.Match[str]) -> str:
        if m.group(1):
            kind, word, braced = m.group(1), m.group(2), True
        else:
            kind, word, braced = m.group(3), m.group(4), False
        table = data if kind == DATA else parameters
        resolved = _resolve(word, braced, table.keys())
        if resolved is None:
            return m.group(0)
        name, rest = resolved
        return table[name] + rest

    return _PATTERN.sub(replace, text)
