"""The `azureml` import alias: SDK v1 code runs with its imports unchanged.

`install()` puts `AzuremlAlias` first on `sys.meta_path`. From then on `azureml.X.Y` is the
module `headrace.compat.azureml.X.Y`, the same object under both names, for any module that
exists there (later work adding modules to the compat tree needs no change here), so

    import azureml.core
    print(azureml.core.VERSION)
    ws = azureml.core.Workspace.from_config()

works as with the SDK. A module or name headrace does not have raises the message of
`_planned.MISSING`, the same whichever spelling imports it.

It is an explicit opt-in, never a side effect of importing headrace: the launcher
(`python -m headrace.v1 script.py`, `headrace run-v1`), the Jupyter extension
(`%load_ext headrace.v1`), and the step runtime (steps of a pipeline built while the alias
was installed start through the launcher) install it. It never hides a real Azure ML SDK:
if an `azureml` package is importable (or already imported), `install()` refuses with
AliasConflictError naming what it found.

Start-up cost matters (every step of such a pipeline pays it): importing this module and
installing the finder loads nothing beyond `os`, `sys` and `importlib` (not even typing);
the compat tree is imported only when the script imports `azureml`.
"""

from __future__ import annotations

import importlib
import os
import sys

TYPE_CHECKING = False  # typing's own flag would cost importing typing at every start
if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec
    from types import ModuleType
    from typing import Any

__all__ = [
    "AzuremlAlias",
    "EmptyPackageLoader",
    "MissingModuleFinder",
    "install",
    "installed",
    "real_sdk",
    "uninstall",
]

PREFIX = "headrace.compat."


# The loaders have the two methods the import system calls; they do not subclass
# importlib.abc.Loader, whose import would cost every aliased start (hence the ignores).
class _AliasLoader:
    """Loads `azureml.X` by importing `headrace.compat.azureml.X` and putting that module
    in `sys.modules` under the SDK v1 name (the import system returns what is there)."""

    def __init__(self, real: str) -> None:
        self.real = real

    def create_module(self, spec: ModuleSpec) -> None:
        return None  # a placeholder module; exec_module replaces it

    def exec_module(self, module: ModuleType) -> None:
        from headrace.compat.azureml import _planned

        real = importlib.import_module(self.real)
        _planned.attach(real)
        sys.modules[module.__name__] = real


class EmptyPackageLoader:
    """A package holding only packages headrace does not have (`azureml.train`), so that
    `from azureml.train.hyperdrive import ...` gets the message for `hyperdrive`."""

    def create_module(self, spec: ModuleSpec) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        module.__doc__ = (
            f"{module.__name__}: a package headrace does not have; its modules say what to "
            "use instead."
        )
        module.__path__ = []


class AzuremlAlias:
    """The meta-path finder behind the alias: `azureml.*` -> `headrace.compat.azureml.*`."""

    headrace_azureml_alias = True  # what the SDK looks for (headrace.sdk.builder)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != "azureml" and not fullname.startswith("azureml."):
            return None
        import importlib.util
        from importlib.machinery import ModuleSpec

        from headrace.compat.azureml import _planned

        real = PREFIX + fullname
        try:
            found = importlib.util.find_spec(real)
        except ImportError:
            found = None
        if found is not None:  # what exists wins over a table entry not yet deleted
            package = found.submodule_search_locations is not None
            loader = _AliasLoader(real)
            return ModuleSpec(fullname, loader, is_package=package)  # type: ignore[arg-type]
        error = _planned.missing_module(fullname)
        if error is not None:
            raise error
        if _planned.holds_missing_modules(fullname):
            return ModuleSpec(fullname, EmptyPackageLoader(), is_package=True)  # type: ignore[arg-type]
        return None  # Python's own "No module named 'azureml.x'"


class MissingModuleFinder:
    """Last on `sys.meta_path` once the compat tree is imported: an import of a
    `headrace.compat.azureml.*` module no other finder found gets the table's message for
    it (the spelling of ported code without the alias). Being last, it costs nothing for
    imports that succeed."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if not fullname.startswith(PREFIX + "azureml."):
            return None
        from importlib.machinery import ModuleSpec

        from headrace.compat.azureml import _planned

        error = _planned.missing_module(fullname)
        if error is not None:
            raise error
        if _planned.holds_missing_modules(fullname):
            return ModuleSpec(fullname, EmptyPackageLoader(), is_package=True)  # type: ignore[arg-type]
        return None

    @classmethod
    def install(cls) -> None:
        if not any(isinstance(f, cls) for f in sys.meta_path):
            sys.meta_path.append(cls())


def installed() -> bool:
    """Whether the alias is on in this process."""
    return any(isinstance(f, AzuremlAlias) for f in sys.meta_path)


def install() -> None:
    """Turn the alias on (once; again is a no-op). AliasConflictError if a real Azure ML
    SDK is importable: the alias would hide it."""
    if installed():
        return
    found = real_sdk()
    if found is not None:
        from headrace.errors import AliasConflictError

        raise AliasConflictError(
            f"headrace's azureml alias is off: a real Azure ML SDK is importable here "
            f"({found}) and the alias would hide it. Use a Python environment without it, "
            "or keep it and import from headrace.compat.azureml instead (docs/porting.md)."
        )
    sys.meta_path.insert(0, AzuremlAlias())


def uninstall() -> None:
    """Turn the alias off and forget the `azureml.*` modules it made."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, AzuremlAlias)]
    for name in [n for n in sys.modules if n == "azureml" or n.startswith("azureml.")]:
        module = sys.modules[name]
        if getattr(module, "__name__", "").startswith(PREFIX) or not hasattr(module, "__file__"):
            del sys.modules[name]


def real_sdk() -> str | None:
    """What real `azureml` package is importable or imported (a description), or None."""
    loaded = sys.modules.get("azureml")
    if loaded is not None and not getattr(loaded, "__name__", "").startswith(PREFIX):
        where = list(getattr(loaded, "__path__", None) or [getattr(loaded, "__file__", "?")])
        return f"`azureml` is already imported from {where[0]}"
    for entry in sys.path:
        base = entry or os.getcwd()
        package = os.path.join(base, "azureml")
        if os.path.isdir(package) or os.path.isfile(package + ".py"):
            return _describe(base, package)
    return None


def _describe(base: str, package: str) -> str:
    """`azureml-core 1.57.0 in <base>`, from the distributions' metadata beside `package`."""
    found: list[str] = []
    try:
        listing = sorted(os.listdir(base))
    except OSError:
        listing = []
    for name in listing:
        lowered = name.lower()
        if not lowered.startswith(("azureml-", "azureml_")):
            continue
        for suffix, metadata in ((".dist-info", "METADATA"), (".egg-info", "PKG-INFO")):
            if lowered.endswith(suffix):
                found.append(_name_and_version(os.path.join(base, name, metadata)))
    found.sort(key=lambda text: (not text.startswith("azureml-core "), text))
    if found:
        shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
        return f"{shown} in {base}"
    return f"a package `azureml` at {package}"


def _name_and_version(path: str) -> str:
    fields = {"name": "azureml-?", "version": "?"}
    try:
        with open(path, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                key, _, value = line.partition(":")
                if key.lower() in fields and value.strip():
                    fields[key.lower()] = value.strip()
                if not line.strip():
                    break
    except OSError:
        pass
    return f"{fields['name'].lower().replace('_', '-')} {fields['version']}"
