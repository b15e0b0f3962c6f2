"""The watchdogs of a loop share one ticker (issue 10): each still fires at its own time.

One timer for all of them replaced an `asyncio.timeout` and a timer per attempt; these pin what
the shared mechanism must keep: exact deadlines per watchdog, cancellation that is only ever
turned into TimeoutError when the watchdog made it, and nothing left behind when none is live.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.test_streaming_units import FakeLoopTime
from tui_gateway.proxy import watchdog as watchdog_module
from tui_gateway.proxy.watchdog import Heartbeat, Watchdog


async def _guard(dog: Watchdog, clock: FakeLoopTime, fired: dict[str, float], name: str) -> None:
    try:
        async with dog:
            await asyncio.Event().wait()
    except TimeoutError:
        fired[name] = clock.now


async def test_watchdogs_sharing_the_ticker_each_fire_at_their_own_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeLoopTime(asyncio.get_running_loop(), monkeypatch)
    start = clock.now
    fired: dict[str, float] = {}
    dogs = {"slow": Watchdog(9.0), "fast": Watchdog(3.0), "fed": Watchdog(5.0)}
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(_guard(dog, clock, fired, name)) for name, dog in dogs.items()]
    await clock.advance(0)
    await clock.advance(2.0)
    dogs["fed"].feed(limit_s=1.0)  # shorter than the wake already in the heap: re-armed
    for _ in range(10):
        await clock.advance(1.0)
    assert {name: round(t - start) for name, t in fired.items()} == {
        "fed": 3,
        "fast": 3,
        "slow": 9,
    }
    await asyncio.gather(*tasks)


async def test_no_entry_is_left_once_no_watchdog_is_live(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeLoopTime(asyncio.get_running_loop(), monkeypatch)
    heartbeat = Heartbeat(3.0, asyncio.get_running_loop().time())
    for _ in range(200):  # more than the heap keeps for watchdogs gone
        async with Watchdog(10.0, heartbeat=heartbeat, on_quiet=lambda: None) as dog:
            dog.feed(limit_s=2.0)
    ticker = watchdog_module._tickers[asyncio.get_running_loop()]
    assert ticker._live == 0 and ticker._heap == []


async def test_dead_entries_are_dropped_while_others_stay_live(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeLoopTime(asyncio.get_running_loop(), monkeypatch)
    fired: dict[str, float] = {}
    long_lived = Watchdog(50.0)
    task = asyncio.get_running_loop().create_task(_guard(long_lived, clock, fired, "long"))
    await clock.advance(0)
    for _ in range(500):
        async with Watchdog(10.0):
            pass
    ticker = watchdog_module._tickers[asyncio.get_running_loop()]
    assert ticker._live == 1 and len(ticker._heap) <= 4 * 1 + 64 + 1
    await clock.advance(50.0)
    assert "long" in fired
    await task


async def test_a_cancellation_from_outside_stays_a_cancellation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    FakeLoopTime(asyncio.get_running_loop(), monkeypatch)
    entered = asyncio.Event()

    async def guarded() -> None:
        async with Watchdog(10.0):
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.get_running_loop().create_task(guarded())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_fired_twice_or_after_expiry_cuts_once(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeLoopTime(asyncio.get_running_loop(), monkeypatch)
    dog = Watchdog(1.0)
    with pytest.raises(TimeoutError):
        async with dog:
            await clock.advance(2.0)  # expired: the cancellation is on its way
            dog.fire()
            dog.fire()
            await asyncio.Event().wait()
    assert dog.expired and asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_block_that_ends_before_the_cut_lands_is_not_cancelled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As with `asyncio.timeout`: the cut goes out on the next iteration, or not at all."""
    FakeLoopTime(asyncio.get_running_loop(), monkeypatch)
    async with Watchdog(10.0) as dog:
        dog.fire()  # the block ends right away, before the loop runs again
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # no stray CancelledError arrives here
    assert dog.expired


async def test_a_failing_callback_does_not_silence_the_other_watchdogs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each watchdog had a timer of its own; sharing one must not tie their fates together."""
    loop = asyncio.get_running_loop()
    clock = FakeLoopTime(loop, monkeypatch)
    errors: list[object] = []
    monkeypatch.setattr(loop, "call_exception_handler", errors.append)

    def broken() -> None:
        raise RuntimeError("a bug in a keep-alive")

    fired: dict[str, float] = {}
    heartbeat = Heartbeat(1.0, clock.now)
    dogs = {"broken": Watchdog(30.0, heartbeat=heartbeat, on_quiet=broken), "ok": Watchdog(2.0)}
    tasks = [loop.create_task(_guard(dog, clock, fired, name)) for name, dog in dogs.items()]
    await clock.advance(0)
    for _ in range(3):
        await clock.advance(1.0)
    assert "ok" in fired and len(errors) == 1
    dogs["broken"].fire()
    await asyncio.gather(*tasks)
