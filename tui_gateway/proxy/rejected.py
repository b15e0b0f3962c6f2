"""A request refused before routing still leaves a trace: a log row and a line on the screen."""

from __future__ import annotations

from aiohttp import web

from ..domain.errors import ErrorKind
from ..domain.records import RequestRecord
from ..domain.text import clean_text
from .errors import APIError
from .keys import CLIENT, REQUEST_LOG, STATE

ROUTED = web.RequestKey("routed", bool)
"""Set once a request has its own record (the door began it): its row is written there."""

_KINDS = {401: "unauthorized", 404: "not_found", 405: "not_found"}


def record_rejected(request: web.Request, error: APIError, dialect: str) -> None:
    """One log row and one counted cause for a request that never reached routing."""
    if request.get(ROUTED):
        return
    state = request.app[STATE]
    path = clean_text(request.path)
    now = state.clock()
    request.app[REQUEST_LOG].append(
        RequestRecord(
            id=state.new_id(now),
            started=now,
            session="",
            requested_model="",
            streamed=False,
            status=error.status,
            latency_ms=0.0,
            error_kind=_KINDS.get(error.status, str(ErrorKind.INVALID_REQUEST)),
            error=f"{request.method} {path}: {error.message}"[:1000],
            dialect=dialect,
            client=request.get(CLIENT),
        )
    )
    state.client_rejected(
        f"client got {error.status} on {request.method} {path}: {error.message}"[:200]
    )
