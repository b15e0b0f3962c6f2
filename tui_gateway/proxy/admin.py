"""The admin/state API: the same GatewayState verbs the TUI's keys call, over HTTP."""

from __future__ import annotations

from aiohttp import web

from .errors import APIError
from .keys import STATE
from .validation import read_json


async def get_state(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].snapshot())


async def set_demo(request: web.Request) -> web.Response:
    """`{"paused": true}` pauses the demo's built-in traffic; false resumes it."""
    body = await read_json(request)
    paused = body.get("paused")
    if not isinstance(paused, bool):
        raise APIError(400, "'paused' must be true or false", param="paused")
    state = request.app[STATE]
    state.set_demo_paused(paused)
    return web.json_response({"paused": state.demo_paused})
