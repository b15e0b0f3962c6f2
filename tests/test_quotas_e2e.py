"""Quotas (`limits`, issue 13) end to end: routing stays under them, before any 429.

Through the `openai` and `anthropic` SDKs with the mock upstream behind. The gateway runs on a
fake clock, so a minute's window moves only when a test moves it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from aiohttp.test_utils import TestServer

from scripts.mock_upstream import RECEIVED
from tests.factories import API_KEY, FakeClock, make_settings, model, start_gateway
from tests.logged import logged
from tui_gateway.config import Settings
from tui_gateway.server import Gateway

FIRST, SECOND = "ok:chunks=3", "ok:chunks=4"


def limited(
    mock_url: str, *, keys: int = 1, rpm: int = 5, first: str = FIRST, **routing: Any
) -> Settings:
    """`first` limited to `rpm` requests a minute per key, then an unlimited `SECOND`."""
    provider = {
        "name": "mock",
        "kind": "openai",
        "base_url": mock_url,
        "api_keys": [f"k{n}" for n in range(1, keys + 1)],
    }
    models = [model("mock", first, limits={"rpm": rpm}), model("mock", SECOND)]
    return make_settings(mock_url, models, providers=[provider], routing=routing)


def client(gateway: Gateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.base_url, api_key=API_KEY, max_retries=0)


async def ask(sdk: openai.AsyncOpenAI, n: int, *, stream: bool = False) -> str:
    """One quick request of a conversation of its own; returns the upstream model id that
    answered (the mock's reply names it)."""
    messages: Any = [{"role": "user", "content": f"question {n}"}]
    if not stream:
        reply = await sdk.chat.completions.create(model="auto", messages=messages)
        return reply.model
    chunks = [
        c
        async for c in await sdk.chat.completions.create(
            model="auto", messages=messages, stream=True
        )
    ]
    assert chunks[-1].choices == [] or chunks[-1].choices[0].finish_reason == "stop"
    return chunks[0].model


def received(mock: TestServer) -> list[str]:
    return [r.model for r in mock.app[RECEIVED]]


@pytest.fixture
async def started(tmp_path: Path) -> Any:
    """Start gateways on a fake clock; every one is stopped at the end."""
    gateways: list[Gateway] = []

    async def start(settings: Settings, clock: FakeClock, name: str = "quota") -> Gateway:
        gateway = await start_gateway(settings, tmp_path / f"{name}.db", clock)
        gateways.append(gateway)
        return gateway

    yield start
    for gateway in gateways:
        await gateway.stop()


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_a_model_at_5_rpm_serves_5_of_8_and_the_next_model_the_rest(
    started: Any, mock_url: str, mock_upstream: TestServer, stream: bool
) -> None:
    clock = FakeClock()
    gateway = await started(limited(mock_url), clock)
    sdk = client(gateway)
    try:
        served = [await ask(sdk, n, stream=stream) for n in range(8)]
    finally:
        await sdk.close()
    # The mock saw exactly 5 requests for the limited model: no 429 was needed to find out.
    assert received(mock_upstream) == [FIRST] * 5 + [SECOND] * 3
    assert served == [FIRST] * 5 + [SECOND] * 3
    rows = await logged(gateway.request_log)
    assert [r.status for r in rows] == [200] * 8
    assert all(a.error_kind is None for r in rows for a in r.attempts)
    [view] = gateway.state.quotas.views(clock())
    assert [(w.name, w.used, w.limit) for w in view.windows] == [("rpm", 5, 5)]
    # The request's record says the limited model was passed over for its quota.
    flows = [gateway.state.flows.find(r.id) for r in rows]
    passed = [f.passed_over for f in flows if f is not None and f.passed_over]
    assert len(passed) == 3
    assert all(p[0].startswith(f"mock/{FIRST}: at its quota (rpm 5/5 on mock#1)") for p in passed)
    # A minute later the window has freed: the limited model serves again.
    clock.advance(61)
    sdk = client(gateway)
    try:
        assert await ask(sdk, 9) == FIRST
    finally:
        await sdk.close()


async def test_a_second_key_doubles_the_allowance(
    started: Any, mock_url: str, mock_upstream: TestServer
) -> None:
    gateway = await started(limited(mock_url, keys=2), FakeClock())
    sdk = client(gateway)
    try:
        served = [await ask(sdk, n) for n in range(12)]
    finally:
        await sdk.close()
    assert served.count(FIRST) == 10
    assert served[10:] == [SECOND] * 2
    keys = {r.headers["Authorization"] for r in mock_upstream.app[RECEIVED] if r.model == FIRST}
    assert keys == {"Bearer k1", "Bearer k2"}, "both keys took their share"


async def test_a_429_under_the_limit_lowers_it_and_charges_no_posterior(
    started: Any, mock_url: str, mock_upstream: TestServer
) -> None:
    """The provider refuses under the configured 5 rpm: the key's limit drops to what it had
    taken, the request goes on to the next model, the key is not asked again while it waits,
    and the model's statistics are not charged for a spent quota."""
    clock = FakeClock()
    refusing = "error-429:retry_after=30"
    gateway = await started(limited(mock_url, first=refusing, rpm=5), clock)
    sdk = client(gateway)
    try:
        assert await ask(sdk, 1) == SECOND  # the 429 was not the client's problem
        assert await ask(sdk, 2) == SECOND
    finally:
        await sdk.close()
    assert received(mock_upstream) == [refusing, SECOND, SECOND]
    [view] = gateway.state.quotas.views(clock())
    [rpm] = view.windows
    assert rpm.lowered and rpm.limit == 1 and rpm.configured == 5
    posterior = gateway.state.snapshot().posteriors[f"mock/{refusing}"]
    assert posterior.failures == 0
    rows = await logged(gateway.request_log)
    assert sorted(str(a.error_kind) for r in rows for a in r.attempts) == ["None", "None", "quota"]
    [refused] = [r for r in rows if len(r.attempts) == 2]
    flow = gateway.state.flows.find(refused.id)
    assert flow is not None
    assert any("rpm lowered to 1 (a 429 under the configured 5)" in d for d in flow.decisions)


async def test_with_every_model_at_its_quota_the_client_gets_a_429_with_retry_after(
    started: Any, mock_url: str, mock_upstream: TestServer
) -> None:
    provider = {"name": "mock", "kind": "openai", "base_url": mock_url, "api_keys": ["k1"]}
    models = [model("mock", FIRST, limits={"rpm": 1, "rpd": 1})]
    settings = make_settings(mock_url, models, providers=[provider])
    gateway = await started(settings, FakeClock())
    sdk = client(gateway)
    try:
        assert await ask(sdk, 0) == FIRST
        with pytest.raises(openai.RateLimitError) as caught:
            await ask(sdk, 1)
    finally:
        await sdk.close()
    assert caught.value.status_code == 429
    retry_after = int(caught.value.response.headers["Retry-After"])
    # The day's request is spent: back within a day (and its last bucket of a minute).
    assert 3600 < retry_after <= 86_400 + 60
    assert "at its quota" in caught.value.message
    assert received(mock_upstream) == [FIRST], "nothing was sent to find out"
    anthropic_sdk = anthropic.AsyncAnthropic(
        base_url=gateway.base_url.removesuffix("/v1"), api_key=API_KEY, max_retries=0
    )
    try:
        with pytest.raises(anthropic.RateLimitError) as refused:
            await anthropic_sdk.messages.create(
                model="auto", max_tokens=10, messages=[{"role": "user", "content": "again"}]
            )
    finally:
        await anthropic_sdk.close()
    assert refused.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    rows = await logged(gateway.request_log)
    assert sorted(r.status for r in rows) == [200, 429, 429]
    assert all(r.error_kind == "quota" for r in rows if r.status == 429)


async def test_a_quota_about_to_free_is_waited_for(
    started: Any, mock_url: str, mock_upstream: TestServer
) -> None:
    """Nothing else left and the window frees within `max_quota_wait_s`: wait, then send."""
    clock = RunningClock()
    provider = {"name": "mock", "kind": "openai", "base_url": mock_url, "api_keys": ["k1"]}
    models = [model("mock", FIRST, limits={"rpm": 1})]
    settings = make_settings(mock_url, models, providers=[provider])
    gateway = await started(settings, clock)
    sdk = client(gateway)
    try:
        await ask(sdk, 0)
        now = clock()
        frees = gateway.state.available_at(f"mock/{FIRST}", now)
        clock.advance(frees - now - 0.3)  # the minute's request leaves the window in 0.3 s
        assert await ask(sdk, 1) == FIRST
        assert clock() >= frees
    finally:
        await sdk.close()
    assert received(mock_upstream) == [FIRST, FIRST]


class RunningClock(FakeClock):
    """Real time, moved on by hand: a wait for the window takes real time, the minute not."""

    def __init__(self) -> None:
        super().__init__(0.0)

    def __call__(self) -> float:
        return time.time() + self.now


async def test_a_restart_within_the_minute_keeps_the_count(
    started: Any, mock_url: str, mock_upstream: TestServer
) -> None:
    """3 of the 5 a minute are used, the gateway restarts on the same database: only 2 more
    go to the limited model."""
    clock = FakeClock()
    settings = limited(mock_url)
    first = await started(settings, clock, name="kept")
    sdk = client(first)
    try:
        assert [await ask(sdk, n) for n in range(3)] == [FIRST] * 3
    finally:
        await sdk.close()
    await first.stop()
    clock.advance(20)  # still within the minute
    again = await started(settings, clock, name="kept")
    sdk = client(again)
    try:
        served = [await ask(sdk, n) for n in range(3, 8)]
    finally:
        await sdk.close()
    assert served == [FIRST] * 2 + [SECOND] * 3
    assert received(mock_upstream).count(FIRST) == 5


async def test_the_429_names_each_model_at_its_quota_once(
    started: Any, mock_url: str, mock_upstream: TestServer
) -> None:
    provider = {"name": "mock", "kind": "openai", "base_url": mock_url, "api_keys": ["k1", "k2"]}
    models = [model("mock", name, limits={"rpm": 1}) for name in (FIRST, SECOND, "ok:chunks=5")]
    gateway = await started(make_settings(mock_url, models, providers=[provider]), FakeClock())
    sdk = client(gateway)
    try:
        assert len({await ask(sdk, n) for n in range(6)}) == 3  # each model once on each key
        with pytest.raises(openai.RateLimitError) as caught:
            await ask(sdk, 6)
    finally:
        await sdk.close()
    message = caught.value.message
    for name in (FIRST, SECOND, "ok:chunks=5"):
        assert (
            message.count(f"mock/{name}: at its quota (rpm 1/1 on mock#1, rpm 1/1 on mock#2)") == 1
        )


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_a_refusal_at_quota_and_a_client_gone_during_the_wait_each_leave_one_row(
    started: Any, mock_url: str, mock_upstream: TestServer, stream: bool
) -> None:
    """The exit paths quotas add: a 429 with nothing sent, and a client that leaves while its
    request waits for a window. Each ends in one logged row, nothing in flight, and the
    second spends none of the quota (nothing is sent for a client that is gone)."""
    import asyncio

    import aiohttp

    clock = RunningClock()
    provider = {"name": "mock", "kind": "openai", "base_url": mock_url, "api_keys": ["k1"]}
    settings = make_settings(
        mock_url, [model("mock", FIRST, limits={"rpm": 1})], providers=[provider],
        routing={"max_quota_wait_s": 120},
    )  # fmt: skip
    gateway = await started(settings, clock)
    body = {"model": "auto", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    url, auth = gateway.base_url + "/chat/completions", {"Authorization": f"Bearer {API_KEY}"}
    async with aiohttp.ClientSession(headers=auth) as http:
        async with http.post(url, json=body) as served:
            assert served.status == 200
            await served.read()
        # The window frees in a minute: the next request waits; its client gives up at once.
        with pytest.raises(asyncio.TimeoutError):
            async with http.post(url, json=body, timeout=aiohttp.ClientTimeout(total=0.3)) as r:
                await r.read()
        clock.advance(61)  # the window frees while the request still waits
        for _ in range(100):
            if not gateway.state.active:
                break
            await asyncio.sleep(0.05)
    assert gateway.state.active == {}
    rows = await logged(gateway.request_log)
    assert sorted(r.status for r in rows) == [200, 499]
    assert received(mock_upstream) == [FIRST], "nothing sent for the client that left"
