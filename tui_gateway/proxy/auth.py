"""Bearer-key auth: one key for every client, compared in constant time."""

from __future__ import annotations

import hmac

from aiohttp import web
from aiohttp.typedefs import Handler

from .errors import APIError
from .headers import header_bytes
from .keys import API_KEY


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    expected = request.app[API_KEY].encode()
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    # Compared as the bytes sent: a key with a byte that is not UTF-8 is simply wrong.
    given = header_bytes(token.strip())
    if scheme.lower() != "bearer" or not hmac.compare_digest(given, expected):
        message = (
            "missing Authorization header: send 'Authorization: Bearer <key>'"
            if not header
            else "incorrect API key; use the key tui-gateway printed at start"
        )
        raise APIError(401, message, code="invalid_api_key")
    return await handler(request)
