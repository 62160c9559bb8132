"""`Experiment`: a named group of runs, and the SDK v1 way to submit a pipeline."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from headrace.errors import UserError
from headrace.sdk.checks import check_workspace

if TYPE_CHECKING:
    from headrace.sdk.runs import PipelineRun
    from headrace.sdk.workspace import Workspace

__all__ = ["Experiment"]

_NAME = re.compile(r"^[A-Za-z0-9][\w-]{0,254}$")


class Experiment:
    def __init__(
        self, workspace: Workspace, name: str, _skip_name_validation: bool = False, **kwargs: Any
    ) -> None:
        if not _skip_name_validation and (not isinstance(name, str) or not _NAME.match(name)):
            raise UserError(
                f"Experiment name {name!r} is invalid: use 1-255 letters, digits, '-' or '_', "
                "starting with a letter or digit."
            )
        self.workspace = check_workspace(workspace, "Experiment's workspace")
        self.name = name

    def submit(self, config: Any, tags: dict[str, Any] | None = None, **kwargs: Any) -> PipelineRun:
        """Submit a Pipeline, PublishedPipeline or PipelineEndpoint (SDK v1
        `Experiment.submit`); returns the PipelineRun at once."""
        from headrace.sdk.pipeline import Pipeline
        from headrace.sdk.published import PipelineEndpoint, PublishedPipeline

        if isinstance(config, (Pipeline, PublishedPipeline, PipelineEndpoint)):
            return config._submit_from_experiment(self, tags=tags, **kwargs)
        raise UserError(
            f"Experiment.submit cannot submit a {type(config).__name__}; pass a Pipeline, "
            "PublishedPipeline or PipelineEndpoint."
        )

    def get_runs(
        self,
        type: str | None = None,
        tags: Any = None,
        properties: Any = None,
        include_children: bool = False,
    ) -> Iterator[PipelineRun]:
        from headrace.sdk.runs import PipelineRun

        offset = 0
        while True:
            records = self.workspace.backend.list_pipeline_runs(
                experiment_name=self.name, limit=100, offset=offset
            )
            for record in records:
                yield PipelineRun(self, record.id, record)
            if len(records) < 100:
                return
            offset += 100

    @staticmethod
    def list(
        workspace: Workspace, experiment_name: str | None = None, **kwargs: Any
    ) -> list[Experiment]:
        found = [Experiment(workspace, e.name) for e, _ in workspace.backend.list_experiments()]
        return [e for e in found if experiment_name is None or e.name == experiment_name]

    def __repr__(self) -> str:
        return f"Experiment(name={self.name!r}, workspace={self.workspace.name!r})"
