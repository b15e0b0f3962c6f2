"""Reading the request log back in tests: what `RequestLog.recent` did, outside the product."""

from __future__ import annotations

from tui_gateway.domain.records import RequestRecord
from tui_gateway.store.log import RequestLog
from tui_gateway.store.read import read_requests


async def logged(log: RequestLog, limit: int = 100) -> list[RequestRecord]:
    """The newest logged requests with their attempts, newest first.

    Writes what is pending first, unless writes are failing (then reads what is on disk now).
    """
    if not log.health().failing:
        await log.flush()
    return await read_requests(log.db, "ORDER BY started DESC LIMIT ?", (limit,))
