"""The notifications page: the workspace's notifications (where each goes, for which
statuses and runs; never a secret: a webhook shows as `https://host/…`), its run triggers,
and the latest deliveries and firings with their state and last error. Four statements.
"""

from __future__ import annotations

from fastapi import Request, Response

from headrace.sdk.notifications import destination_text, scope_texts
from headrace.server.portal.base import ViewerDep, page, render, state

__all__: list[str] = []

RECENT = 50


@page("/notifications")
def notifications(request: Request, _viewer: ViewerDep) -> Response:
    """Notifications, run triggers, and what they did lately."""
    backend = state(request).backend
    rows = [
        {**n, "where": destination_text(n), "scope": scope_texts(n)}
        for n in backend.list_notifications()
    ]
    triggers = backend.list_run_triggers()
    deliveries = backend.list_notification_deliveries(limit=RECENT)
    firings = backend.list_trigger_firings(limit=RECENT)
    data = {
        "notifications": rows,
        "triggers": triggers,
        "deliveries": deliveries,
        "firings": firings,
    }
    return render(request, "notifications.html", title="Notifications", data=data)
