"""SDK v1 names headrace does not have, each with what to use instead: one table.

Every entry names one SDK v1 thing, every spelling that reaches it (the module that
exports it, the submodule it is defined in), and either where it is headed (planned) or
that it is not part of headrace. The same message comes whichever spelling the code uses:

    from azureml.pipeline.core import PipelineDraft
    from azureml.pipeline.core.pipeline_draft import PipelineDraft
    import azureml.pipeline.core.pipeline_draft
    azureml.pipeline.core.PipelineDraft     # after `import azureml.pipeline.core`

A compat module that exports some of these names sets `__getattr__ = planned_names(__name__)`
(the azureml alias attaches one to any compat module without it); importing a module of the
table goes through `missing_module` (alias.AzuremlAlias, and for `headrace.compat.azureml.*`
spellings alias.MissingModuleFinder, installed when the compat tree is imported). Each raises
NotInHeadraceError (an ImportError; NotYetImplementedError for planned names), so
`try: from azureml.x import Y / except ImportError:` behaves as without the SDK. Any other
unknown name is Python's usual AttributeError or ModuleNotFoundError.

When a name gets built, its module exports it and its entry here is deleted (an entry for a
name that exists is never reached, so a late deletion is harmless).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import NoReturn

from headrace.errors import NotInHeadraceError, NotYetImplementedError

__all__ = [
    "MISSING",
    "Missing",
    "attach",
    "holds_missing_modules",
    "missing_error",
    "missing_module",
    "planned_names",
]

PORTING = "docs/porting.md lists what headrace covers"


@dataclass(frozen=True)
class Missing:
    """One SDK v1 thing headrace lacks: `names` in `home` (the first is the one the message
    names), `modules` whose import means it, and what to do instead. `planned` says where
    it is headed; None means it is not part of headrace."""

    home: str
    names: tuple[str, ...]
    instead: str
    planned: str | None = None
    modules: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        first = f"{self.home}.{self.names[0]}"
        others = self.names[1:]
        what = first if not others else f"{first} (with {', '.join(others)})"
        if self.planned:
            status = f"not in headrace yet ({self.planned})"
        else:
            status = "not part of headrace"
        return f"{what} is {status}. Instead: {self.instead} ({PORTING})."


def _m(
    home: str,
    names: str,
    instead: str,
    *,
    planned: str | None = None,
    modules: Sequence[str] = (),
) -> Missing:
    return Missing(home, tuple(names.split()), instead, planned, tuple(modules))


_NOTEBOOK_STEP = "DatabricksStep(notebook_path=...) runs a local .ipynb headless in its step"
_SEARCH = (
    "a PythonScriptStep that runs the search itself (scikit-learn, Optuna, or Ray Tune on "
    "a Ray compute target) and writes the best model to a PipelineData output"
)
MISSING: tuple[Missing, ...] = (
    # -- not part of headrace -------------------------------------------------------------
    _m(
        "azureml.pipeline.core",
        "PipelineDraft",
        "build the Pipeline in code, then publish it (pipeline.publish) and keep its "
        "versions on a PipelineEndpoint",
        modules=["azureml.pipeline.core.pipeline_draft"],
    ),
    _m(
        "azureml.pipeline.core",
        "TrainingOutput",
        "a PipelineData output written by your own training step",
    ),
    _m(
        "azureml.pipeline.steps",
        "ModuleStep",
        "a PythonScriptStep per module version, sharing code through its source_directory",
    ),
    _m(
        "azureml.pipeline.core",
        "Module ModuleVersion ModuleVersionDescriptor",
        "a PythonScriptStep per module version, sharing code through its source_directory",
        modules=["azureml.pipeline.core.module"],
    ),
    _m(
        "azureml.pipeline.core.graph",
        "InputPortDef OutputPortDef",
        "PipelineData and DataReference objects passed as a step's inputs and outputs",
    ),
    _m(
        "azureml.pipeline.steps",
        "AutoMLStep AutoMLStepRun",
        _SEARCH,
        modules=["azureml.pipeline.steps.automl_step"],
    ),
    _m(
        "azureml.train.automl",
        "AutoMLConfig",
        _SEARCH,
        modules=["azureml.train.automl", "azureml.train.automl.run"],
    ),
    _m(
        "azureml.pipeline.steps",
        "HyperDriveStep HyperDriveStepRun",
        _SEARCH,
        modules=["azureml.pipeline.steps.hyper_drive_step"],
    ),
    _m(
        "azureml.train.hyperdrive",
        "HyperDriveConfig",
        _SEARCH,
        modules=["azureml.train.hyperdrive"],
    ),
    _m(
        "azureml.pipeline.steps",
        "AzureBatchStep",
        "a CommandStep (any executable) on a local or Ray compute target",
        modules=["azureml.pipeline.steps.azurebatch_step"],
    ),
    _m(
        "azureml.core.compute",
        "BatchCompute",
        "a CommandStep (any executable) on a local or Ray compute target",
        modules=["azureml.core.compute.batch"],
    ),
    _m(
        "azureml.pipeline.steps",
        "KustoStep",
        "a PythonScriptStep with the Kusto client, or AdlaStep (DuckDB SQL) over datastore files",
        modules=["azureml.pipeline.steps.kusto_step"],
    ),
    _m(
        "azureml.core.compute",
        "KustoCompute",
        "a PythonScriptStep with the Kusto client, or AdlaStep (DuckDB SQL) over datastore files",
        modules=["azureml.core.compute.kusto"],
    ),
    _m(
        "azureml.core.compute",
        "AksCompute ComputeInstance HDInsightCompute RemoteCompute",
        "AmlCompute (a local process pool, or a Ray cluster) or the `local` target",
    ),
    _m(
        "azureml.data.sql_data_reference",
        "SqlDataReference",
        "export the table to a file on a datastore; DataTransferStep copies between "
        "datastores, not SQL databases",
        modules=["azureml.data.sql_data_reference"],
    ),
    _m(
        "azureml.contrib.notebook",
        "NotebookRunnerStep NotebookRunConfig AzureMLNotebookHandler",
        _NOTEBOOK_STEP,
        modules=["azureml.contrib.notebook"],
    ),
    _m(
        "azureml.opendatasets",
        "NycTlcGreen NycTlcYellow",
        "download the data once and put it on a datastore (Datastore.upload), then read it "
        "with a DataReference",
        modules=["azureml.opendatasets"],
    ),
    _m(
        "azureml.core.webservice",
        "Webservice AciWebservice AksWebservice LocalWebservice",
        "serve the model's files with a web framework of your choice; headrace runs "
        "pipelines, it does not deploy models",
        modules=["azureml.core.webservice"],
    ),
    _m(
        "azureml.core.model",
        "InferenceConfig",
        "serve the model's files with a web framework of your choice; headrace runs "
        "pipelines, it does not deploy models",
    ),
)


def _index() -> tuple[dict[tuple[str, str], Missing], dict[str, Missing]]:
    names: dict[tuple[str, str], Missing] = {}
    modules: dict[str, Missing] = {}
    for entry in MISSING:
        for module in (entry.home, *entry.modules):
            for name in entry.names:
                names.setdefault((module, name), entry)
        for module in entry.modules:
            modules.setdefault(module, entry)
    return names, modules


_NAMES, _MODULES = _index()


def _public(module: str) -> str:
    """`headrace.compat.azureml.x` as SDK v1 spells it (`azureml.x`)."""
    return module.removeprefix("headrace.compat.")


def missing_error(module: str, name: str) -> NotInHeadraceError | None:
    """The error for `module.name` (either spelling of the module), if the table has it."""
    entry = _NAMES.get((_public(module), name))
    return None if entry is None else _error(entry)


def missing_module(module: str) -> NotInHeadraceError | None:
    """The error for importing `module` (either spelling), if the table has it."""
    entry = _MODULES.get(_public(module))
    return None if entry is None else _error(entry)


def holds_missing_modules(package: str) -> bool:
    """Whether `package` (either spelling) is only a parent of the table's modules
    (`azureml.train` of `azureml.train.hyperdrive`)."""
    prefix = _public(package) + "."
    return any(module.startswith(prefix) for module in _MODULES)


def _error(entry: Missing) -> NotInHeadraceError:
    kind = NotYetImplementedError if entry.planned else NotInHeadraceError
    return kind(entry.message)


def planned_names(module: str) -> Callable[[str], NoReturn]:
    """A module `__getattr__` for compat module `module`: the table's names in it raise
    their message; any other name is the usual AttributeError."""

    def __getattr__(name: str) -> NoReturn:
        error = missing_error(module, name)
        if error is not None:
            raise error
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__


def attach(module: ModuleType) -> None:
    """Give a compat module without a `__getattr__` the table's names (the alias does this
    for modules added by later work, so `from azureml.core.model import InferenceConfig`
    says what to use even if core/model.py does not list it)."""
    public = _public(module.__name__)
    if "__getattr__" not in vars(module) and any(key[0] == public for key in _NAMES):
        module.__getattr__ = planned_names(module.__name__)  # type: ignore[method-assign]
