"""SDK v1 names that headrace plans but has not built yet.

A compat module lists them with `__getattr__ = planned_names(__name__, {...})`, so importing
one raises NotYetImplementedError (an ImportError) saying what is missing and where it is
headed, instead of Python's bare "cannot import name". Any other unknown name is the usual
AttributeError. Because the error is an ImportError, `hasattr(module, planned_name)` raises
too; nothing in SDK v1 code relies on probing these names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NoReturn

from headrace.errors import NotYetImplementedError

__all__ = ["planned_names"]


def planned_names(module: str, planned: Mapping[str, str]) -> Callable[[str], NoReturn]:
    """A module `__getattr__` for `module` whose `planned` names say they are not built yet."""
    public = module.replace("headrace.compat.", "", 1)

    def __getattr__(name: str) -> NoReturn:
        if name in planned:
            raise NotYetImplementedError(
                f"{public}.{name} is not implemented in headrace yet ({planned[name]}); "
                "docs/porting.md lists what the compat tree covers today."
            )
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
