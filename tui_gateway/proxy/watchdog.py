"""One watchdog per upstream attempt: cuts a read short when the upstream goes quiet.

Rescheduling a timer for every chunk would cost a timer handle per chunk; instead the watchdog
wakes once per limit, looks at the time of the last progress and either re-arms or fires. Even
one timer and one `asyncio.timeout` per attempt cost more than most of a stream's own work, so
the watchdogs of a loop share one `_Ticker`: a heap of wake times under a single timer handle.
Firing cancels the guarded task from a callback, as `asyncio.timeout` does, and leaving the
block turns that cancellation into TimeoutError; nothing ever raises from a timer callback.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import Any


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
        self._ticker: _Ticker | None = None
        self._task: asyncio.Task[Any] | None = None
        self._cancelling = 0
        """The task's pending cancellations on entry: those are not ours to turn into a timeout."""
        self._cut: asyncio.Handle | None = None
        """The cancellation of the task, scheduled once the watchdog fired."""
        self._cancelled = False
        self._last = 0.0
        self._wake = 0.0
        """When the ticker looks at this watchdog next (an entry for another time is stale)."""
        self._active = False

    async def __aenter__(self) -> Watchdog:
        loop = self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a Watchdog must be used inside a task")
        self._task, self._cancelling = task, task.cancelling()
        self._active = True
        self._last = loop.time()
        self._ticker = _ticker(loop)
        self._ticker.enter(self, self._next_wake())
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
            if shorter and self._active and self._ticker is not None:
                # The wake was set for the longer limit: re-arm it, or it would fire late.
                self._ticker.arm(self, self._next_wake())

    def fire(self) -> None:
        """Cut the guarded block short now (used to end requests at shutdown)."""
        if self._active:
            self.expired = True
            self._cut_short()

    def _cut_short(self) -> None:
        # On the next loop iteration, as `asyncio.timeout` does: a block that ends before then
        # is not cancelled at all.
        if self._cut is None and self._loop is not None:
            self._cut = self._loop.call_soon(self._cancel)

    def _cancel(self) -> None:
        if self._active and self._task is not None:
            self._cancelled = True
            self._task.cancel()

    def _check(self, now: float) -> None:
        """The ticker's call at this watchdog's wake time (must not raise)."""
        # The keep-alive first: if it falls due with the deadline, the client still gets it
        # (the next attempt may take a while to produce its first byte).
        if self.heartbeat is not None and now >= self.heartbeat.due() and self.on_quiet:
            self.heartbeat.last = now
            self.on_quiet()
        if now >= self._last + self.limit_s:
            self.expired = True
            self._cut_short()
        elif self._ticker is not None:
            self._ticker.arm(self, self._next_wake())

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._active = False
        if self._ticker is not None:
            self._ticker.leave()
        task, self._task = self._task, None  # a stale heap entry must not keep the task alive
        cut, self._cut = self._cut, None
        if cut is None:
            return
        cut.cancel()  # harmless if it ran
        if not self._cancelled:
            return  # the block ended before the cancellation went out
        assert task is not None
        if task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc


_tickers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Ticker] = (
    weakref.WeakKeyDictionary()
)
"""Per event loop, as asyncio keeps its own per-loop state; a loop closed is dropped with it."""


def _ticker(loop: asyncio.AbstractEventLoop) -> _Ticker:
    ticker = _tickers.get(loop)
    if ticker is None:
        ticker = _tickers[loop] = _Ticker(loop)
    return ticker


class _Ticker:
    """The one timer of a loop's watchdogs: a heap of their wake times, woken at the earliest.

    Most attempts end long before their first wake, so a watchdog costs one heap push and no
    work on leaving; the entries of watchdogs gone are dropped as they come up, or all at once
    when they outnumber the live ones, and the heap is emptied whenever no watchdog is live.
    A timer is never cancelled: one superseded by an earlier wake finds itself stale and returns
    (so the ticker holds no handle, and through it no loop).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)  # the registry's value must not keep its key alive
        self._heap: list[tuple[float, int, Watchdog]] = []
        self._order = itertools.count()
        """Ties in wake time go first in, first out (watchdogs themselves do not compare)."""
        self._at = math.inf
        """When the timer that counts runs (inf: none is pending)."""
        self._live = 0

    def enter(self, dog: Watchdog, at: float) -> None:
        self._live += 1
        self.arm(dog, at)

    def arm(self, dog: Watchdog, at: float) -> None:
        """Wake `dog` at `at` (an entry it had for another time goes stale)."""
        dog._wake = at
        heapq.heappush(self._heap, (at, next(self._order), dog))
        if at < self._at:
            self._schedule(at)

    def leave(self) -> None:
        self._live -= 1
        if self._live == 0:
            self._heap.clear()
        elif len(self._heap) > 4 * self._live + 64:
            self._heap = [entry for entry in self._heap if _current(entry)]
            heapq.heapify(self._heap)

    def _schedule(self, at: float) -> None:
        self._at = at
        loop = self._loop()
        if loop is not None:
            loop.call_at(at, self._tick, at)

    def _tick(self, at: float) -> None:
        loop = self._loop()
        if at != self._at or loop is None:
            return  # an earlier wake took this one's place
        self._at = math.inf
        now = loop.time()
        heap = self._heap
        due = []
        while heap and heap[0][0] <= now:
            due.append(heapq.heappop(heap))
        # Checked after the pops: a watchdog re-armed for now waits for the next iteration.
        for entry in due:
            if not _current(entry):
                continue
            try:
                entry[2]._check(now)
            except Exception as exc:  # one watchdog's failure must not silence the others
                loop.call_exception_handler({"message": "watchdog check failed", "exception": exc})
        if heap and heap[0][0] < self._at:
            self._schedule(heap[0][0])


def _current(entry: tuple[float, int, Watchdog]) -> bool:
    """The entry is the live watchdog's next wake (not one it was re-armed from, nor left)."""
    dog = entry[2]
    return dog._active and dog._wake == entry[0]
