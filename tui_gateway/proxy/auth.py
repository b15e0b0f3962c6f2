"""API-key auth: `server.api_key` and the named `[[clients]]` keys, compared in constant time.

The key comes as `Authorization: Bearer KEY` (OpenAI clients, and Claude Code's auth token) or
as `x-api-key: KEY` (Anthropic's SDKs); either one that matches lets the request in. A named
key's name goes on the request (`CLIENT`), for the screen and the log.
"""

from __future__ import annotations

import hmac

from aiohttp import web
from aiohttp.typedefs import Handler

from .errors import APIError
from .headers import header_bytes
from .health import HEALTH_PATHS
from .keys import CLIENT, SETTINGS

OPEN_PATHS = frozenset({"/", *HEALTH_PATHS})
"""Answered without a key: `/` says the gateway is up (Claude Code probes it with HEAD);
`/livez` and `/readyz` say up and ready to supervisors, and nothing else (health.py)."""


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in OPEN_PATHS:
        return await handler(request)
    header = request.headers.get("Authorization")
    api_key = request.headers.get("x-api-key")
    scheme, _, token = (header or "").partition(" ")
    bearer_sent, key_sent = header is not None and scheme.lower() == "bearer", api_key is not None
    # Compared as the bytes sent: a key with a byte that is not UTF-8 is simply wrong. Both
    # headers are compared with every key, every time, with no early exit, so the time taken
    # says nothing about which key (or which header) matched.
    bearer, key = header_bytes(token.strip()), header_bytes((api_key or "").strip())
    allowed, client = False, None
    for name, expected in request.app[AUTH_KEYS]:
        bearer_ok = hmac.compare_digest(bearer, expected) and bearer_sent
        key_ok = hmac.compare_digest(key, expected) and key_sent
        if (bearer_ok or key_ok) and not allowed:
            allowed, client = True, name
    if not allowed:
        raise APIError(401, _refusal(header, scheme, api_key), code="invalid_api_key")
    if client is not None:
        request[CLIENT] = client
    return await handler(request)


AUTH_KEYS = web.AppKey("auth_keys", tuple[tuple[str | None, bytes], ...])
"""Every key a client may send, with its name, encoded once (not on every request)."""


def install_keys(app: web.Application, api_key: str) -> None:
    """`server.api_key` (or the generated key), nobody's, then each `[[clients]]` key by name."""
    named = [(c.name, c.key.encode()) for c in app[SETTINGS].clients]
    app[AUTH_KEYS] = ((None, api_key.encode()), *named)


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
