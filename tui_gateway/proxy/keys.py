"""Typed application keys: `request.app[STATE]`, never string keys."""

from __future__ import annotations

from aiohttp import web

from ..config import Settings
from ..domain.state import GatewayState
from ..providers import Upstream
from ..store import RequestLog
from .inflight import InFlight

STATE = web.AppKey("state", GatewayState)
SETTINGS = web.AppKey("settings", Settings)
REQUEST_LOG = web.AppKey("request_log", RequestLog)
API_KEY = web.AppKey("api_key", str)
UPSTREAMS = web.AppKey("upstreams", dict[str, Upstream])
IN_FLIGHT = web.AppKey("in_flight", InFlight)
DEMO = web.AppKey("demo", bool)
"""Whether this is `tui-gateway --demo` (its built-in traffic can be paused)."""
CLIENT = web.RequestKey("client", str)
"""On a request: the name of the `[[clients]]` key it came with (unset for `server.api_key`)."""
