"""Hedging (`[routing] hedge`, issue 11): a late first byte is raced by the next candidate.

Through the `openai` SDK with the mock behind. The models have no history, so a race starts at
half the first-byte timeout (0.4 s here); `ok:ttft_ms=N` answers after N ms of silence.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from scripts.mock_upstream import RECEIVED
from tests.conftest import GatewayFactory, SdkFactory
from tests.factories import API_KEY, make_settings, model
from tests.logged import logged
from tui_gateway.config import RoutingSettings, Settings
from tui_gateway.domain.timers import LearnedTimers, TimerPolicy
from tui_gateway.proxy.hedge import hedge_after_s
from tui_gateway.server import Gateway

FULL = "lorem ipsum dolor sit amet consectetur adipiscing elit"
TIMERS = {"first_byte_timeout_s": 0.8, "stall_timeout_s": 2.0, "heartbeat_interval_s": 5.0}
HEDGE = {"hedge": True}
HELLO = [{"role": "user", "content": "hi"}]


async def streamed(gateway: Gateway, sdk: SdkFactory) -> tuple[str, list[Any]]:
    stream = await sdk(gateway).chat.completions.create(model="auto", messages=HELLO, stream=True)
    chunks = [c async for c in stream]
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices), chunks


def received(mock: TestServer) -> list[str]:
    return [r.model for r in mock.app[RECEIVED]]


def hedging(mock_url: str, *ids: str, **streaming: float) -> Settings:
    """The mock's models `ids`, in this order, with hedging on."""
    models = [model("mock", i) for i in ids]
    return make_settings(mock_url, models, streaming={**TIMERS, **streaming}, routing=HEDGE)


async def arrived(mock: TestServer, *model_ids: str) -> None:
    """Wait (up to 5 s) until the mock has read a request for each of `model_ids`."""
    async with asyncio.timeout(5):
        while not set(model_ids) <= set(received(mock)):
            await asyncio.sleep(0.01)


async def settled(mock: TestServer, model_id: str) -> bool:
    """Whether the mock saw the client of `model_id`'s request go (within a second)."""
    for _ in range(100):
        if any(r.model == model_id and r.disconnected for r in mock.app[RECEIVED]):
            return True
        await asyncio.sleep(0.01)
    return False


async def test_a_late_first_byte_is_raced_and_the_faster_answer_kept(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str, mock_upstream: TestServer
) -> None:
    slow = "ok:ttft_ms=5000"
    gateway = await gateway_factory(hedging(mock_url, slow, "ok"))
    loop = asyncio.get_running_loop()
    began = loop.time()
    text, chunks = await streamed(gateway, sdk)
    waited = loop.time() - began
    assert text == FULL
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.role) == 1
    # The race started at 0.4 s, not when the 0.8 s first-byte timeout fired.
    assert 0.35 < waited < 0.75
    assert received(mock_upstream) == [slow, "ok"]
    assert await settled(mock_upstream, slow), "the slower attempt was not closed upstream"
    [row] = await logged(gateway.request_log)
    assert row.status == 200 and row.error_kind is None and row.model == "mock/ok"
    assert [(a.attempt, a.model, a.error_kind) for a in row.attempts] == [
        (1, f"mock/{slow}", "outrun"),
        (2, "mock/ok", None),
    ]
    # Outrun while late: a failure its posterior learns, but slow once is not down, so the
    # model is not cooled down.
    snapshot = gateway.state.snapshot()
    assert snapshot.posteriors[f"mock/{slow}"].failures == 1
    assert gateway.state.is_usable(f"mock/{slow}")


async def test_the_attempt_raced_keeps_the_answer_when_it_sends_content_first(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str, mock_upstream: TestServer
) -> None:
    late, later = "ok:ttft_ms=600", "ok:ttft_ms=5000"
    gateway = await gateway_factory(hedging(mock_url, late, later))
    text, _ = await streamed(gateway, sdk)
    assert text == FULL
    assert received(mock_upstream) == [late, later]
    assert await settled(mock_upstream, later), "the racer was not closed upstream"
    [row] = await logged(gateway.request_log)
    assert row.model == f"mock/{late}" and row.error_kind is None
    assert [(a.attempt, a.model, a.error_kind) for a in row.attempts] == [
        (1, f"mock/{late}", None),
        (2, f"mock/{later}", "hedged"),
    ]
    assert not gateway.state.active
    # The racer only started later: nothing counts against it.
    assert gateway.state.snapshot().posteriors[f"mock/{later}"].failures == 0


async def test_a_racer_that_fails_is_recorded_and_the_attempt_raced_goes_on(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str, mock_upstream: TestServer
) -> None:
    late = "ok:ttft_ms=600"
    gateway = await gateway_factory(hedging(mock_url, late, "error-500"))
    text, _ = await streamed(gateway, sdk)
    assert text == FULL
    [row] = await logged(gateway.request_log)
    assert row.model == f"mock/{late}" and row.error_kind is None
    assert [(a.model, a.error_kind) for a in row.attempts] == [
        (f"mock/{late}", None),
        ("mock/error-500", "5xx"),
    ]
    # A racer's 5xx is a failure like any other.
    assert gateway.state.snapshot().posteriors["mock/error-500"].failures == 1


async def test_when_the_attempt_raced_fails_the_racer_carries_on_alone(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str, mock_upstream: TestServer
) -> None:
    # The first model never answers; its 0.8 s timeout fires while the racer (started at
    # 0.4 s) is still waiting for its own first byte at 1 s: no third attempt is started.
    gateway = await gateway_factory(
        hedging(mock_url, "stall-before-first", "ok:ttft_ms=1000", "ok")
    )
    text, _ = await streamed(gateway, sdk)
    assert text == FULL
    assert received(mock_upstream) == ["stall-before-first", "ok:ttft_ms=1000"]
    [row] = await logged(gateway.request_log)
    assert [(a.model, a.error_kind) for a in row.attempts] == [
        ("mock/stall-before-first", "timeout"),
        ("mock/ok:ttft_ms=1000", None),
    ]


async def racing(gateway: Gateway) -> str:
    """The id of the request in flight once a second candidate races it."""
    async with asyncio.timeout(5):
        while True:
            racing = [f.id for f in gateway.state.active.values() if f.hedge is not None]
            if racing:
                return racing[0]
            await asyncio.sleep(0.01)


async def test_a_skip_during_a_race_hands_the_request_to_the_racer(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str, mock_upstream: TestServer
) -> None:
    slow, racer = "ok:ttft_ms=5000", "ok:ttft_ms=300"
    gateway = await gateway_factory(hedging(mock_url, slow, racer, "ok"))
    answer = asyncio.create_task(streamed(gateway, sdk))
    assert gateway.state.skip_request(await racing(gateway)) is True
    text, _ = await answer
    assert text == FULL
    assert received(mock_upstream) == [slow, racer]  # the racer went on: no third call
    [row] = await logged(gateway.request_log)
    assert [(a.model, a.error_kind) for a in row.attempts] == [
        (f"mock/{slow}", "skipped"),
        (f"mock/{racer}", None),
    ]


async def test_a_client_that_leaves_mid_race_closes_both_and_leaves_one_row(
    gateway_factory: GatewayFactory, mock_url: str, mock_upstream: TestServer
) -> None:
    first, second = "ok:ttft_ms=5000", "ok:ttft_ms=5001"
    gateway = await gateway_factory(hedging(mock_url, first, second, heartbeat_interval_s=0.2))
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        resp = await http.post(
            gateway.base_url + "/chat/completions",
            json={"model": "auto", "messages": HELLO, "stream": True},
        )
        await racing(gateway)
        # The race begins before the second request reaches the mock; leave once both have.
        await arrived(mock_upstream, first, second)
        resp.close()  # the client walks away while both are racing
    async with asyncio.timeout(5):
        while gateway.state.active:
            await asyncio.sleep(0.01)
    assert await settled(mock_upstream, first) and await settled(mock_upstream, second)
    [row] = await logged(gateway.request_log)
    assert row.error_kind == "client_closed"
    assert [a.error_kind for a in row.attempts] == ["client_closed", "client_closed"]


async def test_the_messages_and_responses_doors_are_raced_by_the_same_code(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str, mock_upstream: TestServer
) -> None:
    from anthropic import AsyncAnthropic

    slow = "ok:ttft_ms=5000"
    gateway = await gateway_factory(hedging(mock_url, slow, "ok"))
    base = gateway.base_url.removesuffix("/v1")
    async with AsyncAnthropic(base_url=base, api_key=API_KEY, max_retries=0) as claude:
        body = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": HELLO}
        async with claude.messages.stream(**body) as stream:  # type: ignore[arg-type]
            message = await stream.get_final_message()
    assert message.content[0].text == FULL  # type: ignore[union-attr]
    async with sdk(gateway).responses.stream(model="auto", input="hello") as responses:
        response = await responses.get_final_response()
    assert response.output_text == FULL and response.status == "completed"
    rows = await logged(gateway.request_log)
    assert len(rows) == 2
    for row in rows:
        assert [a.error_kind for a in row.attempts] == ["outrun", None]


async def test_hedging_is_off_by_default(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str, mock_upstream: TestServer
) -> None:
    late = "ok:ttft_ms=600"
    gateway = await gateway_factory(
        make_settings(mock_url, [model("mock", late), model("mock", "ok")], streaming=TIMERS)
    )
    text, _ = await streamed(gateway, sdk)
    assert text == FULL
    assert received(mock_upstream) == [late]  # no second call: free tiers' quota is spent
    assert RoutingSettings().hedge is False


def test_a_race_starts_at_a_margin_over_the_models_usual_first_byte() -> None:
    routing = RoutingSettings(hedge=True, hedge_margin=1.5, hedge_min_s=1.0)
    timers = LearnedTimers(TimerPolicy(min_samples=2))
    # No history: half the first-byte timeout.
    assert hedge_after_s(routing, timers, "m", 10.0) == 5.0
    for seconds in (2.0, 2.0, 2.0):
        timers.observe("m", first_byte_s=seconds, max_gap_s=None)
    assert hedge_after_s(routing, timers, "m", 10.0) == pytest.approx(3.0)
    # Never sooner than hedge_min_s, however fast the model usually is.
    for _ in range(8):
        timers.observe("fast", first_byte_s=0.1, max_gap_s=None)
    assert hedge_after_s(routing, timers, "fast", 10.0) == 1.0
    # A race that would start only when the timeout fires is no race.
    assert hedge_after_s(routing, timers, "m", 3.0) is None
    assert hedge_after_s(RoutingSettings(), timers, "m", 10.0) is None  # hedging off
