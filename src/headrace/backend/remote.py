"""`RemoteBackend`: the `Backend` protocol over HTTP, against a `headrace server`.

Every call is one or a few requests to the server's /api/v1 routes (`server.api`), in the
wire format of `backend.wire`. Snapshots are hashed here with the same walk and ignore rules
as a local workspace (`engine.snapshots`), so the snapshot id, and therefore reuse, is the
same; only blobs the server lacks are uploaded. Files are streamed in chunks no larger than
the server's body limit, never read whole into memory. The server runs its own agent.

Errors come back as the exception class the local backend raises; a server that cannot be
reached, or a token that is refused, becomes an error that says what to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import posixpath
import stat
import uuid
import warnings
from pathlib import Path
from typing import Any

import httpx

from headrace.backend.remote_models import RemoteModelMethods
from headrace.backend.remote_notifications import RemoteNotificationMethods
from headrace.backend.remote_publishing import RemotePublishingMethods
from headrace.backend.remote_schedules import RemoteScheduleMethods
from headrace.backend.wire import (
    error_from_body,
    from_wire,
    manifest_id,
    submission_from_wire,
    to_wire,
)
from headrace.backend.wire import url_path as _quote
from headrace.backend.wire import url_segment as _seg
from headrace.config import headrace_home, snapshot_max_bytes, snapshot_max_files
from headrace.engine.submission import Submission
from headrace.errors import ConfigError, HeadraceError, NotFoundError, UserError
from headrace.graph.model import Graph
from headrace.store.datastores import clean_relative_path, partial_path
from headrace.store.layout import write_json_atomic
from headrace.store.records import (
    NOTIFY_PROPERTY,
    ComputeTargetRecord,
    DatasetLineageRecord,
    DatasetRecord,
    DatastoreRecord,
    EnvironmentRecord,
    EventRecord,
    ExperimentRecord,
    MetricRecord,
    PipelineRunRecord,
    RunFileRecord,
    StepRunRecord,
)
from headrace.store.transfer_progress import byte_progress

__all__ = ["RemoteBackend"]

API = "/api/v1"
DEFAULT_CHUNK = 512 * 1024
MAX_CHUNK = 8 * 1024 * 1024
METRIC_RUNS_PER_REQUEST = 100  # run ids of 36 characters: about 4.3 KB of query


class RemoteBackend(
    RemoteModelMethods, RemoteScheduleMethods, RemoteNotificationMethods, RemotePublishingMethods
):
    """A workspace served by `headrace server` at `url`; `auth_header` is sent on every call
    (e.g. {"Authorization": "Bearer hr_..."}; empty for a server run with --no-auth)."""

    def __init__(
        self, url: str, auth_header: dict[str, str] | None = None, *, timeout: float = 60.0
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"The server URL {url!r} must start with http:// or https://, "
                "for example http://127.0.0.1:8765."
            )
        self.url = url.rstrip("/")
        self._auth_header = dict(auth_header or {})
        self._timeout = timeout
        self._http: httpx.Client | None = None
        self._chunk: int | None = None

    @property
    def location(self) -> str:
        return self.url

    @property
    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(
                base_url=self.url, headers=self._auth_header, timeout=self._timeout
            )
        return self._http

    def close(self) -> None:
        """Close the connections (a later call opens new ones)."""
        http, self._http = self._http, None
        if http is not None:
            http.close()

    # -- HTTP ------------------------------------------------------------------------------
    def _send(self, method: str, path: str, *, body: Any = None, **kwargs: Any) -> httpx.Response:
        if body is not None:
            kwargs["content"] = _dumps(body)
            kwargs["headers"] = {"Content-Type": "application/json"}
        try:
            response = self._client.request(method, API + path, **kwargs)
        except httpx.TransportError as exc:
            raise ConfigError(
                f"Cannot reach the headrace server at {self.url} ({exc}); start it with "
                "`headrace server --workspace DIR`, or fix the URL (Workspace.get(name, "
                'url=...) or "server_url" in .azureml/config.json).'
            ) from exc
        if response.status_code >= 400:
            raise self._error(response)
        return response

    def _error(self, response: httpx.Response) -> HeadraceError:
        try:
            body = response.json()
        except ValueError:
            body = None
        error = error_from_body(body, response.status_code, self.url)
        if response.status_code in (401, 403):
            role = "a token" if not self._auth_header else "a token with the role this needs"
            create = "create one with `headrace token create --name NAME --role submitter`"
            return ConfigError(
                f"{error} The server at {self.url} needs {role}: pass "
                "auth=headrace.TokenAuthentication('hr_...') to Workspace.get, set "
                f'HEADRACE_TOKEN, or add "token" to .azureml/config.json ({create}).'
            ).in_cli_words(
                f"{error} The server at {self.url} needs {role}: pass --token hr_... before "
                f"the command (headrace --server URL --token hr_... run list) or set "
                f"HEADRACE_TOKEN ({create} on the server's machine)."
            )
        return error

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._send(method, path, **kwargs).json()

    def _find(self, path: str) -> Any:
        try:
            return self._json("GET", path)
        except NotFoundError:
            return None

    def _chunk_size(self) -> int:
        if self._chunk is None:
            limit = int(self.workspace_info().get("max_body_bytes") or 2 * DEFAULT_CHUNK)
            self._chunk = max(1024, min(MAX_CHUNK, limit // 2))
        return self._chunk

    def _upload(self, path: str, source: Path, params: dict[str, Any] | None = None) -> Any:
        """PUT `source` to `path` in chunks; the answer to the last chunk."""
        upload = uuid.uuid4().hex
        size = source.stat().st_size
        chunk = self._chunk_size()
        offset = 0
        answer: Any = None
        with source.open("rb") as fh:
            while True:
                data = fh.read(chunk)
                final = offset + len(data) >= size
                query = {**(params or {}), "upload": upload, "offset": offset}
                query["final"] = "true" if final else "false"
                answer = self._json("PUT", path, params=query, content=data)
                offset += len(data)
                if final:
                    return answer

    def _download(self, path: str, destination: Path) -> None:
        """Stream GET `path` into `destination` (written under a temporary name first)."""
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = partial_path(destination)
        try:
            with self._client.stream("GET", API + path) as response:
                if response.status_code >= 400:
                    response.read()
                    raise self._error(response)
                with partial.open("wb") as fh:
                    for block in response.iter_bytes(1 << 20):
                        fh.write(block)
            partial.replace(destination)
        except httpx.TransportError as exc:
            raise ConfigError(
                f"Cannot reach the headrace server at {self.url} ({exc}); start it with "
                "`headrace server --workspace DIR`, or fix the URL."
            ) from exc
        finally:
            partial.unlink(missing_ok=True)

    # -- workspace -------------------------------------------------------------------------
    def workspace_info(self) -> dict[str, Any]:
        info: dict[str, Any] = self._json("GET", "/workspace")
        info["server_url"] = self.url
        return info

    # -- datasets --------------------------------------------------------------------------
    def local_datastore_path(self, name: str) -> str | None:
        return None  # the server's folders are not this machine's

    def register_dataset(
        self,
        definition: dict[str, Any],
        *,
        name: str,
        description: str | None,
        tags: dict[str, Any],
        create_new_version: bool,
    ) -> DatasetRecord:
        body = {
            "definition": definition,
            "name": name,
            "description": description,
            "tags": tags,
            "create_new_version": create_new_version,
        }
        return from_wire(DatasetRecord, self._json("POST", "/datasets", body=body))

    def get_dataset(self, name: str, version: int | None = None) -> DatasetRecord:
        which = "latest" if version is None else str(version)
        path = f"/datasets/{_seg(name)}/versions/{which}"
        return from_wire(DatasetRecord, self._json("GET", path))

    def get_dataset_by_id(self, dataset_id: str) -> DatasetRecord:
        path = f"/dataset-versions/{_seg(dataset_id)}"
        return from_wire(DatasetRecord, self._json("GET", path))

    def list_datasets(self) -> list[DatasetRecord]:
        return [from_wire(DatasetRecord, d) for d in self._json("GET", "/datasets")]

    def list_dataset_versions(self, name: str) -> list[DatasetRecord]:
        path = f"/datasets/{_seg(name)}/versions"
        return [from_wire(DatasetRecord, d) for d in self._json("GET", path)]

    def dataset_lineage(self, dataset_id: str) -> list[DatasetLineageRecord]:
        path = f"/dataset-versions/{_seg(dataset_id)}/lineage"
        return [from_wire(DatasetLineageRecord, d) for d in self._json("GET", path)]

    # -- datastores ------------------------------------------------------------------------
    def list_datastores(self) -> list[DatastoreRecord]:
        return [from_wire(DatastoreRecord, d) for d in self._json("GET", "/datastores")]

    def find_datastore(self, name: str) -> DatastoreRecord | None:
        found = self._find(f"/datastores/{_seg(name)}")
        return None if found is None else from_wire(DatastoreRecord, found)

    def register_datastore(
        self, name: str, type_: str, config: dict[str, Any], *, overwrite: bool
    ) -> DatastoreRecord:
        body = {"type": type_, "config": config, "overwrite": overwrite}
        return from_wire(DatastoreRecord, self._json("PUT", f"/datastores/{_seg(name)}", body=body))

    def set_default_datastore(self, name: str) -> None:
        self._send("POST", f"/datastores/{_seg(name)}/default")

    def datastore_root(self, name: str) -> str:
        root: str = self._json("GET", f"/datastores/{_seg(name)}/root")["root"]
        return f"{self.url} ({root})"

    def upload_files(
        self,
        datastore: str,
        files: list[tuple[Path, str]],
        *,
        overwrite: bool,
        show_progress: bool,
    ) -> list[tuple[str, bool]]:
        # Check every target before sending anything: a bad path uploads nothing.
        checked = [(src, clean_relative_path(path, what="target path")) for src, path in files]
        results: list[tuple[str, bool]] = []
        total = sum(Path(src).stat().st_size for src, _path in checked)
        with byte_progress(show_progress, "Uploading", total) as advance:
            for src, path in checked:
                answer = self._upload(
                    f"/datastores/{_seg(datastore)}/files/{_quote(path)}",
                    Path(src),
                    {"overwrite": "true" if overwrite else "false"},
                )
                results.append((str(answer["path"]), bool(answer["uploaded"])))
                advance(Path(src).stat().st_size)
        return results

    def list_datastore_files(self, datastore: str, prefix: str) -> list[tuple[str, int]]:
        listing = self._json(
            "GET", f"/datastores/{_seg(datastore)}/files", params={"prefix": prefix}
        )
        return [(str(path), int(size)) for path, size in listing]

    def download_datastore_files(
        self,
        datastore: str,
        files: list[tuple[str, Path]],
        *,
        overwrite: bool,
        show_progress: bool,
    ) -> int:
        todo = [(p, d) for p, d in files if overwrite or not d.exists()]
        total = 0
        if todo and show_progress:  # the bar's total: one listing of the folder they share
            folder = posixpath.commonpath([posixpath.dirname(p) for p, _d in todo])
            sizes = dict(self.list_datastore_files(datastore, folder))
            total = sum(sizes.get(p, 0) for p, _d in todo)
        with byte_progress(show_progress, "Downloading", total) as advance:
            for path, destination in todo:
                rel = clean_relative_path(path)
                self._download(f"/datastores/{_seg(datastore)}/files/{_quote(rel)}", destination)
                advance(destination.stat().st_size)
        return len(todo)

    # -- compute ---------------------------------------------------------------------------
    def create_compute_target(
        self, name: str, type_: str, config: dict[str, Any]
    ) -> ComputeTargetRecord:
        answer = self._json(
            "PUT", f"/compute-targets/{_seg(name)}", body={"type": type_, "config": config}
        )
        return from_wire(ComputeTargetRecord, answer)

    def find_compute_target(self, name: str) -> ComputeTargetRecord | None:
        found = self._find(f"/compute-targets/{_seg(name)}")
        return None if found is None else from_wire(ComputeTargetRecord, found)

    def list_compute_targets(self) -> list[ComputeTargetRecord]:
        return [from_wire(ComputeTargetRecord, c) for c in self._json("GET", "/compute-targets")]

    def running_steps(self, compute_target: str) -> int:
        return int(
            self._json("GET", f"/compute-targets/{_seg(compute_target)}/running-steps")["running"]
        )

    # -- experiments and runs --------------------------------------------------------------
    def list_experiments(self) -> list[tuple[ExperimentRecord, int]]:
        return [
            (from_wire(ExperimentRecord, e["experiment"]), int(e["runs"]))
            for e in self._json("GET", "/experiments")
        ]

    def create_snapshot(self, source_directory: str) -> str:
        """Hash the folder here; upload the blobs the server lacks, then the manifest."""
        from headrace.engine.snapshots import SnapshotSizeWarning, _hash_file, _walk

        source = Path(source_directory)
        if not source.is_dir():
            raise UserError(
                f"The source_directory {str(source)!r} does not exist or is not a folder; pass "
                "the folder that holds the step's script."
            )
        source = source.resolve()
        # Hashes are kept by (size, mtime), as a local workspace does: resubmitting an
        # unchanged folder reads no file contents.
        cache_path = (
            headrace_home()
            / "snapshot-cache"
            / f"{hashlib.sha256(str(source).encode()).hexdigest()[:32]}.json"
        )
        try:
            cache: dict[str, list[Any]] = json.loads(cache_path.read_text())
        except (OSError, ValueError):
            cache = {}
        files: dict[str, dict[str, Any]] = {}
        paths: dict[str, Path] = {}
        seen: dict[str, list[Any]] = {}
        for rel, full, st in _walk(source):
            hit = cache.get(rel)
            if isinstance(hit, list) and hit[:2] == [st.st_size, st.st_mtime_ns]:
                sha = str(hit[2])
            else:
                sha = _hash_file(full)
            files[rel] = {"sha": sha, "size": st.st_size, "x": bool(st.st_mode & stat.S_IXUSR)}
            paths.setdefault(sha, full)
            seen[rel] = [st.st_size, st.st_mtime_ns, sha]
        total = sum(entry["size"] for entry in files.values())
        if total > snapshot_max_bytes() or len(files) > snapshot_max_files():
            warnings.warn(
                f"The source_directory {str(source)!r} holds {len(files)} files, "
                f"{total / 1e6:.1f} MB; every step using it snapshots all of it. List data, "
                "virtual environments and outputs in an .amlignore file there.",
                SnapshotSizeWarning,
                stacklevel=3,
            )
        if seen != cache:
            with contextlib.suppress(OSError):  # a cache that cannot be written only costs time
                cache_path.parent.mkdir(parents=True, exist_ok=True)
                write_json_atomic(cache_path, seen)
        missing = self._json("POST", "/snapshots/missing-blobs", body={"shas": list(paths)})
        for sha in missing["missing"]:
            self._upload(f"/snapshots/blobs/{sha}", paths[sha])
        snapshot_id: str = self._json("POST", "/snapshots", body={"files": files})["id"]
        if snapshot_id != manifest_id({"files": files}):
            raise HeadraceError(
                f"The server at {self.url} named the snapshot {snapshot_id}, not the id this "
                "headrace computes; client and server versions differ: upgrade the older one."
            )
        return snapshot_id

    def submit(
        self,
        graph: Graph,
        *,
        experiment_name: str,
        parameters: dict[str, Any] | None,
        tags: dict[str, Any] | None,
        description: str | None,
        continue_on_step_failure: bool,
        regenerate_outputs: bool,
        run_source: str = "SDK",
        properties: dict[str, Any] | None = None,
    ) -> Submission:
        body = {
            "graph": graph.to_dict(),
            "experiment_name": experiment_name,
            "parameters": parameters,
            "tags": tags,
            "description": description,
            "continue_on_step_failure": continue_on_step_failure,
            "regenerate_outputs": regenerate_outputs,
            "run_source": run_source,
        }
        if (properties or {}).get(NOTIFY_PROPERTY) == "true":
            body["enable_notification"] = True
        return submission_from_wire(self._json("POST", "/pipeline-runs", body=body))

    def rerun(
        self,
        run_id: str,
        *,
        parameters: dict[str, Any] | None = None,
        from_failed: bool = False,
        run_source: str = "SDK",
    ) -> Submission:
        body = {"parameters": parameters, "from_failed": from_failed, "run_source": run_source}
        answer = self._json("POST", f"/pipeline-runs/{_seg(run_id)}/rerun", body=body)
        return submission_from_wire(answer)

    def ensure_agent(self) -> bool:
        """The server runs the agent; nothing to start here."""
        return False

    def get_pipeline_run(self, run_id: str) -> PipelineRunRecord:
        return from_wire(PipelineRunRecord, self._json("GET", f"/pipeline-runs/{_seg(run_id)}"))

    def list_pipeline_runs(
        self,
        *,
        experiment_name: str | None = None,
        statuses: list[str] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[PipelineRunRecord]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if experiment_name is not None:
            params["experiment"] = experiment_name
        if statuses:
            params["status"] = list(statuses)
        runs = self._json("GET", "/pipeline-runs", params=params)
        return [from_wire(PipelineRunRecord, r) for r in runs]

    def resolve_run_id(self, prefix: str) -> str:
        return str(self._json("GET", f"/run-ids/{_seg(prefix)}")["id"])

    def get_graph(self, graph_id: str) -> Graph:
        return Graph.from_dict(self._json("GET", f"/graphs/{_seg(graph_id)}"))

    def list_step_runs(self, pipeline_run_id: str) -> list[StepRunRecord]:
        steps = self._json("GET", f"/pipeline-runs/{_seg(pipeline_run_id)}/steps")
        return [from_wire(StepRunRecord, s) for s in steps]

    def get_step_run(self, step_run_id: str) -> StepRunRecord:
        return from_wire(StepRunRecord, self._json("GET", f"/step-runs/{_seg(step_run_id)}"))

    def find_step_run(self, step_run_id: str) -> StepRunRecord | None:
        found = self._find(f"/step-runs/{_seg(step_run_id)}")
        return None if found is None else from_wire(StepRunRecord, found)

    def cancel_run(self, run_id: str) -> PipelineRunRecord:
        return from_wire(
            PipelineRunRecord, self._json("POST", f"/pipeline-runs/{_seg(run_id)}/cancel")
        )

    def list_events(self, run_id: str, after_id: int = 0) -> list[EventRecord]:
        events = self._json("GET", f"/runs/{_seg(run_id)}/events", params={"after": after_id})
        return [from_wire(EventRecord, e) for e in events]

    # -- run files, logs, metrics, tags ----------------------------------------------------
    def read_run_file(
        self, run_id: str, name: str, offset: int = 0, limit: int | None = None
    ) -> bytes:
        params: dict[str, Any] = {"offset": offset}
        if limit is not None:
            params["limit"] = limit
        path = f"/runs/{_seg(run_id)}/content/{_quote(name)}"
        return self._send("GET", path, params=params).content

    def list_run_files(self, run_id: str) -> list[RunFileRecord]:
        return [
            from_wire(RunFileRecord, f) for f in self._json("GET", f"/runs/{_seg(run_id)}/files")
        ]

    def download_run_file(self, run_id: str, name: str, destination: Path) -> None:
        self._download(f"/runs/{_seg(run_id)}/files/{_quote(name)}", destination)

    def upload_run_file(self, run_id: str, name: str, source: Path) -> None:
        self._upload(f"/runs/{_seg(run_id)}/files/{_quote(name)}", Path(source))

    def list_metrics(self, run_ids: list[str]) -> list[MetricRecord]:
        if not run_ids:
            return []
        ids = list(run_ids)
        metrics: list[Any] = []
        # In batches, so the URL stays far below the server's limit (limits.URL_MAX_BYTES).
        for start in range(0, len(ids), METRIC_RUNS_PER_REQUEST):
            batch = ids[start : start + METRIC_RUNS_PER_REQUEST]
            metrics += self._json("GET", "/metrics", params={"runId": batch})
        return [from_wire(MetricRecord, m) for m in metrics]

    def log_metrics(self, metrics: list[MetricRecord]) -> None:
        by_run: dict[str, list[dict[str, Any]]] = {}
        for metric in metrics:
            entry = to_wire(metric)
            by_run.setdefault(entry.pop("run_id"), []).append(
                {k: entry[k] for k in ("name", "kind", "value", "step", "description")}
            )
        for run_id, entries in by_run.items():
            self._send("POST", f"/runs/{_seg(run_id)}/metrics", body=entries)

    def tag_run(self, run_id: str, tags: dict[str, Any]) -> None:
        self._send("POST", f"/runs/{_seg(run_id)}/tags", body=tags)

    # -- registered environments -----------------------------------------------------------
    def register_environment(self, name: str, definition: dict[str, Any]) -> EnvironmentRecord:
        body = {"definition": definition}
        return from_wire(
            EnvironmentRecord, self._json("POST", f"/environments/{_seg(name)}", body=body)
        )

    def get_environment(self, name: str, version: int | None = None) -> EnvironmentRecord:
        params = {} if version is None else {"version": version}
        return from_wire(
            EnvironmentRecord, self._json("GET", f"/environments/{_seg(name)}", params=params)
        )

    def list_environments(self) -> list[EnvironmentRecord]:
        return [from_wire(EnvironmentRecord, e) for e in self._json("GET", "/environments")]


def _dumps(body: Any) -> bytes:
    """JSON for a request body; values JSON lacks (numpy numbers, dates) become text."""
    return json.dumps(body, default=str).encode()
