"""The aiohttp application factory: wires routes, middlewares and resources, starts nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from ..asyncio_utils import spawn
from ..config import Settings
from ..domain.events import KeyRejected, KeyRestored, PrefillRefused
from ..domain.state import PERSISTED_EVENTS, GatewayState
from ..providers import Upstream, make_upstream
from ..providers.http import UpstreamClient
from ..store import RequestLog
from ..store.quota_usage import QuotaStore
from ..store.saved import INVALID_KEYS, PREFILL_REFUSED, Saver, load_saved
from ..store.stats import load_buckets
from ..store.timing import load_timer_history
from .admin import add_admin_routes
from .admin_keys import KEY_CHECKS, KeyChecks
from .auth import auth_middleware, install_keys
from .dialects import CHAT, MessagesDialect, ResponsesDialect
from .dialects.messages import count_tokens
from .health import add_health_routes
from .inflight import InFlight
from .keys import API_KEY, DEMO, IN_FLIGHT, REQUEST_LOG, SETTINGS, STATE, UPSTREAMS
from .middleware import error_middleware
from .serve import door, get_model, hello, list_models
from .watch import add_watch_routes

MAX_BODY_BYTES = 64 * 1024 * 1024  # long agent contexts run to megabytes; aiohttp's default is 1
POSTERIOR_REFRESH_S = 60.0  # decay over a 7-day window barely moves in a minute
log = logging.getLogger("tui_gateway.proxy")


def make_app(
    state: GatewayState,
    settings: Settings,
    request_log: RequestLog,
    *,
    api_key: str,
    upstreams: dict[str, Upstream] | None = None,
    demo: bool = False,
) -> web.Application:
    """Build the gateway's web app. `upstreams` overrides the adapters (tests use fakes)."""
    app = web.Application(
        middlewares=[error_middleware, auth_middleware], client_max_size=MAX_BODY_BYTES
    )
    app[STATE] = state
    app[SETTINGS] = settings
    app[REQUEST_LOG] = request_log
    app[API_KEY] = api_key
    install_keys(app, api_key)
    app[DEMO] = demo
    app[UPSTREAMS] = dict(upstreams or {})
    app[IN_FLIGHT] = InFlight()
    app[KEY_CHECKS] = KeyChecks(state, settings)  # its session comes with the resources
    app.cleanup_ctx.append(_resources)
    app.on_shutdown.append(_drain)
    app.router.add_post("/v1/chat/completions", door(CHAT))
    app.router.add_post("/v1/messages", door(MessagesDialect.from_settings(settings)))
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    responses = ResponsesDialect(settings.dialects.responses, clock=state.clock)
    state.watch_responses_store(responses.store_counts)
    app.router.add_post("/v1/responses", door(responses))
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{id:.+}", get_model)  # ids hold slashes: `groq/llama-3.1-8b`
    app.router.add_get("/", hello)
    add_admin_routes(app.router)
    add_watch_routes(app)
    add_health_routes(app)  # after the cleanup contexts: ready once they are open
    return app


async def _drain(app: web.Application) -> None:
    """Before connections close: let requests finish, then end the rest with an error event."""
    await app[IN_FLIGHT].drain(app[SETTINGS].server.shutdown_grace_s)


async def _resources(app: web.Application) -> AsyncIterator[None]:
    """The upstream client, an aiohttp session for key checks, the log writer and, with
    `[cluster]`, the Redis mirror, for the app's lifetime."""
    settings = app[SETTINGS]
    request_log, state = app[REQUEST_LOG], app[STATE]
    async with contextlib.AsyncExitStack() as stack:  # whatever started is closed, even on error
        # The key checks' session (GETs to each provider, each check under its own timeout);
        # the relay's calls go through `UpstreamClient` below.
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300)
        session = await stack.enter_async_context(
            aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None))
        )
        client = await stack.enter_async_context(UpstreamClient())  # the relay's (http.py)
        for provider in settings.providers:
            app[UPSTREAMS].setdefault(provider.name, make_upstream(provider, client))
        await request_log.open()
        stack.push_async_callback(request_log.close)
        state.restore_controls(await load_saved(request_log.db))
        await _load_posteriors(state, request_log)
        await load_timer_history(request_log.db, state.timers)
        saver = Saver(request_log.db, state.controls.saved, lock=request_log.write_lock)
        stack.push_async_callback(saver.close)
        stack.callback(state.subscribe(lambda _e: saver.changed(), kinds=PERSISTED_EVENTS))
        learner = state.learner
        learner.restore_refusals(await load_saved(request_log.db, PREFILL_REFUSED))
        refusals = Saver(
            request_log.db,
            lambda: dict(learner.prefill_refused),
            key=PREFILL_REFUSED,
            lock=request_log.write_lock,
        )
        stack.push_async_callback(refusals.close)
        stack.callback(state.subscribe(lambda _e: refusals.changed(), kinds=(PrefillRefused,)))
        await _keep_key_health(stack, app, session)
        if state.quotas:  # no model has limits: no writer, no query
            await _keep_quotas(stack, state, settings, request_log)
        if settings.cluster.redis_url:  # after the local restore: a fresh Redis is seeded from it
            await _share(stack, state, settings)
        refresher = spawn(_refresh_posteriors(state), name="posterior-refresh")
        stack.callback(refresher.cancel)
        yield


async def _keep_key_health(
    stack: contextlib.AsyncExitStack, app: web.Application, session: aiohttp.ClientSession
) -> None:
    """The keys the last run found invalid stay out (while their secret is the same), each
    change is saved, and with `[health]` a task checks the keys due every interval (issue 14)."""
    state, request_log, health = app[STATE], app[REQUEST_LOG], app[SETTINGS].health
    restored = state.key_health.restore(await load_saved(request_log.db, INVALID_KEYS))
    saver = Saver(
        request_log.db, state.key_health.saved, key=INVALID_KEYS, lock=request_log.write_lock
    )
    stack.push_async_callback(saver.close)
    if restored.dropped:  # a changed or removed key's entry goes from the file too
        saver.changed()
    stack.callback(state.subscribe(lambda _e: saver.changed(), kinds=(KeyRejected, KeyRestored)))
    checks = app[KEY_CHECKS]
    checks.attach(session)
    stack.callback(checks.attach, None)
    if health.interval_s > 0:
        task = spawn(_check_keys_every(checks, health.interval_s), name="key-health")
        stack.callback(task.cancel)  # before the session closes (the stack unwinds in reverse)


async def _check_keys_every(checks: KeyChecks, interval_s: float) -> None:
    """`[health]`: one round at start, then one every `interval_s`, off the request path."""
    while True:
        try:
            await checks.scheduled()
        except Exception:  # a bug here must not end the checks for the rest of the run
            log.exception("key check round failed; trying again in %g s", interval_s)
        await asyncio.sleep(interval_s)


async def _keep_quotas(
    stack: contextlib.AsyncExitStack,
    state: GatewayState,
    settings: Settings,
    request_log: RequestLog,
) -> None:
    """The quotas' use and learned limits from the last run, then their writer (issue 13), so
    a restart in the middle of a day keeps the day's counts."""
    store = QuotaStore(request_log.db, state.quotas, lock=request_log.write_lock, clock=state.clock)
    await store.restore({key for p in settings.providers for key in state.keys.ids(p.name)})
    store.start()
    stack.push_async_callback(store.close)


async def _share(stack: contextlib.AsyncExitStack, state: GatewayState, settings: Settings) -> None:
    """Share the state with the other gateways on `[cluster]`'s Redis (see cluster/)."""
    from ..cluster import Mirror  # only now: without `[cluster]` nothing of redis is loaded

    mirror = Mirror(state, settings.cluster)
    await mirror.start()
    stack.push_async_callback(mirror.close)


async def _load_posteriors(state: GatewayState, request_log: RequestLog) -> None:
    """One aggregate query over the log's window (in aiosqlite's thread, off the event loop)."""
    book = state.book
    rows = await load_buckets(
        request_log.db, now=state.clock(), window_s=book.window_s, bucket_s=book.bucket_s
    )
    state.load_history(rows)


async def _refresh_posteriors(state: GatewayState) -> None:
    """Re-derive the recency decay now and then, off the request path."""
    while True:
        await asyncio.sleep(POSTERIOR_REFRESH_S)
        state.refresh_posteriors()
