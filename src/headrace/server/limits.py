"""`RequestLimits`: the ASGI middleware that refuses requests the server could not answer well,
before any route sees them, in the one error shape of `server.errors`.

- A request target (path and query) over `limits.URL_MAX_BYTES` is 414 `URITooLong`.
- A JSON body nested deeper than `limits.JSON_MAX_DEPTH` is 400 `BadRequest` saying so
  (Python's parser gives up near 1,000 levels with a RecursionError, and what is stored
  deeper than a few hundred levels could not be sent back: every later read would fail).

JSON bodies (Content-Type application/json or */*+json, the ones FastAPI parses) are
read whole to be measured; the body-size limit (`app.BodyLimit`, outside this) has counted
them already. Other bodies (file chunks) stream through untouched.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from headrace.limits import JSON_MAX_DEPTH, URL_MAX_BYTES
from headrace.server.errors import ApiError, error_body

__all__ = ["RequestLimits", "json_nesting_over"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_EMPTY_PAIR = re.compile(rb"\[\]|\{\}")
_RUN = re.compile(rb"[\[{]+|[\]}]+")
_OPENERS = b"[{"
_PAIR_PASSES = 8
_THREAD_BYTES = 64 * 1024  # a body this big is measured off the event loop


def json_nesting_over(body: bytes, limit: int = JSON_MAX_DEPTH) -> bool:
    """Whether the JSON text `body` nests lists and objects more than `limit` deep.

    Strings are dropped, then all but brackets. A few regex passes remove the innermost
    empty pairs (each pass is one level, and leaves few alternations for the next step);
    then the depth is followed run by run (a run of openers or closers at a time), so no
    Python loop goes byte by byte. Brackets that do not pair are measured as they open:
    text that is not JSON is left for the parser to report unless it opens too deep.
    """
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", body))
    removed_levels = 0
    for _ in range(min(limit, _PAIR_PASSES)):
        if not brackets:
            return False
        brackets, removed = _EMPTY_PAIR.subn(b"", brackets)
        if not removed:
            break
        removed_levels += 1
    depth = deepest = 0
    for run in _RUN.finditer(brackets):
        size = run.end() - run.start()
        if brackets[run.start()] in _OPENERS:
            depth += size
            deepest = max(deepest, depth)
        else:
            depth -= size
    return deepest + removed_levels > limit


def _is_json(scope: Scope) -> bool:
    headers: list[tuple[bytes, bytes]] = scope.get("headers") or []
    for key, value in headers:
        if key == b"content-type":
            kind = value.split(b";")[0].strip().lower()
            major, _, minor = kind.partition(b"/")
            return major == b"application" and (minor == b"json" or minor.endswith(b"+json"))
    return False


async def _send_error(send: Send, error: ApiError) -> None:
    response = JSONResponse(
        error_body(error.code, error.message, target=error.target), status_code=error.status
    )
    await send(
        {"type": "http.response.start", "status": error.status, "headers": response.raw_headers}
    )
    await send({"type": "http.response.body", "body": response.body})


class RequestLimits:
    """Refuse over-long request targets (414) and too deeply nested JSON bodies (400)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or scope.get("path", "").encode("utf-8")
        target = len(raw_path) + len(scope.get("query_string") or b"")
        if target > URL_MAX_BYTES:
            await _send_error(
                send,
                ApiError(
                    414,
                    "URITooLong",
                    f"The request's URL (path and query) is {target:,} bytes; this server "
                    f"accepts at most {URL_MAX_BYTES:,}. Send long values in a JSON body, or "
                    "shorten the names in the path.",
                ),
            )
            return
        if not _is_json(scope):
            await self.app(scope, receive, send)
            return
        try:
            body = await _read_body(receive)
        except ApiError as error:  # the body-size limit, counted while reading
            await _send_error(send, error)
            return
        if body is None:
            return  # the client went away before sending its body
        deep = (
            await run_in_threadpool(json_nesting_over, body)
            if len(body) > _THREAD_BYTES
            else json_nesting_over(body)
        )
        if deep:
            await _send_error(
                send,
                ApiError(
                    400,
                    "BadRequest",
                    f"The request body's JSON is nested more than {JSON_MAX_DEPTH} levels "
                    "deep (lists and objects inside each other); this server accepts at most "
                    f"{JSON_MAX_DEPTH}. Flatten the data.",
                ),
            )
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: only a disconnect can come
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body, or None when the client disconnects first."""
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)
