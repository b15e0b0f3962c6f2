"""The mock upstream speaks OpenAI well enough for the official SDK, and fails on demand."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import TypeAlias

import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from openai.types.chat import ChatCompletionMessageParam
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
