"""A broken answer is repaired by default (issue 11): through the `openai` SDK, the mock behind.

No test here sets `continuation` in the config: the default (`auto`) must do it. The mock's
models answer a continuation as the `continue=` parameter says (scripts/mock_continuation.py);
its full answer to "hi" is `FULL`, whoever gives it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from scripts.mock_upstream import RECEIVED
from tests.conftest import GatewayFactory, SdkFactory
from tests.factories import API_KEY, make_settings, model, start_gateway
from tests.logged import logged
from tests.test_streaming_faults import raw_stream, text_of
from tui_gateway.server import Gateway

FULL = "lorem ipsum dolor sit amet consectetur adipiscing elit"
TIMERS = {"first_byte_timeout_s": 2.0, "stall_timeout_s": 0.3, "heartbeat_interval_s": 5.0}
HELLO = [{"role": "user", "content": "hi"}]


async def streamed(gateway: Gateway, sdk: SdkFactory, **extra: Any) -> tuple[str, list[Any]]:
    stream = await sdk(gateway).chat.completions.create(
        model="auto", messages=HELLO, stream=True, **extra
    )
    chunks = [c async for c in stream]
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices), chunks


def styles(mock: TestServer) -> list[str | None]:
    return [r.continuation for r in mock.app[RECEIVED]]


@pytest.mark.parametrize(
    "breaks", ["cut:chunks=3", "stall-after-first:after=3", "drop-mid-stream:after=3"]
)
async def test_a_broken_answer_is_continued_by_prefill_by_default(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str, mock_upstream: TestServer,
    breaks: str,
) -> None:  # fmt: skip
    gateway = await gateway_factory(
        make_settings(mock_url, [model("mock", breaks), model("mock", "ok")], streaming=TIMERS)
    )
    text, chunks = await streamed(gateway, sdk)
    assert text == FULL
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert len({c.id for c in chunks}) == 1
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.role) == 1
    assert styles(mock_upstream) == [None, "prefill"]
    [row] = await logged(gateway.request_log)
    assert row.status == 200 and row.error_kind is None
    assert [a.text_from for a in row.attempts] == [None, len("lorem ipsum dolor")]


async def test_a_model_that_refuses_a_prefill_is_instructed_and_remembered(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str, mock_upstream: TestServer,
    tmp_path: Path,
) -> None:  # fmt: skip
    settings = make_settings(
        mock_url,
        [model("mock", "cut:chunks=3"), model("mock", "ok:prefill=refuse")],
        streaming=TIMERS,
    )
    gateway = await start_gateway(settings, tmp_path / "log.db")
    try:
        text, _ = await streamed(gateway, sdk)
        assert text == FULL
        # The prefill was refused with a 400, then the same model continued by instruction.
        assert styles(mock_upstream) == [None, "prefill", "instruct"]
        [entry] = [e for e in gateway.state.pools()["balanced"] if e.id == "ok:prefill=refuse"]
        assert entry.prefill_refused and entry.continuation == "instruct"
        [row] = await logged(gateway.request_log)
        assert [a.error_kind for a in row.attempts] == ["truncated", "rejected", None]
        # A refusal is not the model's failure: its posterior is not charged for it.
        assert gateway.state.snapshot().posteriors["mock/ok:prefill=refuse"].failures == 0
    finally:
        await gateway.stop()
    again = await start_gateway(settings, tmp_path / "log.db")
    try:
        assert "mock/ok:prefill=refuse" in again.state.learner.prefill_refused
        text, _ = await streamed(again, sdk)
        assert text == FULL
        assert styles(mock_upstream)[3:] == [None, "instruct"]  # not asked to prefill again
    finally:
        await again.stop()


@pytest.mark.parametrize("mode", ["restart", "repeat-word", "repeat-sentence"])
async def test_a_continuation_that_repeats_itself_is_joined_without_duplicates(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str, mode: str
) -> None:
    gateway = await gateway_factory(
        make_settings(
            mock_url,
            [model("mock", "cut:chunks=3"), model("mock", f"ok:continue={mode}")],
            streaming=TIMERS,
        )
    )
    text, chunks = await streamed(gateway, sdk)
    assert text == FULL
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_a_continuation_that_cannot_be_joined_ends_with_the_original_failure(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(
        make_settings(
            mock_url,
            [model("mock", "stall-after-first:after=3"), model("mock", "ok:continue=diverge")],
            streaming=TIMERS,
        )
    )
    status, lines = await raw_stream(gateway)
    assert status == 200 and lines[-1] == "data: [DONE]"
    error = lines[-2]
    assert '"stream_timeout"' in error and '"stall"' in error  # the failure that broke it
    assert text_of(lines) == "lorem ipsum dolor", "what was sent, and nothing of the other text"
    [row] = await logged(gateway.request_log)
    assert row.error_kind == "stall"
    assert [a.error_kind for a in row.attempts] == ["stall", "unaligned"]


async def test_usage_and_the_serving_model_are_reported_once(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(
        make_settings(mock_url, [model("mock", "cut:chunks=3"), model("mock", "ok")],
                      streaming=TIMERS)
    )  # fmt: skip
    text, chunks = await streamed(gateway, sdk, stream_options={"include_usage": True})
    assert text == FULL
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1 and usage[0].prompt_tokens > 0
    # The usage covers the whole answer: 3 chunks before the cut (a token each) and the 5 tokens
    # the continuation reported.
    assert usage[0].completion_tokens == 8
    assert usage[0].total_tokens == usage[0].prompt_tokens + 8
    [row] = await logged(gateway.request_log)
    assert row.tokens_out == 8
    assert row.model == "mock/ok" and [a.model for a in row.attempts] == [
        "mock/cut:chunks=3",
        "mock/ok",
    ]


async def test_the_messages_door_is_repaired_by_the_same_code(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    from anthropic import AsyncAnthropic

    gateway = await gateway_factory(
        make_settings(
            mock_url,
            [model("mock", "stall-after-first:after=3"), model("mock", "ok:continue=restart")],
            streaming=TIMERS,
        )
    )
    base = gateway.base_url.removesuffix("/v1")
    async with AsyncAnthropic(base_url=base, api_key=API_KEY, max_retries=0) as claude:
        body = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": HELLO}
        async with claude.messages.stream(**body) as stream:  # type: ignore[arg-type]
            message = await stream.get_final_message()
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == FULL  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"


async def test_the_responses_door_is_repaired_by_the_same_code(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(
        make_settings(
            mock_url,
            [model("mock", "drop-mid-stream:after=3"), model("mock", "ok:continue=repeat-word")],
            streaming=TIMERS,
        )
    )
    async with sdk(gateway).responses.stream(model="auto", input="hi") as stream:
        events = [e.type async for e in stream]
        response = await stream.get_final_response()
    assert response.output_text == FULL and response.status == "completed"
    assert events.count("response.created") == 1 and "error" not in events


READ_FILE = {
    "type": "function",
    "function": {
        "name": "read_file",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
    },
}


async def test_a_stall_in_the_middle_of_tool_call_arguments_yields_one_whole_valid_call(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(
        make_settings(
            mock_url,
            [model("mock", "tool-call:fragments=4,stall_after=3"), model("mock", "tool-call")],
            streaming=TIMERS,
        )
    )
    _, chunks = await streamed(gateway, sdk, tools=[READ_FILE])
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ()]
    assert len(calls) == 1, "the half-sent call never reached the client; the new one did, whole"
    assert calls[0].function.name == "read_file" and calls[0].index == 0
    assert json.loads(calls[0].function.arguments) == {"path": "README.md"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert len({c.id for c in chunks}) == 1


async def test_a_fast_model_that_goes_quiet_is_left_long_before_the_configured_stall_timeout(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str
) -> None:
    stalling = "stall-after-first:after=3"
    gateway = await gateway_factory(
        make_settings(
            mock_url,
            [model("mock", stalling), model("mock", "ok")],
            streaming={"first_byte_timeout_s": 20, "stall_timeout_s": 20},
        )
    )
    for _ in range(10):  # what its earlier answers taught: it never pauses longer than 50 ms
        gateway.state.timers.observe(f"mock/{stalling}", first_byte_s=0.2, max_gap_s=0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    text, _ = await streamed(gateway, sdk)
    assert text == FULL
    assert loop.time() - started < 10, "the learned 2 s, not the configured 20 s"
    [row] = await logged(gateway.request_log)
    stalled = row.attempts[0]
    assert stalled.error_kind == "stall"
    assert (
        stalled.error == "no data for 2 s between chunks; this model's usual longest gap is 0.05 s"
    )


async def test_a_client_that_leaves_during_a_continuation_leaves_one_row_and_nothing_active(
    gateway_factory: GatewayFactory, mock_url: str, mock_upstream: TestServer
) -> None:
    gateway = await gateway_factory(
        make_settings(
            mock_url,
            [
                model("mock", "stall-after-first:after=3"),
                model("mock", "ok:chunks=200,delay_ms=20"),
            ],
            streaming=TIMERS,
        )
    )
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        resp = await http.post(
            gateway.base_url + "/chat/completions",
            json={"model": "auto", "messages": HELLO, "stream": True},
        )
        async with asyncio.timeout(10):
            while len(mock_upstream.app[RECEIVED]) < 2:  # the continuation is under way
                await resp.content.readline()
            await resp.content.readline()
        resp.close()  # the client walks away in the middle of the continuation
    async with asyncio.timeout(5):
        while gateway.state.active:
            await asyncio.sleep(0.01)
        while not mock_upstream.app[RECEIVED][1].disconnected:
            await asyncio.sleep(0.01)
    [row] = await logged(gateway.request_log)
    assert row.error_kind == "client_closed"
    assert [a.error_kind for a in row.attempts] == ["stall", "client_closed"]


async def test_an_unaligned_ending_leaves_one_row_and_nothing_active(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(
        make_settings(
            mock_url,
            [model("mock", "cut:chunks=3"), model("mock", "ok:continue=diverge")],
            streaming=TIMERS,
        )
    )
    status, _ = await raw_stream(gateway)
    assert status == 200 and gateway.state.active == {}
    [row] = await logged(gateway.request_log)
    assert [a.error_kind for a in row.attempts] == ["truncated", "unaligned"]
