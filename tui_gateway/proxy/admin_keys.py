"""Key checks in the gateway: on demand over the admin API, and every `[health]` interval.

    POST   /gateway/keys/check     check every API key now, apply what was found, and return
                                   {"ok": true, "checks": [...], "keys": {...}}, keys masked

`KeyChecks` holds what a check needs and the state has not, the gateway's own HTTP session
(attached by app.py once it is open); the route, the `[health]` task and the screen
(`check_keys_now`) all go through it, one round at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection

import aiohttp
import msgspec
from aiohttp import web

from ..config import Settings
from ..domain.keys import KeyCheck
from ..domain.state import GatewayState
from .errors import APIError
from .keys import STATE

__all__ = ["KEY_CHECKS", "KeyChecks", "add_key_routes", "check_keys_now"]


class KeyChecks:
    """Checks the gateway's keys with its own HTTP session and applies the results to its state.

    Args:
        timeout_s: each key's limit; by default `[health] timeout_s`.
    """

    def __init__(
        self, state: GatewayState, settings: Settings, *, timeout_s: float | None = None
    ) -> None:
        self._state = state
        self._settings = settings
        self._timeout_s = settings.health.timeout_s if timeout_s is None else timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()
        """One round at a time: a second waits, rather than calling every upstream twice."""

    def attach(self, session: aiohttp.ClientSession | None) -> None:
        """The session to call the upstreams with (None again once it is closed)."""
        self._session = session

    async def run(self, only: Collection[str] | None = None) -> list[KeyCheck]:
        """Check every key (or the key ids in `only`) now, and apply each result to the state
        (`GatewayState.key_checked`). Raises RuntimeError before the gateway has started."""
        async with self._lock:
            if self._session is None:
                raise RuntimeError("the gateway is not running: no HTTP session to check with")
            from ..providers.key_check import check_keys  # only when a check runs

            checks = await check_keys(
                self._settings, self._session, timeout_s=self._timeout_s, only=only
            )
            for check in checks:
                self._state.key_checked(check)
        return checks

    async def scheduled(self) -> list[KeyCheck]:
        """One `[health]` round: the keys its `scope` says are due (no call when none is)."""
        due = self._state.key_health.due(self._settings.health.scope)
        return [] if due == [] else await self.run(due)


KEY_CHECKS = web.AppKey("key_checks", KeyChecks)


async def check_keys_now(app: web.Application) -> list[KeyCheck]:
    """Check every key of a running gateway now and apply the results: what the screen calls
    in-process (an attached screen posts to `/gateway/keys/check` instead)."""
    return await app[KEY_CHECKS].run()


async def post_check(request: web.Request) -> web.Response:
    """Check every key now; the answer lists each check and the keys' state after it."""
    app = request.app
    try:
        checks = await check_keys_now(app)
    except RuntimeError as exc:
        raise APIError(503, str(exc), code="not_running") from None
    body = {"ok": True, "checks": checks, "keys": app[STATE].keys.as_json()}
    return web.Response(body=msgspec.json.encode(body), content_type="application/json")


def add_key_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/gateway/keys/check", post_check)
