"""A request refused before routing still leaves a trace: a log row and a line on the screen."""

from __future__ import annotations

from aiohttp import web

from ..domain.errors import ErrorKind
from ..domain.records import RequestRecord
from ..domain.text import clean_text
from .errors import APIError
from .keys import CLIENT, REQUEST_LOG, STATE

REQUEST_ID = web.RequestKey("request_id", str)
"""Set once a request has its own record (the door began it): its row is written there, and
an error it ends in carries this id, as its answer would have."""

_KINDS = {401: "unauthorized", 404: "not_found", 405: "not_found"}


def record_rejected(request: web.Request, error: APIError, dialect: str) -> str:
    """The id of the request's log row: the one it has if it was routed, else a new row with
    one counted cause for a request that never reached routing."""
    if REQUEST_ID in request:
        return request[REQUEST_ID]
    state = request.app[STATE]
    path = clean_text(request.path)
    now = state.clock()
    request_id = state.new_id(now)
    request.app[REQUEST_LOG].append(
        RequestRecord(
            id=request_id,
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
    return request_id
