"""The model registry: every model (its newest version, how many versions), and one model's
versions with their lineage: the run that registered each (linked to its step or pipeline
run page) and the datasets it was trained on (linked to their pages). Three statements a
page, whatever the registry's size.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import Request, Response

from headrace.errors import ModelNotFoundError
from headrace.server.portal.base import PortalError, ViewerDep, page, render, state
from headrace.store.models import model_document, step_run_ids
from headrace.store.records import ModelRecord

__all__: list[str] = []


def _run_urls(request: Request, records: list[ModelRecord]) -> dict[str, str]:
    """run id -> its page, for the runs that registered `records` (one query)."""
    ids = {r.run_id for r in records if r.run_id}
    steps = step_run_ids(state(request).store.database, ids)
    return {i: f"/ui/steps/{i}" if i in steps else f"/ui/runs/{i}" for i in ids}


def _row(record: ModelRecord, runs: dict[str, str]) -> dict[str, Any]:
    row = model_document(record)
    row["created"] = record.created_at
    row["url"] = f"/ui/models/{quote(record.name)}?version={record.version}"
    row["run_url"] = runs.get(record.run_id or "")
    row["datasets"] = [
        {
            **d,
            "url": (
                f"/ui/datasets/{quote(str(d['name']))}?version={quote(str(d.get('version')))}"
                if d.get("name")
                else None
            ),
        }
        for d in record.datasets
    ]
    return row


@page("/models")
def models(request: Request, _viewer: ViewerDep) -> Response:
    """Every registered model: its newest version, and how many versions it has."""
    everything = state(request).backend.list_models()
    counts: dict[str, int] = {}
    for record in everything:
        counts[record.name] = counts.get(record.name, 0) + 1
    newest = [r for r in everything if r.version == max_version(everything, r.name)]
    runs = _run_urls(request, newest)
    rows = [
        {
            **_row(r, runs),
            "url": f"/ui/models/{quote(r.name)}",
            "versions": counts[r.name],
        }
        for r in newest
    ]
    return render(request, "models.html", title="Models", data={"models": rows})


def max_version(records: list[ModelRecord], name: str) -> int:
    return max(r.version for r in records if r.name == name)


@page("/models/{name}")
def model(request: Request, _viewer: ViewerDep, name: str, version: int | None = None) -> Response:
    """One model's versions, newest first, with their lineage; `?version=` shows one
    version's details (default: the newest)."""
    backend = state(request).backend
    versions = backend.list_models(name=name)
    if not versions:
        try:
            backend.get_model(name)
        except ModelNotFoundError as exc:
            raise PortalError(404, f"{exc} The models are listed on /ui/models.") from exc
    chosen = next((r for r in versions if version is None or r.version == version), None)
    if chosen is None:
        listed = ", ".join(str(r.version) for r in reversed(versions))
        raise PortalError(
            404, f"Model {name!r} has no version {version}; its versions are {listed}."
        )
    runs = _run_urls(request, versions)
    data = {
        "name": name,
        "selected": _row(chosen, runs),
        "versions": [_row(r, runs) for r in versions],
    }
    return render(request, "model.html", title=f"Model {name}", data=data)
