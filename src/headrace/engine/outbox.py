"""The outbox sender: a background thread of every agent that delivers notifications and
fires run triggers for runs that ended.

The promise to act is an `outbox` row written with the run's final status
(store/notifications.py), so nothing is lost when a process dies. A sender leases due rows
(`claim_outbox`: one sender per row, also across agents and servers on one PostgreSQL
workspace), acts outside any transaction, and records the outcome under the lease it took.
A failure is tried again after a doubling wait (`HEADRACE_OUTBOX_BACKOFF_SECONDS`, at most 5
minutes) until the notification's `max_attempts`, then recorded as failed with its last
error; the run is never affected. A sender that dies mid-send leaves its lease to run out
(`HEADRACE_OUTBOX_LEASE_SECONDS`) and another sender sends again: a notification is sent at
least once, and a repeat carries the same delivery id (email Message-ID,
`X-Headrace-Delivery`) so a receiver can drop it; a trigger starts its run exactly once
(engine/run_triggers.py).

The agent's loop only wakes the thread (`wake`) and asks whether work is pending before it
exits idle (`busy`); sending never blocks it.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from headrace.config import outbox_backoff_seconds, outbox_lease_seconds
from headrace.engine.launcher import wake_agent
from headrace.engine.notifications import deliver, message_for
from headrace.engine.run_triggers import fire
from headrace.errors import (
    ConfigError,
    ConflictError,
    HeadraceError,
    NotFoundError,
    NotificationError,
    StoreError,
    UserError,
)
from headrace.store.notifications import DONE, FAILED, PENDING, OutboxRecord
from headrace.store.orm import utcnow
from headrace.store.workspace_store import WorkspaceStore

__all__ = ["OutboxSender", "send_due"]

log = logging.getLogger("headrace.outbox")

MAX_BACKOFF = 300.0
IDLE_POLL = 1.0  # how often an idle sender looks for rows another process added
TRIGGER_ATTEMPTS = 5


def _backoff(attempts: int) -> float:
    return float(min(MAX_BACKOFF, outbox_backoff_seconds() * 2 ** max(0, attempts - 1)))


def _handle(ws: WorkspaceStore, row: OutboxRecord) -> None:
    """Act on one leased row and record the outcome."""
    max_attempts = TRIGGER_ATTEMPTS
    permanent = False
    try:
        if row.kind == "notification":
            notification = ws.meta.find_notification(row.target)
            if notification is None:
                raise NotFoundError(f"notification {row.target!r} was removed")
            max_attempts = int(notification.config.get("max_attempts", 5))
            run = ws.meta.get_pipeline_run(row.run_id)
            message = message_for(ws, run, row.run_status)
            result = deliver(ws, notification, message, f"headrace-{row.id}-{row.run_id}")
        else:
            result = fire(ws, row.target, row.run_id)
            if result.get("started"):
                wake_agent(ws.root)  # claim the new run now, not at the next poll
    except (NotificationError, ConfigError, StoreError) as exc:
        error = str(exc)
    except (UserError, NotFoundError, ConflictError) as exc:
        error, permanent = str(exc), True  # retrying changes nothing (a missing pipeline...)
    except HeadraceError as exc:
        error = str(exc)
    except Exception as exc:  # a bug must not stop the sender; it is recorded, not raised
        log.exception("outbox row %d (%s %s): unexpected error", row.id, row.kind, row.target)
        error = f"unexpected error: {type(exc).__name__}"
    else:
        ws.meta.outbox_finished(row.id, row.attempts, state=DONE, result=result)
        log.info("outbox: %s %r done for run %s", row.kind, row.target, row.run_id)
        return
    if permanent or row.attempts >= max_attempts:
        ws.meta.outbox_finished(row.id, row.attempts, state=FAILED, error=error)
        log.warning(
            "outbox: %s %r for run %s failed after %d attempt(s): %s",
            row.kind,
            row.target,
            row.run_id,
            row.attempts,
            error,
        )
        return
    retry_at = utcnow() + timedelta(seconds=_backoff(row.attempts))
    ws.meta.outbox_finished(row.id, row.attempts, state=PENDING, error=error, retry_at=retry_at)
    log.info(
        "outbox: %s %r for run %s: attempt %d failed (%s); next at %s",
        row.kind,
        row.target,
        row.run_id,
        row.attempts,
        error,
        retry_at.isoformat(timespec="seconds"),
    )


def send_due(ws: WorkspaceStore, working: threading.Event | None = None) -> int:
    """Lease and act on every row due now; returns how many were handled. `working` is set
    while leased rows are being handled."""
    handled = 0
    while True:
        rows = ws.meta.claim_outbox(lease_seconds=outbox_lease_seconds())
        if not rows:
            return handled
        if working is not None:
            working.set()
        for row in rows:
            _handle(ws, row)
            handled += 1


class OutboxSender:
    """The thread: waits for a wake-up or the next due row, then `send_due`."""

    def __init__(self, ws: WorkspaceStore) -> None:
        self.ws = ws
        self._event = threading.Event()
        self._stop = False
        self._next_due: float | None = None  # seconds from the last look; None: nothing
        self._working = threading.Event()  # set while sending
        self._thread = threading.Thread(target=self._loop, name="headrace-outbox", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._event.set()

    def busy(self, within: float) -> bool:
        """Whether it is sending, or a row is due within `within` seconds (the agent stays
        up for it)."""
        due = self._next_due
        return self._working.is_set() or (due is not None and due <= within)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop = True
        self._event.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop:
            self._event.clear()
            try:
                send_due(self.ws, self._working)
                due = self.ws.meta.outbox_due(utcnow())
            except HeadraceError as exc:
                log.warning("outbox: %s", exc)
                due = None
            except Exception:
                log.exception("outbox: unexpected error")
                due = None
            finally:
                self._working.clear()
            wait = IDLE_POLL
            if due is not None:
                seconds = max(0.0, (due - utcnow()).total_seconds())
                self._next_due = seconds
                wait = min(wait, max(0.05, seconds))
            else:
                self._next_due = None
            self._event.wait(wait)
