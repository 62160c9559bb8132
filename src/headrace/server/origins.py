"""Which web sites may talk to the server: the ASGI middleware that refuses requests a browser
sends on behalf of another site.

A server without tokens (`headrace ui`, `headrace server --no-auth`) trusts whoever can reach
its loopback port, so it must not be reachable through a browser visiting another site:

- DNS rebinding: a page of `evil.example` whose name is made to resolve to 127.0.0.1 can read
  the server's answers (the browser thinks it talks to evil.example). Its requests carry
  `Host: evil.example:PORT`, so a token-free server answers only requests addressed to a
  loopback name (`127.0.0.1` or any 127.x, `localhost`, `[::1]`, with any port).
- Cross-site requests: a page can POST to http://127.0.0.1:PORT without reading the answer.
  Every state-changing request (not GET, HEAD or OPTIONS) that a browser marks as coming from
  elsewhere is refused: `Sec-Fetch-Site: cross-site` or `same-site`, or an `Origin` other than
  the server's own. Requests without those headers (curl, the SDK, scripts) pass: only
  browsers send them, and browsers always do on such requests.

With tokens, API routes need an `Authorization` header no other site can make a browser send,
and the portal's forms need a CSRF field only its own pages hold (the session cookie is also
SameSite=Lax). The portal's POSTs still refuse `Sec-Fetch-Site: cross-site`/`same-site`, which
closes what the CSRF field does not cover: another site signing a browser in with a token of
its choosing (the sign-in form has no session yet). `Origin` is not compared there: a reverse
proxy in front of a shared server may rewrite `Host`.

A refusal is one line: a 403 in the one error shape, or a short page for the portal.
"""

from __future__ import annotations

import html
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from headrace.server.errors import error_body
from headrace.server.portal.base import wants_json
from headrace.server.run import is_loopback

__all__ = ["OriginGuard"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FOREIGN_FETCH_SITES = frozenset({"cross-site", "same-site"})
DEFAULT_PORTS = {"http": 80, "https": 443}


def _split_host(value: str) -> tuple[str, int | None] | None:
    """`host[:port]` or `[v6][:port]` as (host, port); None if it cannot be read."""
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:]
    else:
        host, _colon, port_text = value.partition(":")
    if port_text and not port_text.isdigit():
        return None
    return host.lower(), int(port_text) if port_text else None


def _refusal(request: Request, message: str) -> Response:
    if request.scope["path"].startswith("/ui") and not wants_json(request):
        page = (
            '<!doctype html><html lang="en"><meta charset="utf-8"><title>Refused</title>'
            f"<h1>Request refused</h1><p>{html.escape(message)}</p></html>"
        )
        return HTMLResponse(page, status_code=403)
    return JSONResponse(error_body("Forbidden", message), status_code=403)


class OriginGuard:
    """Refuse requests made by a browser for another site (see the module docstring).

    `token_free`: the server answers without a token, so the Host and Origin checks apply to
    every request; otherwise only the portal's POSTs are checked, by `Sec-Fetch-Site`."""

    def __init__(self, app: ASGIApp, *, token_free: bool) -> None:
        self.app = app
        self.token_free = token_free

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            problem = self._problem(request)
            if problem is not None:
                await _refusal(request, problem)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _problem(self, request: Request) -> str | None:
        host_header = request.headers.get("host", "")
        if self.token_free:
            where = _split_host(host_header)
            if where is None or not is_loopback(where[0]):
                _address, port = request.scope.get("server") or ("", "<port>")
                return (
                    f"This server needs no token, so it answers only requests addressed to "
                    f"127.0.0.1, localhost or [::1], not to {host_header or 'no host'!r}; "
                    f"open it at http://127.0.0.1:{port}/ (pages of other sites cannot use it)."
                )
        if request.method in SAFE_METHODS:
            return None
        if not self.token_free and not request.scope["path"].startswith("/ui"):
            return None  # API routes need a token that no other site can make a browser send
        fetch_site = request.headers.get("sec-fetch-site", "").lower()
        if fetch_site in FOREIGN_FETCH_SITES:
            return (
                f"This request came from a page of another site (Sec-Fetch-Site: {fetch_site}); "
                "the server accepts changes only from its own pages and from clients that are "
                "not browsers."
            )
        origin = request.headers.get("origin")
        if self.token_free and origin is not None and not _same_origin(request, origin):
            return (
                f"This request came from a page of another site (Origin: {origin}); the server "
                "accepts changes only from its own pages and from clients that are not browsers."
            )
        return None


def _same_origin(request: Request, origin: str) -> bool:
    """Whether `Origin` names the scheme, host and port the request was sent to."""
    parts = urlsplit(origin)
    own = _split_host(request.headers.get("host", ""))
    if own is None or parts.scheme not in DEFAULT_PORTS:
        return False  # "null" (a sandboxed frame, a file:// page) or an odd scheme
    scheme = request.scope["scheme"]
    default = DEFAULT_PORTS.get(scheme)
    try:
        origin_port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        return False
    return (
        parts.scheme == scheme
        and (parts.hostname or "") == own[0]
        and origin_port == (own[1] or default)
    )
