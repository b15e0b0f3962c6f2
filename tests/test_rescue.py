"""Moving a stuck request on by hand (issue 11): the admin API's skip, and bans, mid-stream.

Timers are long (30 s) so that only the user's action can move the request on; each test ends
in well under that, through the official `openai` SDK.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp.test_utils import TestServer

from scripts.mock_upstream import RECEIVED
from tests.conftest import GatewayFactory, SdkFactory
from tests.factories import API_KEY, make_settings, model
from tests.logged import logged
from tui_gateway.server import Gateway

LONG_TIMERS = {"first_byte_timeout_s": 30, "stall_timeout_s": 30, "heartbeat_interval_s": 15}
HELLO = [{"role": "user", "content": "hi"}]
STALLING = "mock/stall-after-first:after=2"


async def admin(gateway: Gateway, method: str, path: str) -> tuple[int, Any]:
    url = gateway.base_url.removesuffix("/v1") + path
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        async with http.request(method, url) as resp:
            return resp.status, await resp.json()


async def stalled_then(gateway: Gateway, sdk: SdkFactory, action: str) -> tuple[str, list[Any]]:
    """Stream a reply; once it has stalled after its first chunks, act; return what was read."""
    stream = await sdk(gateway).chat.completions.create(model="auto", messages=HELLO, stream=True)
    chunks = []
    async with asyncio.timeout(10):
        async for chunk in stream:
            chunks.append(chunk)
            if len(chunks) == 2:  # the stalling model's two chunks: it is silent from here
                [request_id] = gateway.state.active
                status, body = await admin(gateway, "POST", action.format(id=request_id))
                assert status == 200, body
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks


async def test_skip_moves_a_stalled_stream_on_and_the_answer_completes(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str, mock_upstream: TestServer
) -> None:
    gateway = await gateway_factory(
        make_settings(mock_url, [model("mock", STALLING[5:]), model("mock", "ok")],
                      streaming=LONG_TIMERS)
    )  # fmt: skip
    text, chunks = await stalled_then(gateway, sdk, "/gateway/requests/{id}/skip")
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert len({c.id for c in chunks}) == 1
    assert text == "lorem ipsum dolor sit amet consectetur adipiscing elit", "nothing twice"
    [row] = await logged(gateway.request_log)
    assert [(a.model, a.error_kind) for a in row.attempts] == [
        (STALLING, "skipped"),
        ("mock/ok", None),
    ]
    assert row.attempts[1].text_from == len("begun begun")
    # The skip says nothing about the model: no failure counted, no cooldown.
    assert gateway.state.snapshot().posteriors[STALLING].failures == 0
    assert gateway.state.snapshot().cooldowns == ()
    # Finished, the request can no longer be moved on, and its record no longer holds the relay.
    assert gateway.state.recent[-1].mover is None
    # The stalled attempt was closed upstream, not left hanging.
    async with asyncio.timeout(5):
        while not mock_upstream.app[RECEIVED][0].disconnected:
            await asyncio.sleep(0.01)


async def test_banning_the_model_moves_its_requests_on(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(
        make_settings(mock_url, [model("mock", STALLING[5:]), model("mock", "ok")],
                      streaming=LONG_TIMERS)
    )  # fmt: skip
    text, chunks = await stalled_then(gateway, sdk, f"/gateway/models/{STALLING}/ban")
    assert chunks[-1].choices[0].finish_reason == "stop"
    [row] = await logged(gateway.request_log)
    assert [a.error_kind for a in row.attempts] == ["skipped", None]


async def test_skip_of_a_request_not_in_flight_is_a_404_in_the_openai_shape(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok")]))
    status, body = await admin(gateway, "POST", "/gateway/requests/nope/skip")
    assert status == 404
    assert body["error"]["code"] == "request_not_found" and "nope" in body["error"]["message"]


async def test_skip_moves_a_waiting_non_streamed_request_to_the_next_model(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(
        make_settings(
            mock_url,
            [model("mock", "stall-before-first"), model("mock", "ok")],
            routing={"strategy": "ordered", "request_timeout_s": 60},
        )
    )
    reply = asyncio.create_task(sdk(gateway).chat.completions.create(model="auto", messages=HELLO))
    async with asyncio.timeout(10):
        while not gateway.state.active:
            await asyncio.sleep(0.01)
        [request_id] = gateway.state.active
        while (await admin(gateway, "POST", f"/gateway/requests/{request_id}/skip"))[0] == 409:
            await asyncio.sleep(0.01)  # between two attempts: nothing to cut yet
        answer = await reply
    assert answer.choices[0].message.content
    [row] = await logged(gateway.request_log)
    assert [a.error_kind for a in row.attempts] == ["skipped", None]


async def test_a_skip_during_a_retry_after_wait_ends_the_wait_and_no_later_attempt_is_a_skip(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str
) -> None:
    """The skip moves the request on from what it is doing, here its wait for a Retry-After.
    It stayed set after the wait, so a later attempt that timed out was logged as the user's
    skip: the model went unblamed (no cooldown) and the error read "moved on by the user"."""
    gateway = await gateway_factory(
        make_settings(
            mock_url,
            [model("mock", "error-429:retry_after=3"), model("mock", "stall-before-first")],
            routing={"strategy": "ordered", "request_timeout_s": 0.5, "max_retry_after_wait_s": 5},
        )  # fmt: skip
    )
    client = sdk(gateway).with_options(max_retries=0)
    named = "mock/error-429:retry_after=3"  # preferred: its Retry-After is waited for
    reply = asyncio.create_task(client.chat.completions.create(model=named, messages=HELLO))
    async with asyncio.timeout(10):
        while not any(flow.failures for flow in gateway.state.active.values()):
            await asyncio.sleep(0.01)  # the first 429 came: the request waits its 3 s
        [request_id] = gateway.state.active
        assert (await admin(gateway, "POST", f"/gateway/requests/{request_id}/skip"))[0] == 200
        with pytest.raises(openai.APIStatusError) as failed:
            await reply
    assert "no reply within 0.5 s" in failed.value.message
    [row] = await logged(gateway.request_log)
    assert [a.error_kind for a in row.attempts] == ["rate_limited", "rate_limited", "timeout"]
    assert row.latency_ms is not None and row.latency_ms < 2500  # the 3 s wait was cut short
    assert gateway.state.cooldowns.is_cooling("mock/stall-before-first", gateway.state.clock())
