"""Every error headrace raises on purpose, in one tree.

    HeadraceError                       base of everything below (compat: AzureMLException)
    ├── UserError (ValueError)          the caller passed something wrong (UserErrorException)
    │   ├── PipelineValidationError     all problems of a pipeline definition, at once
    │   ├── ParameterError              unknown or mistyped pipeline parameters at submit
    │   ├── NotAStepError (NotImplementedError)  Pipeline(steps=...) got a non-step (SDK v1)
    │   ├── DatastorePathError          a path that would leave its datastore
    │   ├── DatasetPathError            a dataset path or pattern that matches no file
    │   └── DatasetFormatError          data that does not read as its dataset says
    ├── NotFoundError (LookupError)     a named thing does not exist
    │   ├── DatastoreNotFoundError (UserError too: SDK v1 code catches UserErrorException)
    │   ├── WorkspaceNotFoundError
    │   ├── ComputeTargetException      the SDK v1 name; `try: ComputeTarget(ws, n) except ...`
    │   ├── ModelNotFoundError          no registered model of that name or version
    │   ├── RunNotFoundError
    │   └── DatasetNotFoundError        no dataset with that name, version or id
    ├── ConflictError                   a thing already exists or is in the wrong state
    │   ├── AliasConflictError          a real Azure ML SDK is importable beside the alias
    │   ├── WorkspaceExistsError
    │   ├── NameConflictError (ValueError)  a published pipeline endpoint name is taken
    │   └── PipelineDisabledError (ValueError)  a Disabled published pipeline or endpoint
    ├── ConfigError                     a workspace folder or config that cannot be used
    ├── StoreError                      the metadata database cannot be reached or is broken
    ├── NotificationError               an email or webhook could not be delivered
    ├── MissingDependencyError (ImportError)  an optional extra is not installed
    ├── NotInHeadraceError (ImportError)  an SDK v1 name headrace does not have; says what
    │   │                                 to use instead
    │   └── NotYetImplementedError      one headrace plans but has not built
    └── ActivityFailedException         a run ended Failed/Canceled while being waited on

Messages name the problem and the fix; `.message` is the message, as in SDK v1. Foreign
exceptions are translated where they cross into headrace (`raise ... from exc`); nothing
here imports the rest of the package.
"""

from __future__ import annotations

TYPE_CHECKING = False  # every headrace import loads this module: it does not load typing
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

__all__ = [
    "ActivityFailedException",
    "AliasConflictError",
    "ComputeTargetException",
    "ConfigError",
    "ConflictError",
    "DatasetFormatError",
    "DatasetNotFoundError",
    "DatasetPathError",
    "DatastoreNotFoundError",
    "DatastorePathError",
    "HeadraceError",
    "MissingDependencyError",
    "ModelNotFoundError",
    "NameConflictError",
    "NotAStepError",
    "NotFoundError",
    "NotInHeadraceError",
    "NotYetImplementedError",
    "NotificationError",
    "ParameterError",
    "PipelineDisabledError",
    "PipelineValidationError",
    "RunNotFoundError",
    "StoreError",
    "UserError",
    "WorkspaceExistsError",
    "WorkspaceNotFoundError",
]


class HeadraceError(Exception):
    """Base class of every error headrace raises on purpose.

    `cli_message`: the same message with the fix in the command line's words (`--exist-ok`
    where the SDK says `exist_ok=True`), which the `headrace` CLI prints instead; None when
    the message reads right in both."""

    cli_message: str | None = None

    def in_cli_words(self, message: str) -> HeadraceError:
        """This error, saying `message` when the `headrace` CLI reports it."""
        self.cli_message = message
        return self

    @property
    def message(self) -> str:
        """The error's message, as SDK v1's `AzureMLException.message` gave it."""
        return str(self.args[0]) if self.args else ""


class UserError(HeadraceError, ValueError):
    """The caller passed something wrong. A ValueError, as SDK v1 raised for these."""


class PipelineValidationError(UserError):
    """A pipeline definition has problems; `problems` lists every one of them."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"The pipeline has {count} {noun}; nothing was submitted:\n{lines}")


class ParameterError(UserError):
    """A pipeline parameter assignment names an unknown parameter or has the wrong type."""


class NotAStepError(UserError, NotImplementedError):
    """Pipeline(steps=...) got something that is not a step. SDK v1 raised
    NotImplementedError for this, so this is one too."""


class DatastorePathError(UserError):
    """A path would point outside its datastore (absolute, `..`, or a symlink out)."""


class DatasetPathError(UserError):
    """A dataset's path, pattern or URL matches no file (SDK v1 checked this at definition)."""


class DatasetFormatError(UserError):
    """A dataset's files do not read as the dataset says: ragged CSV rows, a value that is
    not of its column's type, a column that does not exist."""


class NotFoundError(HeadraceError, LookupError):
    """A named object (workspace, datastore, run, ...) does not exist."""


class DatastoreNotFoundError(NotFoundError, UserError):
    """No datastore with that name. Also a UserError: SDK v1 raised UserErrorException, and
    code catches that around `Datastore.get`."""


class WorkspaceNotFoundError(NotFoundError):
    """No workspace with that name or path."""


class ComputeTargetException(NotFoundError):
    """A compute target is missing or invalid (the SDK v1 exception name)."""


class ModelNotFoundError(NotFoundError):
    """No registered model with that name (or no such version of it)."""


class RunNotFoundError(NotFoundError):
    """No run with that id."""


class DatasetNotFoundError(NotFoundError):
    """No registered dataset with that name, version or id; the message lists what exists."""


class ConflictError(HeadraceError):
    """The object already exists, or is in a state that does not allow the operation."""


class AliasConflictError(ConflictError):
    """The `azureml` import alias was asked for where a real Azure ML SDK is importable;
    the alias would shadow it, so it refuses."""


class WorkspaceExistsError(ConflictError):
    """A workspace with that name already exists and exist_ok was not given."""


class NameConflictError(ConflictError, ValueError):
    """The name is taken (SDK v1 raised ValueError for a duplicate endpoint name)."""


class PipelineDisabledError(ConflictError, ValueError):
    """A Disabled published pipeline or endpoint was submitted (SDK v1: ValueError)."""


class ConfigError(HeadraceError):
    """A workspace folder or configuration file cannot be used as it is."""


class StoreError(HeadraceError):
    """The metadata database cannot be reached, or it is not a headrace database."""


class NotificationError(HeadraceError):
    """An email or webhook notification could not be delivered (refused, timed out, or its
    server could not be reached); the message says which and why, never a secret."""


class MissingDependencyError(HeadraceError, ImportError):
    """An optional dependency is needed; the message says which extra installs it."""


class NotInHeadraceError(HeadraceError, ImportError):
    """An SDK v1 name headrace does not have; the message says what to use instead. An
    ImportError, so `try: from azureml.x import Y except ImportError:` works as before."""


class NotYetImplementedError(NotInHeadraceError):
    """An SDK v1 name (imported through `headrace.compat.azureml`) that is planned, not built."""


class ActivityFailedException(HeadraceError):
    """A run ended without success while `wait_for_completion(raise_on_error=True)` waited.

    `run_id` is the run waited on, `status` its final status, and `error_details` the
    recorded cause (failed step, message, traceback and the tail of its stderr).
    """

    def __init__(self, message: str, *, run_id: str, status: str, error_details: Any) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.status = status
        self.error_details = error_details
