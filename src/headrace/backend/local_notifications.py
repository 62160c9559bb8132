"""Notifications and run triggers of a workspace folder: the `Backend` methods of
`LocalBackend` for them (engine/notifications.py, engine/run_triggers.py do the work).

Records cross as plain documents (no secret is in one), so the remote backend and the
server's routes pass them on unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headrace.engine import notifications, run_triggers
from headrace.store.records import PipelineRunRecord, Status
from headrace.store.run_triggers import triggered_run_id

if TYPE_CHECKING:
    from headrace.store.workspace_store import WorkspaceStore

__all__ = ["LocalNotificationMethods"]


class LocalNotificationMethods:
    store: WorkspaceStore

    def add_notification(self, spec: dict[str, Any], *, overwrite: bool) -> dict[str, Any]:
        return notifications.add_notification(self.store, spec, overwrite=overwrite).document()

    def list_notifications(self) -> list[dict[str, Any]]:
        return [n.document() for n in self.store.meta.list_notifications()]

    def get_notification(self, name: str) -> dict[str, Any]:
        return self.store.meta.get_notification(name).document()

    def remove_notification(self, name: str) -> None:
        notifications.remove_notification(self.store, name)

    def test_notification(self, name: str) -> dict[str, Any]:
        """Send one message now (not through the outbox) about a made-up run, so a wrong
        address, password or URL shows at once; raises NotificationError or ConfigError."""
        record = self.store.meta.get_notification(name)
        now = record.created_at
        run = PipelineRunRecord(
            id="00000000-0000-0000-0000-000000000000",
            experiment_id="",
            experiment_name="notification-test",
            graph_id="",
            status=Status.FINISHED,
            parameters={},
            tags={},
            properties={},
            description="a test of the notification",
            run_source="test",
            continue_on_step_failure=False,
            regenerate_outputs=False,
            cancel_requested=False,
            agent_id=None,
            heartbeat_at=None,
            error=None,
            created_at=now,
            started_at=None,
            ended_at=None,
        )
        message = notifications.message_for(self.store, run, Status.FINISHED)
        message["text"] = f"Test of headrace notification {name!r}: {message['text']}"
        return notifications.deliver(self.store, record, message, f"headrace-test-{name}")

    def list_notification_deliveries(
        self, *, name: str | None = None, run_id: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        rows = self.store.meta.list_outbox(
            kind="notification", target=name, run_id=run_id, limit=limit
        )
        return [r.document() for r in rows]

    def add_run_trigger(self, spec: dict[str, Any]) -> dict[str, Any]:
        return run_triggers.add_run_trigger(self.store, spec).document()

    def list_run_triggers(self) -> list[dict[str, Any]]:
        return [t.document() for t in self.store.meta.list_run_triggers()]

    def get_run_trigger(self, name: str) -> dict[str, Any]:
        return self.store.meta.get_run_trigger(name).document()

    def remove_run_trigger(self, name: str) -> None:
        self.store.meta.remove_run_trigger(name)

    def set_run_trigger_enabled(self, name: str, enabled: bool) -> dict[str, Any]:
        return self.store.meta.set_run_trigger_enabled(name, enabled).document()

    def list_trigger_firings(
        self, *, name: str | None = None, run_id: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        rows = self.store.meta.list_outbox(kind="trigger", target=name, run_id=run_id, limit=limit)
        documents = []
        for row in rows:
            document = row.document()
            document["started_run_id"] = (
                triggered_run_id(row.target, row.run_id) if row.state == "done" else None
            )
            documents.append(document)
        return documents
