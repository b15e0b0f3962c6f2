"""Issue 5: streams that never hang and never lie, through the openai SDK and raw SSE."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from scripts.mock_upstream import RECEIVED
from tests.conftest import GatewayFactory, SdkFactory
from tests.factories import API_KEY, make_settings, model
from tests.logged import logged
from tui_gateway.server import Gateway

HELLO = [{"role": "user", "content": "hello"}]
AUTH = {"Authorization": f"Bearer {API_KEY}"}
TIMERS = {"first_byte_timeout_s": 1.5, "stall_timeout_s": 0.4, "heartbeat_interval_s": 0.15}


def prefill_providers(mock_url: str) -> list[dict[str, Any]]:
    return [
        {
            "name": "mock",
            "kind": "openai",
            "base_url": mock_url,
            "api_keys": ["k"],
            "continuation": "prefill",
        }
    ]


async def raw_stream(gateway: Gateway, model: str = "auto") -> tuple[int, list[str]]:
    """Status and every SSE line (comments included) as the client receives them."""
    async with aiohttp.ClientSession(headers=AUTH) as session:
        async with session.post(
            gateway.base_url + "/chat/completions",
            json={"model": model, "messages": HELLO, "stream": True},
        ) as resp:
            lines = [line.decode().rstrip("\n") async for line in resp.content if line.strip()]
            return resp.status, lines


def text_of(lines: list[str]) -> str:
    parts = []
    for line in lines:
        if line.startswith("data: {"):
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices", ()):
                parts.append(choice.get("delta", {}).get("content") or "")
    return "".join(parts)


async def test_heartbeats_keep_a_slow_first_token_alive(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    settings = make_settings(
        mock_url, [model("mock", "ok:ttft_ms=700,chunks=3,text=late")], streaming=TIMERS
    )
    gateway = await gateway_factory(settings)
    status, lines = await raw_stream(gateway)
    assert status == 200
    first_data = next(i for i, line in enumerate(lines) if line.startswith("data:"))
    assert lines[:first_data] and all(line == ": keep-alive" for line in lines[:first_data])
    assert text_of(lines) == "late late late" and lines[-1] == "data: [DONE]"


async def test_a_stall_mid_answer_continues_on_a_model_that_takes_a_prefill(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str, mock_upstream: Any
) -> None:
    models = [
        model("mock", "stall-after-first:after=2,text=begun"),
        model("mock", "ok:chunks=2,text=done"),
    ]
    gateway = await gateway_factory(
        make_settings(providers=prefill_providers(mock_url), models=models, streaming=TIMERS)
    )
    stream = await sdk(gateway).chat.completions.create(model="auto", messages=HELLO, stream=True)
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("begun begun") and text.endswith("done done")
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert len({c.id for c in chunks}) == 1  # one answer, one id, though two models wrote it
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.role) == 1
    continued = mock_upstream.app[RECEIVED][-1]
    assert continued.body["messages"][-1] == {"role": "assistant", "content": "begun begun"}
    [row] = await logged(gateway.request_log)
    assert (
        row.status == 200 and row.error_kind is None and row.model == "mock/ok:chunks=2,text=done"
    )
    assert [a.error_kind for a in row.attempts] == ["stall", None]


async def test_a_cut_stream_continues_too(gateway_factory: GatewayFactory, mock_url: str) -> None:
    models = [
        model("mock", "drop-mid-stream:after=2,text=part"),
        model("mock", "ok:chunks=1,text=rest"),
    ]
    gateway = await gateway_factory(
        make_settings(providers=prefill_providers(mock_url), models=models, streaming=TIMERS)
    )
    status, lines = await raw_stream(gateway)
    assert status == 200 and text_of(lines) == "part partrest"
    assert not any('"error"' in line for line in lines)


async def test_an_event_that_never_ends_is_cut_off_and_the_answer_continues_elsewhere(
    gateway_factory: GatewayFactory, mock_url: str, mock_upstream: Any
) -> None:
    """The upstream sends one word, then an event with no end, 64 KB at a time as fast as it
    is read: held whole, it grew by gigabytes on the loop until the stall timer fired."""
    models = [model("mock", "endless-event"), model("mock", "ok")]
    gateway = await gateway_factory(
        make_settings(providers=prefill_providers(mock_url), models=models, streaming=TIMERS)
    )
    status, lines = await raw_stream(gateway)
    assert status == 200  # "lorem", then the rest of the answer from the next model
    assert text_of(lines) == "lorem ipsum dolor sit amet consectetur adipiscing elit"
    [row] = await logged(gateway.request_log)
    [cut, finished] = row.attempts
    assert (cut.error_kind, cut.error) == ("truncated", "the upstream sent an event of over 16 MB")
    assert finished.error_kind is None
    async with asyncio.timeout(5):  # and the endless one was hung up on
        while not mock_upstream.app[RECEIVED][0].disconnected:
            await asyncio.sleep(0.01)


async def test_when_nothing_can_continue_the_error_names_the_original_failure(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    models = [model("mock", "stall-after-first:after=2"), model("mock", "error-400")]
    gateway = await gateway_factory(
        make_settings(providers=prefill_providers(mock_url), models=models, streaming=TIMERS)
    )
    status, lines = await raw_stream(gateway)
    assert status == 200 and lines[-1] == "data: [DONE]"
    error = json.loads(lines[-2][6:])["error"]
    assert error["type"] == "stream_timeout" and error["code"] == "stall"  # not the prefill's 400
    assert not any(
        '"finish_reason": "stop"' in line or '"finish_reason":"stop"' in line for line in lines
    )
    # A 400 that does not say it is about the prefill is not taken for a refusal of one.
    assert gateway.state.learner.prefill_refused == {}


async def test_a_committed_stream_that_never_got_content_ends_with_an_error_event(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    streaming = {**TIMERS, "first_byte_timeout_s": 0.5}
    gateway = await gateway_factory(
        make_settings(mock_url, [model("mock", "stall-before-first")], streaming=streaming)
    )
    status, lines = await raw_stream(gateway)
    assert status == 200  # headers went out with the first heartbeat
    assert lines[0] == ": keep-alive" and lines[-1] == "data: [DONE]"
    assert json.loads(lines[-2][6:])["error"]["code"] == "upstream_timeout"
    assert gateway.state.active == {}
    # The log says what the client got: a 200, then the timeout in the stream (it said 504).
    await gateway.request_log.flush()
    [row] = await logged(gateway.request_log)
    assert (row.status, row.error_kind) == (200, "timeout")


async def test_a_client_gone_during_a_silent_upstream_aborts_it_at_once(
    gateway_factory: GatewayFactory, mock_url: str, mock_upstream: Any
) -> None:
    streaming = {**TIMERS, "first_byte_timeout_s": 30.0}
    gateway = await gateway_factory(
        make_settings(mock_url, [model("mock", "stall-before-first")], streaming=streaming)
    )
    async with aiohttp.ClientSession(headers=AUTH) as session:
        resp = await session.post(
            gateway.base_url + "/chat/completions",
            json={"model": "auto", "messages": HELLO, "stream": True},
        )
        assert (await resp.content.readline()).startswith(b": keep-alive")
        async with asyncio.timeout(5):  # the keep-alive does not wait for the upstream request
            while not mock_upstream.app[RECEIVED]:
                await asyncio.sleep(0.01)
        resp.close()
    for _ in range(100):
        if not gateway.state.active:
            break
        await asyncio.sleep(0.02)
    assert gateway.state.active == {}  # long before the 30 s first-byte timeout
    [row] = await logged(gateway.request_log)
    assert row.error_kind == "client_closed"
    [received] = mock_upstream.app[RECEIVED]
    for _ in range(100):
        if received.disconnected:
            break
        await asyncio.sleep(0.02)
    assert received.disconnected


async def test_a_malformed_event_is_dropped_and_the_stream_goes_on(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(
        make_settings(mock_url, [model("mock", "malformed:chunks=3,text=w")])
    )
    stream = await sdk(gateway).chat.completions.create(model="auto", messages=HELLO, stream=True)
    chunks = [c async for c in stream]  # the SDK would raise on the broken event
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "w w w"
    [row] = await logged(gateway.request_log)
    assert row.error_kind is None


async def test_usage_is_reported_when_asked_even_if_the_upstream_gives_none(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str
) -> None:
    models = [model("mock", "ok:usage=0,chunks=5"), model("mock", "ok:chunks=5", pool="fast")]
    gateway = await gateway_factory(make_settings(mock_url, models))
    client = sdk(gateway)
    for name, expected_completion in (("auto", 5), ("auto-fast", 5)):
        stream = await client.chat.completions.create(
            model=name, messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
        chunks = [c async for c in stream]
        usages = [c.usage for c in chunks if c.usage is not None]
        assert len(usages) == 1, name  # estimated when missing, never doubled when given
        assert usages[0].completion_tokens >= expected_completion
        assert chunks[-1].usage is not None and chunks[-1].choices == []


async def test_a_streamed_html_page_is_named_for_what_it_is(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(
        make_settings(mock_url, [model("mock", "html-200"), model("mock", "ok")])
    )
    status, lines = await raw_stream(gateway)
    assert status == 200 and lines[-1] == "data: [DONE]"
    [row] = await logged(gateway.request_log)
    assert row.attempts[0].error_kind == "wrapped"
    assert "text/html instead of an event stream" in (row.attempts[0].error or "")
