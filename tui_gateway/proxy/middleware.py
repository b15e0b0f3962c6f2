"""The middleware that turns every failure into an error in the client's own dialect."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from .dialects import dialect_for_path
from .errors import APIError, http_exception_error
from .rejected import record_rejected

log = logging.getLogger("tui_gateway.proxy")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """No client ever gets an HTML error page or a bare 500 traceback."""
    try:
        return await handler(request)
    except APIError as exc:
        error = exc
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error = http_exception_error(exc, request)
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        error = APIError(500, "internal gateway error (see the gateway's log)", type="server_error")
    dialect = dialect_for_path(request.path)
    request_id = record_rejected(request, error, dialect.name)
    response = dialect.error_response(error)
    # The SDKs read it (`exc.request_id`) off errors too.
    response.headers.update(dict.fromkeys(dialect.id_headers, request_id))
    return response
