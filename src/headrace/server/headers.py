"""Headers every answer of the server carries: ASGI middleware over the whole app.

- `X-Content-Type-Options: nosniff`: a browser never runs a served file (a run's log, a
  datastore file) as a script or a page because its bytes look like one.
- `X-Frame-Options: DENY` and CSP `frame-ancestors 'none'`: no other site can frame the
  portal to trick a click on its buttons.
- On the portal (`/ui`), a Content-Security-Policy that allows only the portal's own scripts,
  styles, images and requests (no inline script or style; its templates and static files
  keep to that), forms posting to itself, and no plugins: an injected tag can do little.
  Other routes (the JSON API, `/docs`, which loads Swagger UI from a CDN) only refuse framing.
- `Allow` on every 405, listing the methods the route does accept (RFC 9110 requires it;
  Starlette's own 405s and the error handler's lose it).
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["PORTAL_CSP", "SecurityHeaders", "allowed_methods"]

PORTAL_CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
FRAMES_ONLY_CSP = "frame-ancestors 'none'"


def allowed_methods(app: Any, scope: Scope) -> list[str]:
    """The methods some route of `app` accepts at the request's path, sorted."""
    methods: set[str] = set()
    for route in app.router.routes:
        match, _child = route.matches(scope)
        if match == Match.NONE:
            continue
        if isinstance(route, Mount):
            methods |= {"GET", "HEAD"}  # the portal's static files
        else:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


class SecurityHeaders:
    """Add the headers of the module docstring to every HTTP answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        portal = scope["path"].startswith("/ui")
        asked = dict(scope)  # routing rewrites the scope (a mount's root_path): match this

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                headers["X-Frame-Options"] = "DENY"
                headers["Content-Security-Policy"] = PORTAL_CSP if portal else FRAMES_ONLY_CSP
                if message["status"] == 405 and "allow" not in headers:
                    headers["Allow"] = ", ".join(allowed_methods(asked["app"], asked))
            await send(message)

        await self.app(scope, receive, with_headers)
