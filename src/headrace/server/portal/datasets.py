"""Registered datasets: the list (each its latest version), and a dataset's page with its
versions (definition and content identity) and the lineage of the chosen version (which
step runs produced and consumed it), linked to those runs and steps."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import Request, Response

from headrace.errors import DatasetNotFoundError, UserError
from headrace.server.portal.base import PortalError, ViewerDep, page, render, state
from headrace.store.datasets import describe_version
from headrace.store.records import DatasetRecord

__all__: list[str] = []


def _row(record: DatasetRecord) -> dict[str, Any]:
    return {
        **describe_version(record),
        "url": f"/ui/datasets/{quote(record.name)}?version={record.version}",
        "format": (record.definition.get("format") or {}).get("type"),
    }


@page("/datasets")
def datasets(request: Request, _viewer: ViewerDep) -> Response:
    """The registered datasets, each its latest version."""
    found = state(request).store.meta.list_datasets()
    data = {"datasets": [_row(r) for r in found]}
    return render(request, "datasets.html", title="Datasets", data=data)


@page("/datasets/{name}")
def dataset(
    request: Request, name: str, _viewer: ViewerDep, version: str | None = None
) -> Response:
    """A dataset's versions and the lineage of one version (the latest by default)."""
    meta = state(request).store.meta
    try:
        number = None if version in (None, "", "latest") else int(str(version))
        chosen = meta.get_dataset(name, number)
    except ValueError as exc:
        raise PortalError(400, f"version must be a number, not {version!r}.") from exc
    except (DatasetNotFoundError, UserError) as exc:
        raise PortalError(404, str(exc)) from exc
    lineage = [
        {
            "role": item.role,
            "step_name": item.step_name,
            "port": item.port,
            "status": item.status,
            "step_run_id": item.step_run_id,
            "step_url": f"/ui/steps/{quote(item.step_run_id)}",
            "pipeline_run_id": item.pipeline_run_id,
            "run_url": f"/ui/runs/{quote(item.pipeline_run_id)}",
            "at": item.created_at,
        }
        for item in meta.dataset_lineage(chosen.id)
    ]
    data = {
        "dataset": _row(chosen),
        "versions": [_row(r) for r in meta.dataset_versions(name)],
        "lineage": lineage,
    }
    return render(request, "dataset.html", title=f"Dataset {name}", data=data)
