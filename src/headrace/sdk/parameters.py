"""`PipelineParameter`: a named, typed, defaulted value chosen at submit time.

As in SDK v1, a parameter passed in `arguments` reaches the script as its value, and is also
exported as the environment variable `AML_PARAMETER_<name>`. Unlike SDK v1, formatting a
parameter into a string (`f"--lr={lr}"`, `"--lr=" + str(lr)`) works: the text carries a
placeholder that the step runtime replaces with the submitted value, where SDK v1 silently
passed the text `PipelineParameter_Name:lr_Default:0.1`.
"""

from __future__ import annotations

import math
import re
from typing import Any

from headrace.errors import UserError

__all__ = ["PipelineParameter", "referenced_parameters"]

_registry: dict[str, PipelineParameter] = {}
_NAME = re.compile(r"^\w+$")


def referenced_parameters() -> dict[str, PipelineParameter]:
    """Parameters that have been formatted into strings, by name (used to build graphs)."""
    return dict(_registry)


class PipelineParameter:
    """A pipeline parameter with a default of type int, float, bool, str, DataPath or a
    dataset (consumed through `DatasetConsumptionConfig(name, parameter)`)."""

    def __init__(self, name: str, default_value: Any) -> None:
        from headrace.sdk.data import DataPath
        from headrace.sdk.datasets import AbstractDataset

        if not isinstance(name, str) or not name:
            raise UserError(
                f"PipelineParameter's name must be non-empty text (letters, digits and "
                f"underscores, such as 'learning_rate'), not {name!r} ({type(name).__name__})."
            )
        if isinstance(default_value, float) and not math.isfinite(default_value):
            raise UserError(
                f"PipelineParameter {name!r}: the default value {default_value} is not a finite "
                "number; give a finite float (or a str)."
            )
        if default_value is None or not isinstance(
            default_value, (int, float, bool, str, DataPath, AbstractDataset)
        ):
            raise UserError(
                f"PipelineParameter {name!r}: the default value must be an int, float, bool, "
                f"str, DataPath or dataset, not {type(default_value).__name__}."
            )
        self.name = name
        self.default_value = default_value

    @property
    def type_name(self) -> str:
        from headrace.sdk.data import DataPath
        from headrace.sdk.datasets import AbstractDataset

        value = self.default_value
        if isinstance(value, DataPath):
            return "datapath"
        if isinstance(value, AbstractDataset):
            return "dataset"
        if isinstance(value, bool):
            return "bool"
        if isinstance(value, int):
            return "int"
        if isinstance(value, float):
            return "float"
        return "str"

    @property
    def name_is_valid(self) -> bool:
        return bool(_NAME.match(self.name))

    def default_for_graph(self) -> Any:
        from headrace.sdk.data import DataPath
        from headrace.sdk.datasets import AbstractDataset

        if isinstance(self.default_value, AbstractDataset):
            return self.default_value._graph_definition()
        if isinstance(self.default_value, DataPath):
            return {
                "datastore": self.default_value.datastore_name,
                "path": self.default_value.path_on_datastore,
            }
        return self.default_value

    def _placeholder(self, braced: bool) -> str:
        _registry[self.name] = self
        name = re.sub(r"\W", "_", self.name)
        return f"${{AML_PARAMETER_{name}}}" if braced else f"$AML_PARAMETER_{name}"

    def __str__(self) -> str:
        return self._placeholder(braced=True)

    def __format__(self, spec: str) -> str:
        return self._placeholder(braced=True)

    def __repr__(self) -> str:
        return f"PipelineParameter(name={self.name!r}, default_value={self.default_value!r})"
