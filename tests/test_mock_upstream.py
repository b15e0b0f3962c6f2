"""The mock upstream speaks OpenAI well enough for the official SDK, and fails on demand."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeAlias

import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam
from pytest_aiohttp import AiohttpClient

from scripts.mock_upstream import RECEIVED, make_app, parse_model

Client: TypeAlias = "TestClient[web.Request, web.Application]"
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "say something"}]


@pytest.fixture
async def client(aiohttp_client: AiohttpClient) -> Client:
    return await aiohttp_client(make_app())


@pytest.fixture
async def sdk(client: Client) -> AsyncIterator[openai.AsyncOpenAI]:
    base_url = str(client.make_url("/v1"))
    async with openai.AsyncOpenAI(base_url=base_url, api_key="test-key", max_retries=0) as sdk:
        yield sdk


async def _wait_for(predicate: Callable[[], bool], timeout: float = 1.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition never became true"
        await asyncio.sleep(0.01)


def test_model_string_carries_scenario_and_params() -> None:
    assert parse_model("ok") == ("ok", {})
    assert parse_model("ok:chunks=50,text=hi") == ("ok", {"chunks": "50", "text": "hi"})


async def test_ok_non_stream_works_with_openai_sdk(sdk: openai.AsyncOpenAI, client: Client) -> None:
    reply = await sdk.chat.completions.create(model="ok:chunks=3", messages=MESSAGES)
    assert reply.choices[0].message.content == "lorem ipsum dolor"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model == "ok:chunks=3"
    assert reply.usage is not None and reply.usage.completion_tokens == 3
    [record] = client.app[RECEIVED]
    assert (record.model, record.stream) == ("ok:chunks=3", False)
    assert record.headers["Authorization"] == "Bearer test-key"


async def test_ok_stream_works_with_openai_sdk_and_reports_usage(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.chat.completions.create(
        model="ok:chunks=4,text=hey",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "hey hey hey hey"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4


async def test_error_429_sends_retry_after_and_rate_limit_code(client: Client) -> None:
    resp = await client.post("/v1/chat/completions", json={"model": "error-429:retry_after=7"})
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "7"
    assert (await resp.json())["error"]["code"] == "rate_limit_exceeded"


async def test_context_length_is_a_400_the_sdk_understands(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk.chat.completions.create(model="context-length", messages=MESSAGES)
    assert caught.value.code == "context_length_exceeded"


async def test_wrapped_error_is_http_200_with_error_body(client: Client) -> None:
    resp = await client.post("/v1/chat/completions", json={"model": "wrapped-error"})
    assert resp.status == 200
    assert (await resp.json())["error"]["code"] == 503


async def test_wrapped_error_stream_raises_in_sdk_after_good_chunks(
    sdk: openai.AsyncOpenAI,
) -> None:
    stream = await sdk.chat.completions.create(
        model="wrapped-error:after=2",
        messages=MESSAGES,
        stream=True,
    )
    seen = []
    with pytest.raises(openai.APIError, match="provider returned error"):
        async for chunk in stream:
            seen.append(chunk)
    assert len(seen) == 2


async def test_drop_mid_stream_raises_on_the_client_after_some_chunks(
    sdk: openai.AsyncOpenAI,
) -> None:
    stream = await sdk.chat.completions.create(
        model="drop-mid-stream:after=2",
        messages=MESSAGES,
        stream=True,
    )
    seen = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            seen.append(chunk)
    assert len(seen) == 2


async def test_stall_after_first_sends_one_chunk_then_hangs(client: Client) -> None:
    body = {"model": "stall-after-first:ms=5000", "stream": True}
    resp = await client.post("/v1/chat/completions", json=body)
    first = await resp.content.readuntil(b"\n\n")
    assert json.loads(first.removeprefix(b"data: "))["choices"][0]["delta"]["content"] == "lorem"
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(resp.content.readany(), timeout=0.15)
    resp.close()
    [record] = client.app[RECEIVED]
    await _wait_for(lambda: record.disconnected)


async def test_stall_before_first_times_out_the_client(
    sdk: openai.AsyncOpenAI, client: Client
) -> None:
    with pytest.raises(openai.APITimeoutError):
        await sdk.chat.completions.create(
            model="stall-before-first:ms=5000",
            messages=MESSAGES,
            timeout=0.15,
        )
    [record] = client.app[RECEIVED]
    await _wait_for(lambda: record.disconnected)


@pytest.mark.parametrize(("model", "has_stop"), [("no-done", True), ("cut", False)])
async def test_truncated_streams_end_without_done(
    client: Client, model: str, has_stop: bool
) -> None:
    resp = await client.post("/v1/chat/completions", json={"model": model, "stream": True})
    text = await resp.text()
    assert resp.status == 200
    assert "[DONE]" not in text
    assert ('"finish_reason":"stop"' in text) is has_stop


async def test_stats_count_requests_per_model(client: Client) -> None:
    for model in ("ok", "ok", "error-503"):
        async with client.post("/v1/chat/completions", json={"model": model}) as resp:
            await resp.read()
    stats = await (await client.get("/mock/stats")).json()
    assert stats["requests"] == {"ok": 2, "error-503": 1}
    assert stats["total"] == 3


READ_TOOL: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "read_file",
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string"}},
            "required": ["path"],
        },
    },
}


async def _events(client: Client, body: dict[str, Any]) -> list[Any]:
    """The JSON of each `data:` event of a streamed reply, `[DONE]` kept as the string."""
    resp = await client.post("/v1/chat/completions", json={"stream": True, **body})
    assert resp.status == 200
    events: list[Any] = []
    for block in (await resp.text()).split("\n\n"):
        if block.startswith("data: "):
            data = block.removeprefix("data: ")
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def _tool_deltas(events: list[Any]) -> list[dict[str, Any]]:
    return [
        call
        for event in events
        if isinstance(event, dict) and event["choices"]
        for call in event["choices"][0]["delta"].get("tool_calls") or ()
    ]


async def test_tool_call_stream_fragments_concatenate_to_the_args(client: Client) -> None:
    args = {"path": "docs/a.md", "limit": 5}
    encoded = json.dumps(args).replace(",", "%2C")
    events = await _events(
        client,
        {
            "model": f"tool-call:fragments=4,args={encoded}",
            "messages": MESSAGES,
            "tools": [READ_TOOL],
        },
    )
    assert events[-1] == "[DONE]"
    first = events[0]["choices"][0]["delta"]
    assert first["role"] == "assistant" and first["content"] is None
    head, *fragments = _tool_deltas(events)
    assert head["index"] == 0 and head["type"] == "function"
    assert head["id"].startswith("call_")
    assert head["function"] == {"name": "read_file", "arguments": ""}
    assert len(fragments) == 4
    assert all(set(f) == {"index", "function"} and f["index"] == 0 for f in fragments)
    assert json.loads("".join(f["function"]["arguments"] for f in fragments)) == args
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"


async def test_tool_call_streams_parallel_calls_one_after_another(
    client: Client, sdk: openai.AsyncOpenAI
) -> None:
    events = await _events(client, {"model": "tool-call:calls=2,fragments=2", "messages": MESSAGES})
    assert [d["index"] for d in _tool_deltas(events)] == [0, 0, 0, 1, 1, 1]
    # The SDK's own accumulation sees two whole calls with distinct ids.
    stream = await sdk.chat.completions.create(
        model="tool-call:calls=2", messages=MESSAGES, stream=True
    )
    calls: dict[int, dict[str, str]] = {}
    async for chunk in stream:
        deltas = (chunk.choices[0].delta.tool_calls if chunk.choices else None) or []
        for delta in deltas:
            call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            assert delta.function is not None
            call["id"] += delta.id or ""
            call["name"] += delta.function.name or ""
            call["arguments"] += delta.function.arguments or ""
    assert sorted(calls) == [0, 1]
    assert calls[0]["id"] != calls[1]["id"]
    for call in calls.values():
        assert call["name"] == "get_weather"
        assert json.loads(call["arguments"]) == {"path": "README.md"}


async def test_tool_call_non_stream_returns_whole_calls(sdk: openai.AsyncOpenAI) -> None:
    reply = await sdk.chat.completions.create(
        model="tool-call:calls=2,text=let me look", messages=MESSAGES, tools=[READ_TOOL]
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "let me look"
    calls = choice.message.tool_calls or []
    assert len(calls) == 2 and calls[0].id != calls[1].id
    for call in calls:
        assert call.type == "function"
        assert call.function.name == "read_file"
        assert json.loads(call.function.arguments) == {"path": "README.md"}


async def test_tool_call_content_is_null_without_text(client: Client) -> None:
    resp = await client.post("/v1/chat/completions", json={"model": "tool-call:name=grep"})
    message = (await resp.json())["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"][0]["function"]["name"] == "grep"


async def test_tool_call_answers_with_text_after_a_tool_result(sdk: openai.AsyncOpenAI) -> None:
    messages: list[ChatCompletionMessageParam] = [
        *MESSAGES,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_0_0",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path": "README.md"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_0_0", "content": "# tui-gateway"},
    ]
    reply = await sdk.chat.completions.create(
        model="tool-call", messages=messages, tools=[READ_TOOL]
    )
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.tool_calls is None
    assert "tool result received" in (reply.choices[0].message.content or "")
    stream = await sdk.chat.completions.create(model="tool-call", messages=messages, stream=True)
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "tool result received" in text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


async def test_tool_call_stream_ends_with_usage_when_asked(client: Client) -> None:
    events = await _events(
        client,
        {
            "model": "tool-call",
            "messages": MESSAGES,
            "stream_options": {"include_usage": True},
        },
    )
    *_, stop, usage, done = events
    assert stop["choices"][0]["finish_reason"] == "tool_calls"
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] > 0
    assert usage["usage"]["total_tokens"] == (
        usage["usage"]["prompt_tokens"] + usage["usage"]["completion_tokens"]
    )
    assert done == "[DONE]"


async def test_tool_call_ids_differ_between_requests(client: Client) -> None:
    ids = []
    for _ in range(2):
        resp = await client.post("/v1/chat/completions", json={"model": "tool-call"})
        ids.append((await resp.json())["choices"][0]["message"]["tool_calls"][0]["id"])
    assert ids[0] != ids[1]


async def test_tool_call_args_that_are_not_an_object_are_a_400(client: Client) -> None:
    resp = await client.post("/v1/chat/completions", json={"model": "tool-call:args=[1]"})
    assert resp.status == 400
    assert "%2C" in (await resp.json())["error"]["message"]
