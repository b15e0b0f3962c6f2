"""End to end: the openai SDK -> tui-gateway on loopback -> the mock upstream from scripts/."""

from __future__ import annotations

import asyncio

import aiohttp
import openai
import pytest
from openai import OpenAI

from tests.conftest import GatewayFactory, SdkFactory
from tests.factories import API_KEY, make_settings, model
from tests.logged import logged

HELLO = [{"role": "user", "content": "hello"}]


async def test_non_streaming_reply_through_async_sdk(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(
        make_settings(mock_url, [model("mock", "ok:chunks=3,text=hey")])
    )
    reply = await sdk(gateway).chat.completions.create(model="auto", messages=HELLO)
    assert reply.choices[0].message.content == "hey hey hey"
    assert reply.usage is not None and reply.usage.completion_tokens > 0


async def test_streaming_reply_through_async_sdk(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(
        make_settings(mock_url, [model("mock", "ok:chunks=5,text=hey")])
    )
    stream = await sdk(gateway).chat.completions.create(model="auto", messages=HELLO, stream=True)
    parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(parts) == "hey hey hey hey hey"


async def test_sync_sdk_streams_and_not(gateway_factory: GatewayFactory, mock_url: str) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok:chunks=4,text=yo")]))

    def use_sync_client() -> tuple[str, str]:
        with OpenAI(base_url=gateway.base_url, api_key=API_KEY, max_retries=0) as client:
            return _ask_twice(client)

    whole, streamed = await asyncio.to_thread(use_sync_client)
    assert whole == streamed == "yo yo yo yo"


def _ask_twice(client: OpenAI) -> tuple[str, str]:
    whole = client.chat.completions.create(model="auto", messages=HELLO)
    stream = client.chat.completions.create(model="auto", messages=HELLO, stream=True)
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    return whole.choices[0].message.content or "", streamed


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    "failing", ["error-500", "error-429", "wrapped-error", "error-404", "html-200"]
)
async def test_failing_model_falls_back_to_next_in_chain(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str, failing: str, stream: bool
) -> None:
    settings = make_settings(mock_url, [model("mock", failing), model("mock", "ok:text=fine")])
    gateway = await gateway_factory(settings)
    client = sdk(gateway)
    raw = await client.chat.completions.with_raw_response.create(
        model="auto", messages=HELLO, stream=stream
    )
    assert raw.headers["X-Gateway-Model"] == "mock/ok:text=fine"
    assert raw.headers["X-Gateway-Provider"] == "mock"
    assert raw.headers["X-Gateway-Attempts"] == "2"
    reply = raw.parse()
    if stream:
        chunks = [c async for c in reply]
        assert chunks[0].model == "ok:text=fine"  # the model that really served it
        assert "fine" in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        assert reply.model == "ok:text=fine"
        assert reply.choices[0].message.content.startswith("fine")


async def test_connection_refused_falls_back(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str
) -> None:
    providers = [
        {"name": "dead", "kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_keys": ["x"]},
        {"name": "mock", "kind": "openai", "base_url": mock_url, "api_keys": ["k"]},
    ]
    settings = make_settings(
        providers=providers, models=[model("dead", "gone"), model("mock", "ok:text=alive")]
    )
    gateway = await gateway_factory(settings)
    reply = await sdk(gateway).chat.completions.create(model="auto", messages=HELLO)
    assert reply.choices[0].message.content.startswith("alive")
    [row] = await logged(gateway.request_log)
    assert [(a.model, a.error_kind) for a in row.attempts] == [
        ("dead/gone", "connection"),
        ("mock/ok:text=alive", None),
    ]


async def test_all_candidates_failing_gives_502_listing_each_failure(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str
) -> None:
    settings = make_settings(mock_url, [model("mock", "error-500"), model("mock", "error-503")])
    gateway = await gateway_factory(settings)
    with pytest.raises(openai.APIStatusError) as caught:
        await sdk(gateway).chat.completions.create(model="auto", messages=HELLO)
    assert caught.value.status_code == 502
    message = caught.value.message
    assert "mock/error-500 (500 5xx" in message and "mock/error-503 (503 5xx" in message
    assert caught.value.body["code"] == "all_candidates_failed"  # type: ignore[index]


async def test_all_rate_limited_gives_429_with_retry_after(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str
) -> None:
    settings = make_settings(
        mock_url,
        [model("mock", "error-429:retry_after=7"), model("mock", "error-429:retry_after=3")],
    )
    gateway = await gateway_factory(settings)
    with pytest.raises(openai.RateLimitError) as caught:
        await sdk(gateway).chat.completions.create(model="auto", messages=HELLO, stream=True)
    assert caught.value.response.headers["Retry-After"] == "3"
    assert "mock/error-429:retry_after=7 (429 rate_limited" in caught.value.message


async def test_max_attempts_bounds_the_fallback_chain(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str, mock_upstream: object
) -> None:
    models = [model("mock", f"error-50{n}") for n in range(3)] + [model("mock", "ok")]
    gateway = await gateway_factory(make_settings(mock_url, models, routing={"max_attempts": 2}))
    with pytest.raises(openai.APIStatusError) as caught:
        await sdk(gateway).chat.completions.create(model="auto", messages=HELLO)
    assert caught.value.status_code == 502
    [row] = await logged(gateway.request_log)
    assert len(row.attempts) == 2


async def test_client_error_from_upstream_is_returned_not_retried(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str
) -> None:
    settings = make_settings(mock_url, [model("mock", "error-400"), model("mock", "ok")])
    gateway = await gateway_factory(settings)
    with pytest.raises(openai.BadRequestError):
        await sdk(gateway).chat.completions.create(model="auto", messages=HELLO)
    [row] = await logged(gateway.request_log)
    assert row.status == 400 and len(row.attempts) == 1


async def test_context_length_error_skips_to_a_model_that_fits(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str
) -> None:
    settings = make_settings(
        mock_url, [model("mock", "context-length"), model("mock", "ok:text=big")]
    )
    gateway = await gateway_factory(settings)
    reply = await sdk(gateway).chat.completions.create(model="auto", messages=HELLO)
    assert reply.choices[0].message.content.startswith("big")


async def test_named_model_is_tried_first_then_its_pool(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str
) -> None:
    models = [
        model("mock", "ok:text=first"),
        model("mock", "error-500"),
        model("mock", "ok:text=other", pool="fast"),
    ]
    gateway = await gateway_factory(make_settings(mock_url, models))
    client = sdk(gateway)
    named = await client.chat.completions.create(model="mock/error-500", messages=HELLO)
    assert named.choices[0].message.content.startswith("first")  # fell back within its pool
    by_bare_id = await client.chat.completions.create(model="ok:text=other", messages=HELLO)
    assert by_bare_id.choices[0].message.content.startswith("other")
    fast = await client.chat.completions.create(model="auto-fast", messages=HELLO)
    assert fast.choices[0].message.content.startswith("other")


async def test_request_fields_reach_the_upstream(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str, mock_upstream: object
) -> None:
    from scripts.mock_upstream import RECEIVED

    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok")]))
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    await sdk(gateway).chat.completions.create(
        model="auto",
        messages=HELLO,
        tools=tools,
        tool_choice="auto",
        temperature=0.2,
        max_tokens=50,
        top_p=0.9,
        stop=["END"],
    )
    [received] = mock_upstream.app[RECEIVED]  # type: ignore[attr-defined]
    assert received.body["model"] == "ok"
    assert received.headers["Authorization"] == "Bearer k1"
    for name, value in [
        ("tools", tools),
        ("tool_choice", "auto"),
        ("temperature", 0.2),
        ("max_tokens", 50),
        ("top_p", 0.9),
        ("stop", ["END"]),
    ]:
        assert received.body[name] == value


async def test_keys_are_used_in_turn(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str, mock_upstream: object
) -> None:
    from scripts.mock_upstream import RECEIVED

    providers = [{"name": "mock", "kind": "openai", "base_url": mock_url, "api_keys": ["a", "b"]}]
    gateway = await gateway_factory(
        make_settings(providers=providers, models=[model("mock", "ok")])
    )
    client = sdk(gateway)
    for _ in range(3):
        await client.chat.completions.create(model="auto", messages=HELLO)
    keys = [r.headers["Authorization"] for r in mock_upstream.app[RECEIVED]]  # type: ignore[attr-defined]
    assert keys == ["Bearer a", "Bearer b", "Bearer a"]


async def test_gemini_thought_signatures_are_stripped_for_openai_style_upstreams(
    gateway_factory: GatewayFactory, mock_url: str, mock_upstream: object
) -> None:
    """A conversation that went through Gemini falls back without ids OpenAI would refuse."""
    from scripts.mock_upstream import RECEIVED

    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok")]))
    long_id = "call_1__thought__" + "s" * 300
    messages = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": long_id, "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": long_id, "content": "sunny"},
    ]  # fmt: skip
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as session:
        async with session.post(
            gateway.base_url + "/chat/completions", json={"model": "auto", "messages": messages}
        ) as resp:
            assert resp.status == 200
    [received] = mock_upstream.app[RECEIVED]  # type: ignore[attr-defined]
    sent = received.body["messages"]
    assert sent[1]["tool_calls"][0]["id"] == sent[2]["tool_call_id"] == "call_1"
