"""What the /api/v1 backend routes share: the route class that names an error's exception
class in its details (so `RemoteBackend` raises the class a local workspace would), and
reading a posted pipeline graph. Who may call which route is `server.access`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from headrace.backend.wire import CLASS_DETAIL
from headrace.errors import HeadraceError, PipelineValidationError, UserError
from headrace.graph.model import Graph
from headrace.server.errors import error_body, status_of

__all__ = ["ClassNamedErrors", "parse_graph", "state"]

log = logging.getLogger("headrace.server")


class ClassNamedErrors(APIRoute):
    """Errors of these routes name their exception class in a detail (see `backend.wire`)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except HeadraceError as exc:
                status, code = status_of(exc)
                if status >= 500:
                    log.error("request failed: %s", exc, exc_info=exc)
                details: list[dict[str, Any]] = [
                    {"Code": type(exc).__name__, "Message": str(exc), "Target": CLASS_DETAIL}
                ]
                if isinstance(exc, PipelineValidationError):
                    details += [
                        {"Code": "PipelineProblem", "Message": p, "Target": None}
                        for p in exc.problems
                    ]
                return JSONResponse(error_body(code, str(exc), details=details), status_code=status)

        return route


def state(request: Request) -> Any:
    return request.app.state.headrace


def parse_graph(raw: dict[str, Any]) -> Graph:
    try:
        return Graph.from_dict(raw)
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(
            f"The pipeline graph cannot be read ({exc}); submit it with the same headrace "
            "version as the server's."
        ) from exc
