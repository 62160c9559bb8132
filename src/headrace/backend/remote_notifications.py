"""Notifications and run triggers over HTTP: the `Backend` methods of `RemoteBackend` for
them (`/api/v1/notifications`, `/api/v1/run-triggers`, server/api_notifications.py).

Secrets go to the server once, in the request that adds a notification; no answer holds one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headrace.backend.wire import url_segment

__all__ = ["RemoteNotificationMethods"]


class RemoteNotificationMethods:
    if TYPE_CHECKING:  # provided by RemoteBackend

        def _json(self, method: str, path: str, **kwargs: Any) -> Any: ...

        def _send(self, method: str, path: str, *, body: Any = None, **kwargs: Any) -> Any: ...

    def add_notification(self, spec: dict[str, Any], *, overwrite: bool) -> dict[str, Any]:
        body = {"spec": spec, "overwrite": overwrite}
        document: dict[str, Any] = self._json("POST", "/notifications", body=body)
        return document

    def list_notifications(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._json("GET", "/notifications")
        return found

    def get_notification(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self._json("GET", f"/notifications/{url_segment(name)}")
        return found

    def remove_notification(self, name: str) -> None:
        self._send("DELETE", f"/notifications/{url_segment(name)}")

    def test_notification(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self._json("POST", f"/notifications/{url_segment(name)}/test")
        return found

    def _outbox(
        self, path: str, name: str | None, run_id: str | None, limit: int
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if name is not None:
            params["name"] = name
        if run_id is not None:
            params["run_id"] = run_id
        found: list[dict[str, Any]] = self._json("GET", path, params=params)
        return found

    def list_notification_deliveries(
        self, *, name: str | None = None, run_id: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        return self._outbox("/notification-deliveries", name, run_id, limit)

    def add_run_trigger(self, spec: dict[str, Any]) -> dict[str, Any]:
        document: dict[str, Any] = self._json("POST", "/run-triggers", body={"spec": spec})
        return document

    def list_run_triggers(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._json("GET", "/run-triggers")
        return found

    def get_run_trigger(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self._json("GET", f"/run-triggers/{url_segment(name)}")
        return found

    def remove_run_trigger(self, name: str) -> None:
        self._send("DELETE", f"/run-triggers/{url_segment(name)}")

    def set_run_trigger_enabled(self, name: str, enabled: bool) -> dict[str, Any]:
        body = {"enabled": enabled}
        found: dict[str, Any] = self._json("PATCH", f"/run-triggers/{url_segment(name)}", body=body)
        return found

    def list_trigger_firings(
        self, *, name: str | None = None, run_id: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        return self._outbox("/run-trigger-firings", name, run_id, limit)
