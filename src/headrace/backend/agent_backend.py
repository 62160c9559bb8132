"""`AgentBackend`: a workspace folder whose warm agent answers the submit path.

`Workspace(path=...)` hands its SDK objects this backend. Submitting a pipeline and
following its run go to the workspace's agent over its request socket
(`engine/agentsocket.py`): the compute targets and datastores the checks need, the submit
itself, and the run's state, with waits that wake when the run changes. Snapshots and log
files are read and written in the folder, as `LocalBackend` does. So a `python
pipeline.py` never imports SQLAlchemy, Alembic or the store while an agent is warm; a cold
one is started as soon as a Pipeline is made, and the request waits for it.

Everything else, and everything after any failure of the socket (no agent, an agent of
another headrace, one that went away), is `LocalBackend`'s, opened on first use: the
behaviour is the same either way. `HEADRACE_AGENT_REQUESTS=0` turns the socket off.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headrace.config import agent_requests_enabled
from headrace.engine.agentsocket import AgentConnection, AgentUnavailable
from headrace.engine.launcher import ensure_agent, started_agent_running
from headrace.store.records import (
    ComputeTargetRecord,
    DatastoreRecord,
    PipelineRunRecord,
    StepPreview,
    StepRunRecord,
    Submission,
    from_wire,
)

if TYPE_CHECKING:
    from headrace.backend.local import LocalBackend
    from headrace.graph.model import Graph
    from headrace.store.artifacts import LocalArtifactStore

__all__ = ["AgentBackend"]

STARTING_AGENT_SECONDS = 10.0  # how long a request waits for an agent this process started
STARTING_ELSEWHERE_SECONDS = 0.05  # an agent holds its lock a moment before it listens
SUBMIT_SECONDS = 300.0
FALLBACK_POLL_SECONDS = 0.25  # LogFollower's pause between looks without a warm agent


class AgentBackend:
    """A workspace folder: submits and run waits through its agent, the rest local."""

    _OWN = frozenset({"root", "_local", "_artifacts", "_conn", "_off", "_spawned_at"})

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._local: LocalBackend | None = None
        self._artifacts: LocalArtifactStore | None = None
        self._conn: AgentConnection | None = None
        self._off = not agent_requests_enabled()
        self._spawned_at: float | None = None

    # -- the two ways ----------------------------------------------------------------------
    def _real(self) -> LocalBackend:
        """Today's path: the store opened in this process (migrations checked)."""
        if self._local is None:
            from headrace.backend.local import LocalBackend
            from headrace.store.workspace_store import WorkspaceStore

            self._local = LocalBackend(WorkspaceStore.open(self.root))
        return self._local

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in self._OWN:
            raise AttributeError(name)
        return getattr(self._real(), name)

    def _give_up(self, exc: AgentUnavailable | None = None) -> None:
        """The socket failed. Refused, or no agent came up: this backend does everything
        itself from now on. An agent that went away (it exited idle under a long-lived
        notebook): the next request starts and waits for a new one."""
        if exc is None or exc.refused:
            self._off = True
        self._spawned_at = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def expect_submit(self) -> None:
        """A pipeline is being built: start the agent now (if none runs), so it is warm by
        the time the submission is."""
        if self._off or self._conn is not None or self._spawned_at is not None:
            return
        if ensure_agent(self.root):
            self._spawned_at = time.monotonic()

    def _agent(self) -> AgentConnection | None:
        if self._off:
            return None
        if self._conn is not None:
            return self._conn
        try:
            self._conn = AgentConnection(self.root)
            return self._conn
        except AgentUnavailable as exc:
            if exc.refused:  # not an agent of ours listening there
                self._give_up(exc)
                return None
        if self._spawned_at is not None and not started_agent_running():
            self._spawned_at = None  # the one started for this pipeline exited since (idle)
        if self._spawned_at is None and ensure_agent(self.root):
            self._spawned_at = time.monotonic()
        started = self._spawned_at
        deadline = time.monotonic() + (
            STARTING_AGENT_SECONDS if started is not None else STARTING_ELSEWHERE_SECONDS
        )
        while True:
            try:
                self._conn = AgentConnection(self.root)
                return self._conn
            except AgentUnavailable as exc:
                now = time.monotonic()
                # The agent this process started has exited: it will not listen.
                gone = started is not None and not started_agent_running()
                if exc.refused or now >= deadline or gone:
                    self._give_up(exc if exc.refused else None)
                    return None
                time.sleep(0.005)

    def _exchange(
        self, op: str, timeout: float, *, idempotent: bool, **arguments: Any
    ) -> dict[str, Any]:
        """The agent's answer; AgentUnavailable when the socket cannot be used. A connection
        that served before may be stale (its agent exited): the request is tried once more
        on a new one (a submit only if it was not sent whole)."""
        for attempt in (0, 1):
            conn = self._agent()
            if conn is None:
                raise AgentUnavailable("no agent serves this workspace")
            reused = conn.used
            try:
                return conn.call(op, timeout=timeout, **arguments)
            except AgentUnavailable as exc:
                self._give_up(exc)
                again = reused and not exc.refused and (idempotent or not exc.sent)
                if attempt or not again:
                    raise
        raise AssertionError("unreachable")

    def _call(self, op: str, timeout: float = 30.0, **arguments: Any) -> dict[str, Any] | None:
        """The agent's answer, or None when the socket cannot be used (do it locally)."""
        try:
            return self._exchange(op, timeout, idempotent=True, **arguments)
        except AgentUnavailable:
            return None

    # -- answered by the agent -------------------------------------------------------------
    @property
    def location(self) -> str:
        return str(self.root)

    def list_compute_targets(self) -> list[ComputeTargetRecord]:
        answer = self._call("compute_targets")
        if answer is None:
            return self._real().list_compute_targets()
        return [from_wire(ComputeTargetRecord, r) for r in answer["items"]]

    def find_compute_target(self, name: str) -> ComputeTargetRecord | None:
        return next((t for t in self.list_compute_targets() if t.name == name), None)

    def list_datastores(self) -> list[DatastoreRecord]:
        answer = self._call("datastores")
        if answer is None:
            return self._real().list_datastores()
        return [from_wire(DatastoreRecord, r) for r in answer["items"]]

    def find_datastore(self, name: str) -> DatastoreRecord | None:
        return next((d for d in self.list_datastores() if d.name == name), None)

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
        from headrace.engine.interpreters import current

        arguments: dict[str, Any] = {
            "experiment_name": experiment_name,
            "parameters": parameters,
            "tags": tags,
            "description": description,
            "continue_on_step_failure": continue_on_step_failure,
            "regenerate_outputs": regenerate_outputs,
            "run_source": run_source,
            "properties": properties,
        }
        submitter = current()
        run_id = str(uuid.uuid4())
        try:
            answer = self._exchange(
                "submit",
                SUBMIT_SECONDS,
                idempotent=False,
                graph=graph.to_dict(),
                interpreter=submitter.record() if submitter is not None else None,
                run_id=run_id,
                **arguments,
            )
        except AgentUnavailable as exc:
            if exc.sent:
                return self._submit_after_lost_answer(run_id, graph, arguments)
            return self._real().submit(graph, **arguments)
        return Submission(
            run=from_wire(PipelineRunRecord, answer["run"]),
            previews=[from_wire(StepPreview, p) for p in answer["previews"]],
        )

    def _submit_after_lost_answer(
        self, run_id: str, graph: Graph, arguments: dict[str, Any]
    ) -> Submission:
        """The agent got the submit but never answered (it died): the run is queued once,
        by it or now, never twice."""
        from headrace.engine.submission import preview, submit_graph
        from headrace.errors import RunNotFoundError

        real = self._real()
        try:
            record = real.get_pipeline_run(run_id)
        except RunNotFoundError:
            submission = submit_graph(real.store, graph, run_id=run_id, **arguments)
            real.start_work()
            return submission
        real.start_work()  # the agent that queued it is gone: start one
        regenerate = bool(arguments["regenerate_outputs"])
        return Submission(record, preview(real.store, graph, record.parameters, regenerate))

    def watch_run(
        self, run_id: str, token: str | None, timeout: float, *, steps: bool = True
    ) -> tuple[PipelineRunRecord, list[StepRunRecord], str | None]:
        """The run and its steps once their state differs from `token` (at once for None),
        or when `timeout` passes; with the token to pass next time. `steps=False`: the run
        alone (no step records, and only the run's own changes wake the wait)."""
        if token is None:
            answer = self._call("run", run_id=run_id, steps=steps)
        else:
            answer = self._call(
                "wait",
                timeout=timeout + 30.0,
                run_id=run_id,
                token=token,
                timeout_seconds=timeout,
                steps=steps,
            )
        if answer is None:  # the store's way: look again after LogFollower's usual pause
            if token is not None:
                time.sleep(min(timeout, FALLBACK_POLL_SECONDS))
            real = self._real()
            listed = real.list_step_runs(run_id) if steps else []
            return real.get_pipeline_run(run_id), listed, ""
        listed = [from_wire(StepRunRecord, s) for s in answer["steps"]]
        return from_wire(PipelineRunRecord, answer["run"]), listed, str(answer["token"])

    def get_pipeline_run(self, run_id: str) -> PipelineRunRecord:
        answer = self._call("run", run_id=run_id)
        if answer is None:
            return self._real().get_pipeline_run(run_id)
        return from_wire(PipelineRunRecord, answer["run"])

    def list_step_runs(self, pipeline_run_id: str) -> list[StepRunRecord]:
        answer = self._call("run", run_id=pipeline_run_id)
        if answer is None:
            return self._real().list_step_runs(pipeline_run_id)
        return [from_wire(StepRunRecord, s) for s in answer["steps"]]

    # -- files in the folder ---------------------------------------------------------------
    @property
    def artifacts(self) -> LocalArtifactStore:
        if self._artifacts is None:
            from headrace.store.artifacts import LocalArtifactStore
            from headrace.store.layout import WorkspaceLayout

            self._artifacts = LocalArtifactStore(WorkspaceLayout(self.root).artifacts_dir)
        return self._artifacts

    def create_snapshot(self, source_directory: str) -> str:
        from headrace.engine.snapshots import create_snapshot

        return create_snapshot(self.artifacts, source_directory).id

    def read_run_file(
        self, run_id: str, name: str, offset: int = 0, limit: int | None = None
    ) -> bytes:
        return self.artifacts.read_bytes(run_id, name, offset, limit)

    def ensure_agent(self) -> bool:
        """Start an agent unless one serves this workspace; True when one was started."""
        return ensure_agent(self.root)

    def close(self) -> None:
        """Close the connection to the agent and the store's (both reopen on next use)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        local, self._local = self._local, None
        if local is not None:
            local.store.close()
