"""What an attached screen reads (`tui-gateway attach`): a live feed of the state, and one request.

    GET /gateway/events          server-sent events: `hello` once (what the screen needs to know
                                 of this gateway), then a whole `snapshot` every `interval_s`
                                 (0.25 s; `?interval_s=` from 0.1 to 10) with the event-log
                                 `line`s since the last one
    GET /gateway/requests/{id}   one request up close (a `FlowDetail`): from memory while it is
                                 recent, else what the request log kept

A snapshot on a timer, not an event per change: what an attached screen costs the gateway is one
snapshot per interval whatever the load (as the embedded screen repaints on a timer), and the
events themselves are built only for their lines, as for the embedded screen.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque

import msgspec
from aiohttp import web

from ..asyncio_utils import wait_set
from ..domain.events import WITH_LINES, Event
from ..domain.snapshot import detail_of_row
from ..domain.state import GatewayState
from ..domain.views import FlowDetail
from ..store import RequestLog
from .errors import APIError
from .keys import DEMO, REQUEST_LOG, SETTINGS, STATE

INTERVAL_S = 0.25
"""How often an attached screen gets a snapshot: 4 a second, against the embedded screen's 10;
enough to see a request stall or move, cheap enough to leave several screens attached."""
INTERVAL_RANGE_S = (0.1, 10.0)
LINES_KEPT = 1000
"""Event-log lines held for one slow screen between two snapshots; older ones are dropped."""

WATCHERS = web.AppKey("watchers", set[asyncio.Event])
"""One event per attached screen: set at shutdown, so every feed ends before connections close."""


def add_watch_routes(app: web.Application) -> None:
    app[WATCHERS] = set()
    app.router.add_get("/gateway/events", stream_events)
    app.router.add_get("/gateway/requests/{id}", get_request)
    app.on_shutdown.insert(0, _end_feeds)


async def request_detail(
    state: GatewayState, log: RequestLog, request_id: str
) -> FlowDetail | None:
    """A copy of one request: from memory while it is recent, else what the log kept."""
    found = state.find_request(request_id)
    if found is not None:
        return found
    row = await log.get(request_id)
    return None if row is None else detail_of_row(row)


async def get_request(request: web.Request) -> web.Response:
    request_id = request.match_info["id"]
    found = await request_detail(request.app[STATE], request.app[REQUEST_LOG], request_id)
    if found is None:
        raise APIError(404, f"no request '{request_id}'", code="request_not_found")
    return web.Response(body=msgspec.json.encode(found), content_type="application/json")


async def stream_events(request: web.Request) -> web.StreamResponse:
    interval_s = _interval(request.query.get("interval_s"))
    state, streaming = request.app[STATE], request.app[SETTINGS].streaming
    lines: deque[bytes] = deque(maxlen=LINES_KEPT)

    def heard(event: Event) -> None:  # on the proxy's path: keep the line, send it next tick
        if text := event.text:
            lines.append(_event(b"line", json.dumps({"at": time.time(), "text": text})))

    stop = asyncio.Event()
    request.app[WATCHERS].add(stop)
    unsubscribe = state.subscribe(heard, kinds=WITH_LINES)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    try:
        await response.prepare(request)
        hello = {"demo": request.app[DEMO], "streaming": msgspec.to_builtins(streaming)}
        await response.write(_event(b"hello", json.dumps(hello)))
        while not stop.is_set():
            batch = [_event(b"snapshot", msgspec.json.encode(state.snapshot(intervals=False)))]
            while lines:
                batch.append(lines.popleft())
            await response.write(b"".join(batch))
            await wait_set(stop, interval_s)
    except (ConnectionResetError, ConnectionError):
        pass  # the screen went away: nothing to tell it
    finally:
        unsubscribe()
        request.app[WATCHERS].discard(stop)
    return response


def _event(name: bytes, data: bytes | str) -> bytes:
    payload = data.encode() if isinstance(data, str) else data
    return b"event: " + name + b"\ndata: " + payload + b"\n\n"  # JSON has no raw newline


def _interval(raw: str | None) -> float:
    low, high = INTERVAL_RANGE_S
    if raw is None:
        return INTERVAL_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:  # NaN fails both
        raise APIError(
            400, f"'interval_s' must be a number of seconds from {low:g} to {high:g}",
            param="interval_s",
        )  # fmt: skip
    return value


async def _end_feeds(app: web.Application) -> None:
    for stop in app[WATCHERS]:
        stop.set()
