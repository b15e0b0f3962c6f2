"""The aiohttp application factory: wires routes, middlewares and resources, starts nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from ..config import Settings
from ..domain.state import GatewayState
from ..providers import Upstream, make_upstream
from ..store import RequestLog
from .admin import get_state, set_demo
from .auth import auth_middleware
from .chat import chat_completions, list_models
from .errors import error_middleware
from .inflight import InFlight
from .keys import API_KEY, IN_FLIGHT, REQUEST_LOG, SETTINGS, STATE, UPSTREAMS

MAX_BODY_BYTES = 64 * 1024 * 1024  # long agent contexts run to megabytes; aiohttp's default is 1


def make_app(
    state: GatewayState,
    settings: Settings,
    request_log: RequestLog,
    *,
    api_key: str,
    upstreams: dict[str, Upstream] | None = None,
) -> web.Application:
    """Build the gateway's web app. `upstreams` overrides the adapters (tests use fakes)."""
    app = web.Application(
        middlewares=[error_middleware, auth_middleware], client_max_size=MAX_BODY_BYTES
    )
    app[STATE] = state
    app[SETTINGS] = settings
    app[REQUEST_LOG] = request_log
    app[API_KEY] = api_key
    app[UPSTREAMS] = dict(upstreams or {})
    app[IN_FLIGHT] = InFlight()
    app.cleanup_ctx.append(_resources)
    app.on_shutdown.append(_drain)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/gateway/state", get_state)
    app.router.add_post("/gateway/demo", set_demo)
    return app


async def _drain(app: web.Application) -> None:
    """Before connections close: let requests finish, then end the rest with an error event."""
    await app[IN_FLIGHT].drain(app[SETTINGS].server.shutdown_grace_s)


async def _resources(app: web.Application) -> AsyncIterator[None]:
    """One upstream ClientSession and the log writer for the app's lifetime."""
    settings = app[SETTINGS]
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300)
    # Per-request limits are the relay's job (watchdog, request timeout); none here.
    session = aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=None), auto_decompress=True
    )
    for provider in settings.providers:
        app[UPSTREAMS].setdefault(provider.name, make_upstream(provider, session))
    await app[REQUEST_LOG].open()
    try:
        yield
    finally:
        await app[REQUEST_LOG].close()
        await session.close()
