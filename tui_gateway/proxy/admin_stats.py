"""`GET /gateway/stats?range=24h`: the request log's figures over a range (issue 14), as JSON.

The body is store/analytics.py's `Analytics`, encoded as it is (`range` is 1h, 24h, 7d or 30d; 24h
when left out). The figures are read on connections of their own, opened read-only for the
request: a month's aggregation neither waits behind the log writer's batches nor holds them up
(it takes two cores for about half a second; a day's, one for some 40 ms). What the writer still
holds is written first, so a request that has just finished is counted.
"""

from __future__ import annotations

import sqlite3

import msgspec
from aiohttp import web

from ..store.analytics import RANGES
from .errors import APIError
from .keys import REQUEST_LOG, STATE


async def get_stats(request: web.Request) -> web.Response:
    range_name = request.query.get("range", "24h")
    if range_name not in RANGES:
        raise APIError(400, f"'range' must be one of {', '.join(RANGES)}", param="range")
    try:
        figures = await request.app[REQUEST_LOG].analytics(
            range_name, now=request.app[STATE].clock()
        )
    except sqlite3.Error as exc:
        raise APIError(
            503, f"cannot read the request log: {exc}", type="server_error", code="log_unreadable"
        ) from exc
    return web.Response(body=msgspec.json.encode(figures), content_type="application/json")
