"""The scheduler: fires due schedules, exactly once, however many schedulers run.

One `Scheduler` runs inside `headrace server` (a thread beside its agents) and in
`headrace scheduler` (the laptop's foreground process). Each pass (`tick`) reads the Active
schedules whose `next_fire_at` has come:

- **Recurrences.** The slots due since `next_fire_at` are worked out from the recurrence;
  the catch-up policy says which of them run: `latest` (default: one run for all missed
  slots, never a storm), `all` (one run per missed slot, at most 100 per pass), `skip`
  (missed slots are dropped; a slot less than a minute late still runs).
- **Datastore triggers.** The scheduler that moves `next_fire_at` on by the polling
  interval owns the poll; it lists the watched path (engine/triggers.py) and fires files
  that changed and then stayed the same for one poll.

Exactly once: every fire inserts a row with a unique (schedule, fire key) — the slot's
time, or the file's path and signature — in the same transaction that queues its run
(`submit_published(..., in_transaction=...)`). A second scheduler's insert of the same key
fails and rolls its run back; a scheduler that crashes before the commit left nothing, and
the next pass fires the slot. A slot that cannot queue a run (the pipeline was disabled or
removed, a parameter no longer fits) is recorded as fired with its error, shown as the
schedule's last error, and the schedule goes on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from headrace.engine import recurrence as rec
from headrace.engine.publishing import submit_published
from headrace.engine.schedules import schedule_pipeline_id
from headrace.engine.triggers import list_signatures, listing_digest, plan_poll
from headrace.errors import HeadraceError, StoreError
from headrace.store.orm import utcnow
from headrace.store.records import ScheduleRecord
from headrace.store.schedules import AlreadyFired
from headrace.store.workspace_store import WorkspaceStore

__all__ = ["SCHEDULE_PROPERTY", "Scheduler", "SchedulerThread", "TickResult"]

log = logging.getLogger("headrace.scheduler")

# The run property that names the schedule that queued a run (SDK v1's ScheduleId).
SCHEDULE_PROPERTY = "azureml.scheduleId"
FIRE_PROPERTY = "headrace.scheduleFire"
_GRACE = timedelta(seconds=60)  # `skip`: a slot this late still runs
_MAX_CATCH_UP = 100
_CHANGED_LISTED = 100  # changed files named in a batch run's property


@dataclass
class TickResult:
    """What one pass did: the runs it queued, slots or files another scheduler had fired
    already, and fires that failed (recorded on their schedule)."""

    run_ids: list[str] = field(default_factory=list)
    taken: int = 0
    failed: int = 0
    polled: int = 0


class Scheduler:
    """Fires the due schedules of one workspace; `on_fired` is called after a pass queued
    runs (to wake or start an agent)."""

    def __init__(
        self,
        store: WorkspaceStore,
        *,
        on_fired: Callable[[], Any] | None = None,
        max_sleep: float = 1.0,
    ) -> None:
        self.store = store
        self.meta = store.meta
        self.on_fired = on_fired
        self.max_sleep = max_sleep

    # -- the loop --------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Pass after pass until `stop` is set; sleeps until the next slot (at most
        `max_sleep`, so new and changed schedules are seen within it)."""
        while not stop.is_set():
            try:
                self.tick()
                upcoming = self.meta.next_schedule_time()
            except Exception:  # the loop must outlive a database hiccup
                log.exception("scheduler pass failed; trying again")
                upcoming = None
            wait = self.max_sleep
            if upcoming is not None:
                wait = min(wait, max(0.0, (upcoming - utcnow()).total_seconds()))
            stop.wait(max(wait, 0.01))

    def tick(self, now: datetime | None = None) -> TickResult:
        """One pass: fire every schedule due at `now` (default: the current time)."""
        now = now or utcnow()
        result = TickResult()
        for schedule in self.meta.due_schedules(now):
            try:
                if schedule.recurrence is not None:
                    self._fire_recurrence(schedule, now, result)
                elif schedule.datastore_name is not None:
                    self._poll(schedule, now, result)
            except StoreError:
                raise
            except Exception:
                log.exception("schedule %s (%s) failed to fire", schedule.name, schedule.id)
                result.failed += 1
        if result.run_ids and self.on_fired is not None:
            self.on_fired()
        return result

    # -- firing ----------------------------------------------------------------------------
    def _submit(
        self,
        schedule: ScheduleRecord,
        fire_key: str,
        next_fire_at: datetime | None,
        result: TickResult,
        *,
        bind: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
    ) -> bool:
        """Queue one run for `fire_key`; False when it was fired before. A submission that
        fails is recorded as this key's fire, with its error."""

        def claim(conn: Any, run_id: str) -> None:
            self.meta.claim_fire(
                conn,
                schedule_id=schedule.id,
                fire_key=fire_key,
                run_id=run_id,
                next_fire_at=next_fire_at,
            )

        parameters = dict(schedule.pipeline_parameters)
        if bind is not None and schedule.data_path_parameter_name:
            parameters[schedule.data_path_parameter_name] = bind
        try:
            pipeline_id = schedule_pipeline_id(self.store, schedule)
            submission = submit_published(
                self.store,
                pipeline_id,
                experiment_name=schedule.experiment_name,
                parameters=parameters,
                run_source="Schedule",
                continue_on_step_failure=schedule.continue_on_step_failure,
                with_preview=False,
                properties={
                    **(properties or {}),
                    SCHEDULE_PROPERTY: schedule.id,
                    FIRE_PROPERTY: fire_key,
                },
                in_transaction=claim,
            )
        except AlreadyFired:
            result.taken += 1
            return False
        except StoreError:
            raise
        except HeadraceError as exc:
            if self.meta.record_failed_fire(schedule.id, fire_key, str(exc), next_fire_at):
                log.warning("schedule %s could not fire %s: %s", schedule.name, fire_key, exc)
                result.failed += 1
            else:
                result.taken += 1
            return False
        result.run_ids.append(submission.run.id)
        return True

    def _fire_recurrence(self, schedule: ScheduleRecord, now: datetime, result: TickResult) -> None:
        recurrence = schedule.recurrence
        assert recurrence is not None and schedule.next_fire_at is not None
        first = schedule.next_fire_at
        later = rec.slots_between(
            recurrence, first + timedelta(seconds=1), now, schedule.created_at, _MAX_CATCH_UP
        )
        due = [first, *later]
        upcoming = rec.next_slot(recurrence, now + timedelta(seconds=1), schedule.created_at)
        if len(due) > 1 and schedule.catch_up == "all":
            for slot, following in zip(due, [*due[1:], upcoming], strict=True):
                self._submit(schedule, _slot_key(slot), following, result)
            return
        latest = due[-1]
        if schedule.catch_up == "skip" and now - latest > _GRACE:
            self.meta.move_schedule(schedule.id, first, upcoming)
            return
        properties = {"headrace.missedSlots": len(due) - 1} if len(due) > 1 else None
        self._submit(schedule, _slot_key(latest), upcoming, result, properties=properties)

    # -- datastore triggers ----------------------------------------------------------------
    def _poll(self, schedule: ScheduleRecord, now: datetime, result: TickResult) -> None:
        interval = timedelta(minutes=schedule.polling_interval)
        if not self.meta.move_schedule(schedule.id, schedule.next_fire_at, now + interval):
            return  # another scheduler took this poll
        result.polled += 1
        assert schedule.datastore_name is not None
        recursive = bool(schedule.trigger.get("include_subfolders"))
        try:
            files = self.store.datastore_files(schedule.datastore_name)
            listing = list_signatures(files, schedule.path_on_datastore or "", recursive)
        except (HeadraceError, OSError) as exc:
            message = (
                f"Listing {schedule.path_on_datastore or '/'!r} on datastore "
                f"{schedule.datastore_name!r} failed: {exc}; the schedule keeps polling."
            )
            log.warning("schedule %s: %s", schedule.name, message)
            self.meta.set_schedule_error(schedule.id, message)
            return
        digest = listing_digest(listing)
        summary = self.meta.listing_summary(schedule.id)
        if summary is not None and summary == (digest, 0):
            plan = None  # nothing changed and nothing pending: no fire, nothing to record
        else:
            seen = None if summary is None else self.meta.load_listing(schedule.id)
            plan = plan_poll(listing, seen)
            del seen, listing
        if plan is not None and plan.fire:
            if schedule.trigger.get("run_per") == "batch":
                self._fire_batch(schedule, plan.fire, result)
            else:
                for path, sig in plan.fire.items():
                    bind = {"datastore": schedule.datastore_name, "path": path}
                    self._submit(schedule, f"file:{path}@{sig}", None, result, bind=bind)
        if plan is not None:
            # After the fires: a crash in between leaves the files pending, and the next
            # poll's fires find their keys taken (nothing runs twice).
            self.meta.save_listing(schedule.id, plan.remember, digest)
        if schedule.last_error and schedule.last_error.get("message", "").startswith("Listing"):
            self.meta.set_schedule_error(schedule.id, None)

    def _fire_batch(
        self, schedule: ScheduleRecord, stable: dict[str, str], result: TickResult
    ) -> None:
        entries = sorted(f"{p}@{s}" for p, s in stable.items())
        digest = hashlib.sha256("\n".join(entries).encode()).hexdigest()[:32]
        bind = {"datastore": schedule.datastore_name, "path": schedule.path_on_datastore or ""}
        listed = sorted(stable)[:_CHANGED_LISTED]
        properties = {
            "headrace.changedFiles": json.dumps(listed),
            "headrace.changedFileCount": len(stable),
        }
        self._submit(schedule, f"batch:{digest}", None, result, bind=bind, properties=properties)


class SchedulerThread:
    """A `Scheduler` on a daemon thread (the server's), stopped by `stop()`."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=scheduler.run, args=(self._stop,), name="headrace-scheduler", daemon=True
        )

    def start(self) -> SchedulerThread:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)


def _slot_key(slot: datetime) -> str:
    return "slot:" + slot.isoformat()
