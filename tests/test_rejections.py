"""Every request leaves a trace (issue 9): a refused one is counted, logged and shown once."""

from __future__ import annotations

import aiohttp
import openai
import pytest
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from tests.conftest import GatewayFactory, SdkFactory
from tests.factories import API_KEY, FakeClock, make_settings, model
from tests.logged import logged
from tui_gateway.domain.events import Event
from tui_gateway.domain.rejections import Rejections


def test_a_cause_gets_a_line_then_one_per_window_with_the_count() -> None:
    clock = FakeClock()
    rejections = Rejections(window_s=10.0)
    assert rejections.count("401 wrong key", clock()) == "401 wrong key"
    for _ in range(4):
        clock.advance(1.0)
        assert rejections.count("401 wrong key", clock()) is None
    assert rejections.count("404 /v1/nope", clock()) == "404 /v1/nope"  # causes are apart
    clock.advance(10.0)
    assert rejections.count("401 wrong key", clock()) == "401 wrong key (x5)"
    assert rejections.totals() == {"401 wrong key": 6, "404 /v1/nope": 1}


async def test_refused_requests_are_logged_counted_and_shown_once(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok")]))
    lines: list[Event] = []
    gateway.state.subscribe(lines.append)
    body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    url = gateway.base_url + "/chat/completions"
    async with aiohttp.ClientSession() as http:
        for _ in range(5):
            async with http.post(url, json=body, headers={"Authorization": "Bearer wrong"}) as resp:
                assert resp.status == 401
        async with http.get(
            gateway.base_url + "/nowhere", headers={"Authorization": f"Bearer {API_KEY}"}
        ) as resp:
            assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
        async with http.post(
            url, json={"model": 3}, headers={"Authorization": f"Bearer {API_KEY}"}
        ) as resp:
            assert resp.status == 400
    texts = [e.text for e in lines if e.text.startswith("client got")]
    assert len(texts) == 3, texts  # the five 401s are one line
    assert (
        "401 on POST /v1/chat/completions" in texts[0] and "wrong" not in texts[0].split(":", 1)[0]
    )
    assert "404 on GET /v1/nowhere" in texts[1] and "400 on POST" in texts[2]
    totals = gateway.state.snapshot().rejected
    assert sorted(totals.values()) == [1, 1, 5]
    await gateway.request_log.flush()
    rows = await logged(gateway.request_log, 20)
    assert sorted(r.status for r in rows) == [400, 401, 401, 401, 401, 401, 404]
    assert {r.error_kind for r in rows} == {"unauthorized", "not_found", "invalid_request"}
    assert all("wrong" not in (r.error or "") for r in rows)  # a wrong key is never written down


async def test_the_root_answers_without_a_key_so_a_client_probe_is_no_401(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    """Claude Code sends `HEAD /` before it starts; that probe is not a refused request."""
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok")]))
    root = gateway.base_url.removesuffix("/v1") + "/"
    async with aiohttp.ClientSession() as http:
        async with http.head(root) as resp:
            assert resp.status == 200
        async with http.get(root) as resp:
            assert (await resp.json())["status"] == "ok"
    assert gateway.state.snapshot().rejected == {}


async def test_a_401_says_which_header_was_seen_but_never_the_key(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok")]))
    url = gateway.base_url + "/models"
    cases = {
        "missing API key": {},
        "the Authorization header is not 'Bearer <key>'": {"Authorization": "Basic abc"},
        "incorrect API key in the Authorization header": {"Authorization": "Bearer sk-wrong-1"},
        "incorrect API key in the x-api-key header": {"x-api-key": "sk-wrong-2"},
    }
    async with aiohttp.ClientSession() as http:
        for expected, headers in cases.items():
            async with http.get(url, headers=headers) as resp:
                message = (await resp.json())["error"]["message"]
            assert resp.status == 401 and message.startswith(expected), message
            assert "sk-wrong" not in message


async def test_when_every_model_refuses_the_length_the_client_gets_context_length_exceeded(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    """A 400 the client can act on (shorten or compact), not a 502 to retry."""
    settings = make_settings(
        mock_url, [model("mock", "context-length"), model("mock", "context-length:x=1")]
    )
    gateway = await gateway_factory(settings)
    body = {"model": "auto", "messages": [{"role": "user", "content": "a very long story"}]}
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        async with http.post(gateway.base_url + "/chat/completions", json=body) as resp:
            error = (await resp.json())["error"]
    assert resp.status == 400 and error["code"] == "context_length_exceeded"
    assert "2 candidates failed" in error["message"]


async def test_an_error_carries_the_id_of_its_log_row_as_the_sdk_reads_it(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str
) -> None:
    """`exc.request_id` finds the request on the screen and in the log, for an error routed
    (a 502 after every model failed) and for one refused at the door (a wrong key)."""
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "error-500")]))
    hello: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.APIStatusError) as failed:
        await sdk(gateway).chat.completions.create(model="auto", messages=hello)
    wrong = AsyncOpenAI(base_url=gateway.base_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as refused:
        await wrong.chat.completions.create(model="auto", messages=hello)
    await wrong.close()
    await gateway.request_log.flush()
    rows = {row.id: row for row in await logged(gateway.request_log, 10)}
    assert failed.value.status_code == 502 and refused.value.status_code == 401
    assert failed.value.request_id is not None and refused.value.request_id is not None
    assert rows[failed.value.request_id].status == 502
    assert rows[failed.value.request_id].model == "mock/error-500"
    assert rows[refused.value.request_id].error_kind == "unauthorized"
