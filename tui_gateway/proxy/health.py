"""For supervisors and `tui-gateway service status`: is the gateway up, is it ready, since when.

    GET /livez          no key: `{"status": "up"}` while the process serves at all
    GET /readyz         no key: 200 `{"status": "ready"}`, or 503 `{"status": "starting"}` /
                        `{"status": "stopping"}` before start-up finished or once shutdown began;
                        with `[cluster]`, also `"cluster": "connected"` or `"unreachable"`
    GET /gateway/info   the key: version, start time, uptime, URL, pid, demo

The open two say nothing but that: no version, no counts, no models, so a probe that reaches
them from elsewhere learns only that something answers.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web

from ..net import http_root
from .keys import DEMO, STATE

HEALTH_PATHS = frozenset({"/livez", "/readyz"})
"""Answered without a key (auth.py's OPEN_PATHS)."""


@dataclass(slots=True)
class Lifecycle:
    """Where the app is in its life: starting, ready, stopping (set by the app's own signals)."""

    phase: str = "starting"
    started_at: float = field(default_factory=time.time)
    """Wall-clock start (shown), kept with a monotonic one (for the uptime)."""
    started_mono: float = field(default_factory=time.monotonic)

    def uptime_s(self) -> float:
        return time.monotonic() - self.started_mono


LIFECYCLE = web.AppKey("lifecycle", Lifecycle)


def add_health_routes(app: web.Application) -> None:
    """Register the three routes; readiness follows the app's startup and shutdown."""
    app[LIFECYCLE] = Lifecycle()
    app.on_startup.append(_ready)  # after the cleanup contexts: the log and sessions are open
    app.on_shutdown.insert(0, _stopping)  # before the drain: supervisors stop sending at once
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/gateway/info", info)


async def _ready(app: web.Application) -> None:
    lifecycle = app[LIFECYCLE]
    lifecycle.phase = "ready"
    lifecycle.started_at, lifecycle.started_mono = time.time(), time.monotonic()


async def _stopping(app: web.Application) -> None:
    app[LIFECYCLE].phase = "stopping"


async def livez(request: web.Request) -> web.Response:
    return web.json_response({"status": "up"})


async def readyz(request: web.Request) -> web.Response:
    """Ready or not; with `[cluster]`, whether the shared state is reachable too. A gateway
    whose Redis is down is still ready: it serves on its local state (and says so here)."""
    phase = request.app[LIFECYCLE].phase
    body = {"status": phase}
    cluster = request.app[STATE].cluster
    if cluster.url:
        body["cluster"] = "connected" if cluster.connected else "unreachable"
    return web.json_response(body, status=200 if phase == "ready" else 503)


async def info(request: web.Request) -> web.Response:
    lifecycle = request.app[LIFECYCLE]
    started = datetime.fromtimestamp(lifecycle.started_at, UTC)
    return web.json_response(
        {
            "version": _version(),
            "started_at": started.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "uptime_s": round(lifecycle.uptime_s(), 1),
            "base_url": _base_url(request),
            "pid": os.getpid(),
            "demo": request.app.get(DEMO, False),
        }
    )


def _base_url(request: web.Request) -> str:
    """The address this connection reached (the listening socket's side), not the Host header."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if not sockname:
        return f"{request.scheme}://{request.host}/v1"
    return http_root(sockname[0], sockname[1]) + "/v1"


def _version() -> str:
    # Imported here: importlib.metadata (with zipfile and csv) is 0.9 MB of an idle gateway.
    from importlib import metadata

    try:
        return metadata.version("tui-gateway")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"
