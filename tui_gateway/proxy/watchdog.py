"""One watchdog per upstream attempt: cuts a read short when the upstream goes quiet.

Rescheduling a timer for every chunk would cost a timer handle per chunk; instead the watchdog
wakes once per limit, looks at the time of the last progress and either re-arms or fires. Firing
only reschedules an `asyncio.timeout` to now, so nothing ever raises from a timer callback and
cancellation semantics stay asyncio's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType


class Heartbeat:
    """When the client last got a byte (data or keep-alive), shared by all of a request's attempts.

    The client's read timeout counts from its last byte, whichever attempt sent it, so the
    heartbeat clock must not restart with each new attempt.
    """

    def __init__(self, interval_s: float, started: float) -> None:
        self.interval_s = interval_s
        self.last = started

    def due(self) -> float:
        return self.last + self.interval_s


class Watchdog:
    """`async with Watchdog(limit_s) as dog:` raises TimeoutError if `dog.feed()` stops coming.

    With `heartbeat_s` it also calls `on_quiet()` whenever that long passed with neither progress
    nor another heartbeat. The callback must not raise (it only starts the keep-alive write), and
    a heartbeat never counts as progress: the stall clock keeps running.
    """

    def __init__(
        self,
        limit_s: float,
        *,
        heartbeat: Heartbeat | None = None,
        on_quiet: Callable[[], None] | None = None,
    ) -> None:
        self.limit_s = limit_s
        self.heartbeat = heartbeat
        self.on_quiet = on_quiet
        self.expired = False
        self.fed = False
        """True once any progress was fed: tells a first-byte timeout from a mid-stream stall."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timeout: asyncio.Timeout | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._last = 0.0
        self._active = False

    async def __aenter__(self) -> Watchdog:
        self._loop = asyncio.get_running_loop()
        self._timeout = asyncio.timeout(None)
        await self._timeout.__aenter__()
        self._active = True
        self._last = self._loop.time()
        self._handle = self._loop.call_at(self._next_wake(), self._check)
        return self

    def _next_wake(self) -> float:
        deadline = self._last + self.limit_s
        if self.heartbeat is None:
            return deadline
        return min(deadline, self.heartbeat.due())

    def feed(self, *, limit_s: float | None = None) -> None:
        """Progress was made; optionally switch to another limit (first byte -> between chunks)."""
        assert self._loop is not None
        self._last = self._loop.time()
        self.fed = True
        if limit_s is not None and limit_s != self.limit_s:
            shorter = limit_s < self.limit_s
            self.limit_s = limit_s
            if shorter and self._active and self._handle is not None:
                # The wake was set for the longer limit: re-arm it, or it would fire late.
                self._handle.cancel()
                self._handle = self._loop.call_at(self._next_wake(), self._check)

    def fire(self) -> None:
        """Cut the guarded block short now (used to end requests at shutdown)."""
        if self._active and self._timeout is not None and self._loop is not None:
            self.expired = True
            self._timeout.reschedule(self._loop.time())

    def _check(self) -> None:
        assert self._loop is not None and self._timeout is not None
        now = self._loop.time()
        # The keep-alive first: if it falls due with the deadline, the client still gets it
        # (the next attempt may take a while to produce its first byte).
        if self.heartbeat is not None and now >= self.heartbeat.due() and self.on_quiet:
            self.heartbeat.last = now
            self.on_quiet()
        if now >= self._last + self.limit_s:
            self.expired = True
            self._timeout.reschedule(now)
            return
        self._handle = self._loop.call_at(self._next_wake(), self._check)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._active = False
        if self._handle is not None:
            self._handle.cancel()
        assert self._timeout is not None
        await self._timeout.__aexit__(exc_type, exc, tb)
