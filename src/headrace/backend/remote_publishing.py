"""Published pipelines and pipeline endpoints over HTTP: those `Backend` methods of
`RemoteBackend` (the server's /api/v1/published-pipelines and /pipeline-endpoints routes)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headrace.backend.wire import (
    endpoint_from_document,
    published_pipeline_from_document,
    submission_from_wire,
)
from headrace.backend.wire import url_segment as _seg
from headrace.engine import publishing
from headrace.engine.submission import Submission
from headrace.errors import UserError
from headrace.graph.model import Graph
from headrace.store.records import PipelineEndpointRecord, PublishedPipelineRecord

__all__ = ["RemotePublishingMethods"]


class RemotePublishingMethods:
    if TYPE_CHECKING:  # provided by RemoteBackend

        def _json(self, method: str, path: str, **kwargs: Any) -> Any: ...

    def publish_pipeline(
        self,
        graph: Graph,
        *,
        name: str,
        description: str | None,
        version: str | None,
        continue_on_step_failure: bool,
        source_run_id: str | None = None,
    ) -> PublishedPipelineRecord:
        body = {
            "graph": graph.to_dict(),
            "name": name,
            "description": description,
            "version": version,
            "continue_on_step_failure": continue_on_step_failure,
            "source_run_id": source_run_id,
        }
        doc = self._json("POST", "/published-pipelines", body=body)
        return published_pipeline_from_document(doc)

    def get_published_pipeline(self, pipeline_id: str) -> PublishedPipelineRecord:
        doc = self._json("GET", f"/published-pipelines/{_seg(pipeline_id)}")
        return published_pipeline_from_document(doc)

    def list_published_pipelines(self, active_only: bool = True) -> list[PublishedPipelineRecord]:
        docs = self._json(
            "GET", "/published-pipelines", params={"activeOnly": "true" if active_only else "false"}
        )
        return [published_pipeline_from_document(d) for d in docs["Value"]]

    def set_published_pipeline_status(
        self, pipeline_id: str, status: str
    ) -> PublishedPipelineRecord:
        doc = self._json(
            "PATCH", f"/published-pipelines/{_seg(pipeline_id)}", body={"status": status}
        )
        return published_pipeline_from_document(doc)

    def submit_published_pipeline(
        self,
        pipeline_id: str,
        *,
        experiment_name: str,
        parameters: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
        description: str | None = None,
        run_source: str = "SDK",
        continue_on_step_failure: bool | None = None,
        data_path_assignments: dict[str, Any] | None = None,
        with_preview: bool = True,
    ) -> Submission:
        # `with_preview` saves the server work only; the server's answer always has previews.
        body = {
            "experiment_name": experiment_name,
            "parameters": parameters,
            "tags": tags,
            "description": description,
            "run_source": run_source,
            "continue_on_step_failure": continue_on_step_failure,
            "data_path_assignments": data_path_assignments,
        }
        answer = self._json("POST", f"/published-pipelines/{_seg(pipeline_id)}/runs", body=body)
        return submission_from_wire(answer)

    def create_pipeline_endpoint(
        self, *, name: str, description: str | None, pipeline_id: str
    ) -> PipelineEndpointRecord:
        body = {"name": name, "description": description, "pipeline_id": pipeline_id}
        return endpoint_from_document(self._json("POST", "/pipeline-endpoints", body=body))

    def get_pipeline_endpoint(
        self, *, id: str | None = None, name: str | None = None
    ) -> PipelineEndpointRecord:
        if id is not None:
            return endpoint_from_document(self._json("GET", f"/pipeline-endpoints/{_seg(id)}"))
        if name is None:
            raise UserError("PipelineEndpoint.get needs an id or a name.")
        doc = self._json("GET", f"/pipeline-endpoints/by-name/{_seg(name)}")
        return endpoint_from_document(doc)

    def list_pipeline_endpoints(self, active_only: bool = True) -> list[PipelineEndpointRecord]:
        docs = self._json(
            "GET", "/pipeline-endpoints", params={"activeOnly": "true" if active_only else "false"}
        )
        return [endpoint_from_document(d) for d in docs["Value"]]

    def add_pipeline_endpoint_version(
        self, endpoint_id: str, pipeline_id: str, make_default: bool
    ) -> PipelineEndpointRecord:
        body = {"pipeline_id": pipeline_id, "make_default": make_default}
        doc = self._json("POST", f"/pipeline-endpoints/{_seg(endpoint_id)}/versions", body=body)
        return endpoint_from_document(doc)

    def set_pipeline_endpoint_default(
        self, endpoint_id: str, version: str
    ) -> PipelineEndpointRecord:
        doc = self._json(
            "POST", f"/pipeline-endpoints/{_seg(endpoint_id)}/default", body={"version": version}
        )
        return endpoint_from_document(doc)

    def update_pipeline_endpoint(
        self,
        endpoint_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        status: str | None = None,
    ) -> PipelineEndpointRecord:
        body = {"name": name, "description": description, "status": status}
        doc = self._json("PATCH", f"/pipeline-endpoints/{_seg(endpoint_id)}", body=body)
        return endpoint_from_document(doc)

    def endpoint_pipeline_id(self, endpoint: PipelineEndpointRecord, version: str | None) -> str:
        return publishing.endpoint_pipeline_id(endpoint, version)
