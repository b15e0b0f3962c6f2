"""The rest of the seed's surface (issue 14): `GET /v1/models/{id}` and `X-Fallback-Trail`.

Through the official `openai` SDK and aiohttp's client, with the mock upstream behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp.test_utils import TestServer

from tests.factories import API_KEY, make_settings, model, start_gateway
from tui_gateway.server import Gateway

AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
async def gateway(tmp_path: Path, mock_url: str) -> Any:
    models = [
        model("mock", "error-500"),
        model("mock", "stall-before-first:ms=60000"),
        model("mock", "ok:chunks=3"),
    ]
    routing = {"max_attempts": 5}
    streaming = {"first_byte_timeout_s": 0.3}
    settings = make_settings(mock_url, models, routing=routing, streaming=streaming)
    started = await start_gateway(settings, tmp_path / "surface.db")
    yield started
    await started.stop()


async def test_one_model_by_id_with_its_slashes(gateway: Gateway) -> None:
    sdk = openai.AsyncOpenAI(base_url=gateway.base_url, api_key=API_KEY, max_retries=0)
    try:
        found = await sdk.models.retrieve("mock/ok:chunks=3")
        virtual = await sdk.models.retrieve("auto")
        with pytest.raises(openai.NotFoundError) as missing:
            await sdk.models.retrieve("mock/not-configured")
    finally:
        await sdk.close()
    assert (found.id, found.owned_by, found.object) == ("mock/ok:chunks=3", "mock", "model")
    assert virtual.id == "auto"
    error = missing.value.body
    assert isinstance(error, dict)
    assert error["code"] == "model_not_found" and "mock/not-configured" in error["message"]


async def test_a_banned_model_is_not_found_as_it_is_not_listed(gateway: Gateway) -> None:
    gateway.state.ban_model("mock/error-500")
    url = gateway.base_url + "/models/mock/error-500"
    async with aiohttp.ClientSession(headers=AUTH) as http, http.get(url) as response:
        assert response.status == 404
        assert (await response.json())["error"]["type"] == "invalid_request_error"


async def test_a_whole_answer_says_which_attempts_it_took(
    gateway: Gateway, mock_upstream: TestServer
) -> None:
    order = ["mock/error-500", "mock/ok:chunks=3"]
    body = {"model": "auto", "messages": [{"role": "user", "content": "trail please"}]}
    for name in order[::-1]:
        gateway.state.move_in_pool(name, -10)  # error-500 first, then ok
    gateway.state.ban_model("mock/stall-before-first:ms=60000")
    url = gateway.base_url + "/chat/completions"
    async with aiohttp.ClientSession(headers=AUTH) as http, http.post(url, json=body) as response:
        assert response.status == 200
        trail = response.headers["X-Fallback-Trail"]
    assert trail == "mock/error-500:5xx, mock/ok:chunks=3:ok"


async def test_a_stream_says_what_it_knew_when_it_started_and_the_detail_the_rest(
    gateway: Gateway, mock_upstream: TestServer
) -> None:
    for name in ["mock/ok:chunks=3", "mock/stall-before-first:ms=60000", "mock/error-500"]:
        gateway.state.move_in_pool(name, -10)  # error-500, then the stall, then ok
    body = {
        "model": "auto",
        "stream": True,
        "messages": [{"role": "user", "content": "a streamed trail"}],
    }
    url = gateway.base_url + "/chat/completions"
    async with aiohttp.ClientSession(headers=AUTH) as http, http.post(url, json=body) as response:
        trail = response.headers["X-Fallback-Trail"]
        request_id = response.headers["X-Request-Id"]
        events = [line async for line in response.content if line.startswith(b"data: {")]
    assert json.loads(events[-1][6:])["choices"][0]["finish_reason"] == "stop"
    # The headers go out with the first event, or a keep-alive before it: the attempts known
    # then, the last of them still under way.
    assert trail.startswith("mock/error-500:5xx, ")
    assert trail.endswith(":streaming")
    detail = gateway.state.find_request(request_id)
    assert detail is not None
    from tui_gateway.domain.records import fallback_trail

    assert fallback_trail(detail.attempts) == (
        "mock/error-500:5xx, mock/stall-before-first:ms=60000:timeout, mock/ok:chunks=3:ok"
    )
