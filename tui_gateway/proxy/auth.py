"""API-key auth: one key for every client, compared in constant time.

The key comes as `Authorization: Bearer KEY` (OpenAI clients, and Claude Code's auth token) or
as `x-api-key: KEY` (Anthropic's SDKs); either one that matches lets the request in.
"""

from __future__ import annotations

import hmac

from aiohttp import web
from aiohttp.typedefs import Handler

from .errors import APIError
from .headers import header_bytes
from .keys import API_KEY

OPEN_PATHS = frozenset({"/"})
"""Answered without a key: `/` says the gateway is up (Claude Code probes it with HEAD)."""


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in OPEN_PATHS:
        return await handler(request)
    expected = request.app[API_KEY].encode()
    header = request.headers.get("Authorization")
    api_key = request.headers.get("x-api-key")
    scheme, _, token = (header or "").partition(" ")
    # Compared as the bytes sent: a key with a byte that is not UTF-8 is simply wrong. Both are
    # compared whenever both are sent, so the time taken says nothing about which one matched.
    bearer_ok = hmac.compare_digest(header_bytes(token.strip()), expected)
    bearer_ok = bearer_ok and header is not None and scheme.lower() == "bearer"
    key_ok = hmac.compare_digest(header_bytes((api_key or "").strip()), expected)
    key_ok = key_ok and api_key is not None
    if not (bearer_ok or key_ok):
        raise APIError(401, _refusal(header, scheme, api_key), code="invalid_api_key")
    return await handler(request)


def _refusal(header: str | None, scheme: str, api_key: str | None) -> str:
    """Which header was seen and what was wrong with it; never the key itself."""
    if header is None and api_key is None:
        return "missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"
    if header is not None and scheme.lower() != "bearer" and api_key is None:
        return "the Authorization header is not 'Bearer <key>'"
    seen = " and ".join(
        name for name, value in (("Authorization", header), ("x-api-key", api_key)) if value
    )
    return f"incorrect API key in the {seen} header; use the key tui-gateway printed at start"
