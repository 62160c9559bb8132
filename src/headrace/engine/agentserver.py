"""The agent's end of its request socket (`engine/agentsocket.py`): submits and run state
for processes of the same user, answered from the store the agent already has open.

Requests, each answered with `{"ok": true, ...}` or a refusal (`code`: "refused" for
another user, "version" for another headrace, "bad_request", "error" with the headrace
error to raise, "internal" when the agent failed: the client then does the work itself):

- `compute_targets`, `datastores`: the workspace's records.
- `submit`: `engine.submission.submit_graph` with the submitter's interpreter; the agent
  then claims the run in its next pass, with no poll in between.
- `run`: a pipeline run's record, its step runs (unless `steps` is false) and a `token`
  naming their state.
- `wait`: answered as `run` as soon as the state differs from the client's `token`, or
  when its `timeout` passes. The agent looks again whenever a pass of its loop wrote step
  records or ended a run (so a run it drives wakes its waiters the moment a step ends),
  and every `OTHER_AGENT_SECONDS` for runs another agent drives.

Everything here runs on the agent's one thread, from its selector: reading a request has
a short timeout (a client of the same user sends it whole at once), and a connection stays
open for the next request.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import selectors
import socket
import struct
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headrace.engine.agentsocket import (
    error_to_wire,
    identity,
    peer_uid,
    receive,
    request_address,
    send,
)
from headrace.engine.graphs import remember_graph
from headrace.engine.interpreters import Interpreter
from headrace.engine.submission import submit_graph
from headrace.errors import HeadraceError, UserError
from headrace.graph.model import Graph
from headrace.store.records import to_wire
from headrace.store.workspace_store import WorkspaceStore

__all__ = ["RequestServer", "listen_for_requests"]

log = logging.getLogger("headrace.agent")

READ_SECONDS = 2.0  # the longest a request may take to arrive once its first byte has
OTHER_AGENT_SECONDS = 0.1  # how often a wait on a run another agent drives looks again
MAX_WAIT_SECONDS = 60.0


@dataclass(eq=False)
class _Listener:
    sock: socket.socket


@dataclass(eq=False)
class _Client:
    sock: socket.socket
    waiting_for: str | None = None  # the run id of a parked `wait`
    steps: bool = True  # whether that wait is about the steps too, or the run alone
    token: str = ""
    deadline: float = 0.0
    next_look: float = 0.0
    state: dict[str, Any] = field(default_factory=dict)


def listen_for_requests(workspace: Path) -> socket.socket | None:
    """The request socket, listening (non-blocking); None when another agent of the
    workspace has it. `agent.main` takes it right after the agent's lock, before opening
    the store, so a client that sees the lock held finds it listening; requests wait in
    its backlog until the agent's loop runs."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(request_address(workspace))
        sock.listen(64)
    except OSError:
        sock.close()
        return None
    sock.setblocking(False)
    return sock


class RequestServer:
    """Serves the request socket of `ws` through the agent's `selector` (`listener`: one
    `listen_for_requests` made; default: made here)."""

    def __init__(
        self,
        ws: WorkspaceStore,
        selector: selectors.BaseSelector,
        *,
        on_work: Callable[[], None],
        driven: Callable[[], Collection[str]],
        listener: socket.socket | None = None,
    ) -> None:
        self.ws = ws
        self.selector = selector
        self.on_work = on_work  # a run was queued: claim it now
        self.driven = driven  # the ids of the runs this agent drives
        self.identity = identity()
        self.uid = os.geteuid()
        self.clients: list[_Client] = []
        self.listener: _Listener | None = None
        sock = listener if listener is not None else listen_for_requests(ws.root)
        if sock is not None:
            self.listener = _Listener(sock)
            selector.register(sock, selectors.EVENT_READ, self.listener)

    def owns(self, key: selectors.SelectorKey) -> bool:
        return isinstance(key.data, (_Listener, _Client))

    def ready(self, key: selectors.SelectorKey) -> None:
        """The selector says `key` (the listener or a client) can be read."""
        if isinstance(key.data, _Listener):
            self._accept(key.data.sock)
        else:
            self._read(key.data)

    # -- connections -----------------------------------------------------------------------
    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                log.exception("request socket: accept failed")
                return
            if peer_uid(sock) != self.uid:
                # An abstract socket has no file mode: this is its permission check.
                self._refuse(sock, "refused", "this agent answers only its own user's processes")
                continue
            client = _Client(sock)
            self.clients.append(client)
            self.selector.register(sock, selectors.EVENT_READ, client)

    def _refuse(self, sock: socket.socket, code: str, message: str) -> None:
        with contextlib.suppress(OSError):
            sock.settimeout(READ_SECONDS)
            send(sock, {"ok": False, "code": code, "message": message})
        with contextlib.suppress(OSError):
            sock.close()

    def _drop(self, client: _Client) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(client.sock)
        with contextlib.suppress(ValueError):
            self.clients.remove(client)
        with contextlib.suppress(OSError):
            client.sock.close()

    def _read(self, client: _Client) -> None:
        try:
            client.sock.settimeout(READ_SECONDS)
            request = receive(client.sock)
        except OSError:  # the client went away (or sent half a request and stopped)
            self._drop(client)
            return
        except (ValueError, struct.error) as exc:  # not our protocol
            self._drop_with(client, "bad_request", f"not a headrace agent request: {exc}")
            return
        if client.waiting_for is not None:
            self._drop_with(client, "bad_request", "a request arrived while a wait was open")
            return
        if request.get("identity") != self.identity:
            said = request.get("identity")
            self._drop_with(
                client,
                "version",
                f"this agent runs {self.identity}, the request came from {said}",
            )
            return
        try:
            answer = self._answer(client, request)
        except HeadraceError as exc:
            answer = {"ok": False, "code": "error", "error": error_to_wire(exc)}
        except Exception as exc:
            log.exception("request %r failed", request.get("op"))
            answer = {"ok": False, "code": "internal", "message": str(exc)}
        if answer is not None:
            self._reply(client, answer)

    def _drop_with(self, client: _Client, code: str, message: str) -> None:
        with contextlib.suppress(OSError):
            send(client.sock, {"ok": False, "code": code, "message": message})
        self._drop(client)

    def _reply(self, client: _Client, answer: dict[str, Any]) -> None:
        try:
            client.sock.settimeout(READ_SECONDS)
            send(client.sock, answer)
        except OSError:
            self._drop(client)

    # -- requests --------------------------------------------------------------------------
    def _answer(self, client: _Client, request: dict[str, Any]) -> dict[str, Any] | None:
        op = request.get("op")
        meta = self.ws.meta
        if op == "compute_targets":
            return {"ok": True, "items": [to_wire(r) for r in meta.list_compute_targets()]}
        if op == "datastores":
            return {"ok": True, "items": [to_wire(r) for r in meta.list_datastores()]}
        if op == "submit":
            return self._submit(request)
        steps = request.get("steps", True) is not False
        if op == "run":
            return {"ok": True, **self._state(str(request.get("run_id")), steps)}
        if op == "wait":
            state = self._state(str(request.get("run_id")), steps)
            if state["token"] != request.get("token"):
                return {"ok": True, **state}
            timeout = float(request.get("timeout_seconds") or 0.0)
            client.steps = steps
            client.waiting_for = str(request["run_id"])
            client.token = state["token"]
            client.state = state
            client.deadline = time.monotonic() + max(0.0, min(timeout, MAX_WAIT_SECONDS))
            return None  # answered by `service`
        return {"ok": False, "code": "bad_request", "message": f"unknown request {op!r}"}

    def _submit(self, request: dict[str, Any]) -> dict[str, Any]:
        interpreter = Interpreter.from_record(request.get("interpreter"))
        run_id = str(request.get("run_id") or "")
        try:
            run_id = str(uuid.UUID(run_id))  # the client's, so it can look after a lost answer
        except ValueError:
            raise UserError(f"A submitted run's id must be a UUID, not {run_id[:64]!r}.") from None
        graph = Graph.from_dict(request["graph"])
        submission = submit_graph(
            self.ws,
            graph,
            experiment_name=str(request["experiment_name"]),
            parameters=request.get("parameters"),
            tags=request.get("tags"),
            description=request.get("description"),
            run_source=str(request.get("run_source") or "SDK"),
            continue_on_step_failure=bool(request.get("continue_on_step_failure")),
            regenerate_outputs=bool(request.get("regenerate_outputs")),
            properties=request.get("properties"),
            interpreter=interpreter.record() if interpreter is not None else None,
            run_id=run_id,
        )
        remember_graph(submission.run.graph_id, graph)  # the claim then reads no graph back
        self.on_work()
        return {
            "ok": True,
            "run": to_wire(submission.run),
            "previews": [to_wire(p) for p in submission.previews],
        }

    def _state(self, run_id: str, with_steps: bool = True) -> dict[str, Any]:
        """The run (and its steps, `with_steps`) and a token naming their state."""
        run = self.ws.meta.get_pipeline_run(run_id)  # RunNotFoundError for an unknown id
        steps = self.ws.meta.list_step_runs(run_id) if with_steps else []
        seen = [run.status, run.cancel_requested, [(s.id, s.status, s.attempt) for s in steps]]
        token = hashlib.sha256(json.dumps(seen).encode()).hexdigest()[:32]
        return {"run": to_wire(run), "steps": [to_wire(s) for s in steps], "token": token}

    # -- waits -----------------------------------------------------------------------------
    def service(self, steps_changed: bool, runs_changed: bool) -> None:
        """Answer the waits whose run changed or whose time is up. A wait is looked at
        when this agent wrote step records (`steps_changed`; a wait on the run alone: when
        it claimed or ended a run, `runs_changed`), and now and then for runs other agents
        drive."""
        waiting = [c for c in self.clients if c.waiting_for is not None]
        if not waiting:
            return
        now = time.monotonic()
        driven = set(self.driven())
        states: dict[tuple[str, bool], dict[str, Any]] = {}
        for client in waiting:
            run_id = str(client.waiting_for)
            changed = steps_changed if client.steps else runs_changed
            look = changed or (run_id not in driven and now >= client.next_look)
            state = client.state
            if look:
                key = (run_id, client.steps)
                if key not in states:
                    try:
                        states[key] = self._state(run_id, client.steps)
                    except Exception:
                        log.exception("request socket: cannot read run %s", run_id)
                        states[key] = client.state
                state = states[key]
                client.next_look = now + OTHER_AGENT_SECONDS
            if state["token"] != client.token or now >= client.deadline:
                client.waiting_for = None
                client.state = {}
                self._reply(client, {"ok": True, **state})

    def close(self) -> None:
        for client in list(self.clients):
            self._drop(client)
        listener, self.listener = self.listener, None
        if listener is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(listener.sock)
            listener.sock.close()
