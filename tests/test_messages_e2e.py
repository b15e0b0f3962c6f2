"""End to end: the official `anthropic` SDK -> tui-gateway's `/v1/messages` -> the mock upstream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import anthropic
import pytest
from anthropic import AsyncAnthropic

import scripts.mock_upstream
from scripts.mock_upstream import RECEIVED
from tests.conftest import GatewayFactory
from tests.factories import API_KEY, make_settings, model
from tests.logged import logged
from tests.test_streaming_faults import TIMERS, prefill_providers
from tui_gateway.server import Gateway

HELLO: list[Any] = [{"role": "user", "content": "hello"}]
SONNET = "claude-sonnet-4-5"
HAS_TOOL_SCENARIO = "tool-call " in (scripts.mock_upstream.__doc__ or "")

ClaudeFactory = Callable[..., AsyncAnthropic]


@pytest.fixture
async def claude() -> AsyncIterator[ClaudeFactory]:
    """Official `anthropic` async clients pointed at a gateway (x-api-key unless told)."""
    made: list[AsyncAnthropic] = []

    def make(
        gateway: Gateway, *, api_key: str | None = None, auth_token: str | None = None
    ) -> AsyncAnthropic:
        client = AsyncAnthropic(
            base_url=gateway.base_url.removesuffix("/v1"),
            api_key=api_key if api_key or auth_token else API_KEY,
            auth_token=auth_token,
            max_retries=0,
        )
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


def root(gateway: Gateway) -> str:
    return gateway.base_url.removesuffix("/v1")


async def raw_events(
    gateway: Gateway, body: dict[str, Any], *, path: str = "/v1/messages"
) -> tuple[int, list[tuple[str, dict[str, Any]]]]:
    """Status and each (event, data) of a streamed reply, exactly as a client reads them."""
    async with aiohttp.ClientSession(headers={"x-api-key": API_KEY}) as session:
        async with session.post(root(gateway) + path, json={**body, "stream": True}) as resp:
            text = (await resp.read()).decode()
    out = []
    for block in text.split("\n\n"):
        if block.strip():
            name, data = block.split("\n")
            out.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return resp.status, out


async def test_a_whole_reply_comes_back_as_an_anthropic_message(
    gateway_factory: GatewayFactory, claude: ClaudeFactory, mock_url: str, mock_upstream: Any
) -> None:
    gateway = await gateway_factory(
        make_settings(mock_url, [model("mock", "ok:chunks=3,text=hey")])
    )
    message = await claude(gateway).messages.create(
        model=SONNET, max_tokens=100, system="be brief", messages=HELLO
    )
    assert message.id.startswith("msg_") and message.type == "message"
    assert message.role == "assistant" and message.model == SONNET
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "hey hey hey"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.output_tokens == 3 and message.usage.input_tokens >= 1
    assert message.usage.cache_read_input_tokens == 0
    sent = mock_upstream.app[RECEIVED][-1].body  # an OpenAI body, the system prompt first
    assert sent["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello"},
    ]
    assert sent["model"] == "ok:chunks=3,text=hey" and sent["max_tokens"] == 100


async def test_a_streamed_reply_accumulates_into_one_message(
    gateway_factory: GatewayFactory, claude: ClaudeFactory, mock_url: str, mock_upstream: Any
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok:chunks=4,text=yo")]))
    async with claude(gateway).messages.stream(
        model=SONNET, max_tokens=100, messages=HELLO
    ) as stream:
        texts = [text async for text in stream.text_stream]
        message = await stream.get_final_message()
    assert "".join(texts) == "yo yo yo yo"
    assert message.model == SONNET and message.stop_reason == "end_turn"
    assert [b.type for b in message.content] == ["text"]
    assert message.usage.output_tokens == 4
    upstream = mock_upstream.app[RECEIVED][-1]
    assert upstream.stream and upstream.body["stream_options"] == {"include_usage": True}
    assert upstream.body["messages"] == [{"role": "user", "content": "hello"}]


async def test_streamed_events_come_in_the_order_claude_code_expects(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok:chunks=2,text=a")]))
    status, events = await raw_events(
        gateway, {"model": SONNET, "max_tokens": 9, "messages": HELLO}
    )
    assert status == 200
    assert [name for name, _ in events] == [
        "message_start", "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop",
    ]  # fmt: skip
    assert all(data["type"] == name for name, data in events)


async def test_heartbeats_before_the_first_token_are_pings_after_message_start(
    gateway_factory: GatewayFactory, claude: ClaudeFactory, mock_url: str
) -> None:
    settings = make_settings(
        mock_url, [model("mock", "ok:ttft_ms=700,chunks=2,text=late")], streaming=TIMERS
    )
    gateway = await gateway_factory(settings)
    _, events = await raw_events(gateway, {"model": SONNET, "max_tokens": 9, "messages": HELLO})
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[1] == "ping"
    assert names.count("message_start") == 1 and names[-1] == "message_stop"
    async with claude(gateway).messages.stream(model=SONNET, max_tokens=9, messages=HELLO) as s:
        assert (await s.get_final_text()) == "late late"


async def test_count_tokens_estimates_without_routing(
    gateway_factory: GatewayFactory, claude: ClaudeFactory, mock_url: str, mock_upstream: Any
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok")]))
    client = claude(gateway)
    counted = await client.messages.count_tokens(
        model=SONNET, system="s" * 40, messages=[{"role": "user", "content": "u" * 40}]
    )
    assert counted.input_tokens == 20
    again = await client.messages.count_tokens(
        model=SONNET, system="s" * 40, messages=[{"role": "user", "content": "u" * 40}]
    )
    assert again.input_tokens == counted.input_tokens
    assert mock_upstream.app[RECEIVED] == []  # nothing went upstream


async def test_bearer_and_x_api_key_both_authenticate_and_a_wrong_key_is_401(
    gateway_factory: GatewayFactory, claude: ClaudeFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok:chunks=1,text=in")]))
    for client in (claude(gateway, api_key=API_KEY), claude(gateway, auth_token=API_KEY)):
        reply = await client.messages.create(model=SONNET, max_tokens=5, messages=HELLO)
        assert reply.content[0].text == "in"  # type: ignore[union-attr]
    for wrong in (claude(gateway, api_key="nope"), claude(gateway, auth_token="nope")):
        with pytest.raises(anthropic.AuthenticationError) as caught:
            await wrong.messages.create(model=SONNET, max_tokens=5, messages=HELLO)
        assert caught.value.status_code == 401
        assert caught.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    with pytest.raises(anthropic.AuthenticationError):
        await claude(gateway, api_key="nope").messages.count_tokens(model=SONNET, messages=HELLO)


async def test_replies_and_errors_carry_the_log_rows_id_where_the_anthropic_sdk_reads_it(
    gateway_factory: GatewayFactory, claude: ClaudeFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok:chunks=1,text=in")]))
    reply = await claude(gateway).messages.create(model=SONNET, max_tokens=5, messages=HELLO)
    with pytest.raises(anthropic.AuthenticationError) as refused:
        await claude(gateway, api_key="nope").messages.create(
            model=SONNET, max_tokens=5, messages=HELLO
        )
    await gateway.request_log.flush()
    rows = {row.id: row for row in await logged(gateway.request_log, 10)}
    assert reply._request_id is not None and rows[reply._request_id].status == 200
    assert refused.value.request_id is not None
    assert rows[refused.value.request_id].status == 401


async def test_claude_code_model_names_route_through_the_mapping(
    gateway_factory: GatewayFactory, claude: ClaudeFactory, mock_url: str
) -> None:
    settings = make_settings(
        mock_url,
        [model("mock", "ok:text=fast", pool="fast"), model("mock", "ok:text=balanced")],
    )
    gateway = await gateway_factory(settings)
    client = claude(gateway)
    for name, expected in [
        ("claude-sonnet-4-5", "balanced"),
        ("claude-opus-4-1-20250805", "balanced"),
        ("claude-haiku-4-5-20251001", "fast"),
        ("mock/ok:text=fast", "fast"),  # a name the gateway knows goes as it is
    ]:
        raw = await client.messages.with_raw_response.create(
            model=name, max_tokens=5, messages=HELLO
        )
        message = await raw.parse()
        assert message.content[0].text.startswith(expected)  # type: ignore[union-attr]
        assert message.model == name
        assert raw.headers["X-Gateway-Model"] == f"mock/ok:text={expected}"


async def test_the_beta_query_and_headers_are_ignored(
    gateway_factory: GatewayFactory, claude: ClaudeFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok:chunks=1,text=b")]))
    reply = await claude(gateway).beta.messages.create(
        model=SONNET,
        max_tokens=5,
        messages=HELLO,
        betas=["interleaved-thinking-2025-05-14"],
        extra_headers={"anthropic-version": "2023-06-01"},
    )
    assert reply.content[0].text == "b"  # type: ignore[union-attr]
    async with aiohttp.ClientSession(headers={"x-api-key": API_KEY}) as session:
        async with session.post(
            root(gateway) + "/v1/messages/count_tokens?beta=true", json={"messages": HELLO}
        ) as resp:
            assert resp.status == 200 and await resp.json() == {"input_tokens": 2}


async def test_a_model_name_without_a_mapping_is_an_anthropic_404(
    gateway_factory: GatewayFactory, claude: ClaudeFactory, mock_url: str
) -> None:
    settings = make_settings(
        mock_url, [model("mock", "ok")], dialects={"anthropic": {"models": {"claude-*": "auto"}}}
    )
    gateway = await gateway_factory(settings)
    with pytest.raises(anthropic.NotFoundError) as caught:
        await claude(gateway).messages.create(model="gpt-4o", max_tokens=5, messages=HELLO)
    error = caught.value.body["error"]  # type: ignore[index]
    assert error["type"] == "not_found_error" and "gpt-4o" in error["message"]
    [row] = await logged(gateway.request_log)
    assert row.status == 404 and row.dialect == "messages"


async def test_a_field_of_the_wrong_type_is_an_invalid_request_error(
    gateway_factory: GatewayFactory, claude: ClaudeFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok")]))
    with pytest.raises(anthropic.BadRequestError) as caught:
        await claude(gateway).messages.create(
            model=SONNET, max_tokens=5, messages=HELLO, extra_body={"system": 42}
        )
    error = caught.value.body["error"]  # type: ignore[index]
    assert error["type"] == "invalid_request_error" and "system" in error["message"]


async def test_unknown_paths_under_v1_messages_are_404s_in_anthropic_shape(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok")]))
    async with aiohttp.ClientSession(headers={"x-api-key": API_KEY}) as session:
        async with session.post(root(gateway) + "/v1/messages/batches", json={}) as resp:
            assert resp.status == 404
            body = await resp.json()
    assert body["type"] == "error" and body["error"]["type"] == "not_found_error"


async def test_extra_fields_claude_code_sends_are_accepted_and_dropped(
    gateway_factory: GatewayFactory, claude: ClaudeFactory, mock_url: str, mock_upstream: Any
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok:chunks=1,text=k")]))
    async with claude(gateway).messages.stream(
        model=SONNET,
        max_tokens=32000,
        system=[
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}
        ],
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
            },
        ],
        tools=[
            {
                "name": "Read",
                "description": "Read a file",
                "input_schema": {"type": "object", "properties": {}},
            },
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
        ],
        thinking={"type": "enabled", "budget_tokens": 1024},
        metadata={"user_id": "user_abc_account__session_1"},
        extra_body={
            "temperature": 1,
            "context_management": {"edits": []},
            "output_config": {"effort": "high"},
        },
    ) as stream:
        assert (await stream.get_final_text()) == "k"
    sent = mock_upstream.app[RECEIVED][-1].body
    assert sent["messages"][0] == {"role": "system", "content": "You are Claude Code."}
    assert [t["function"]["name"] for t in sent["tools"]] == ["Read"]
    for dropped in ("thinking", "metadata", "context_management", "output_config", "system"):
        assert dropped not in sent
    assert sent["temperature"] == 1 and sent["max_tokens"] == 32000


async def test_a_stall_after_the_stream_started_ends_with_an_error_event(
    gateway_factory: GatewayFactory, claude: ClaudeFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(
        make_settings(mock_url, [model("mock", "stall-after-first:after=1")], streaming=TIMERS)
    )
    body = {"model": SONNET, "max_tokens": 9, "messages": HELLO}
    status, events = await raw_events(gateway, body)
    assert status == 200 and events[0][0] == "message_start"
    name, data = events[-1]
    assert name == "error" and data["error"]["type"] == "api_error"
    assert "stall" in data["error"]["message"]
    assert "message_stop" not in [n for n, _ in events]
    with pytest.raises(anthropic.APIStatusError) as caught:
        async with claude(gateway).messages.stream(**body) as stream:  # type: ignore[arg-type]
            await stream.get_final_message()
    assert "stall" in str(caught.value)


async def test_a_failing_first_model_falls_back_before_the_stream_starts(
    gateway_factory: GatewayFactory, claude: ClaudeFactory, mock_url: str
) -> None:
    settings = make_settings(mock_url, [model("mock", "error-500"), model("mock", "ok:text=fine")])
    gateway = await gateway_factory(settings)
    client = claude(gateway)
    async with client.messages.stream(model=SONNET, max_tokens=9, messages=HELLO) as stream:
        message = await stream.get_final_message()
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text.startswith("fine") and message.stop_reason == "end_turn"  # type: ignore[union-attr]
    whole = await client.messages.create(model=SONNET, max_tokens=9, messages=HELLO)
    assert whole.content[0].text.startswith("fine")  # type: ignore[union-attr]


async def test_every_candidate_overloaded_is_a_529_overloaded_error(
    gateway_factory: GatewayFactory, claude: ClaudeFactory, mock_url: str
) -> None:
    settings = make_settings(mock_url, [model("mock", "error-503"), model("mock", "error-529")])
    gateway = await gateway_factory(settings)
    with pytest.raises(anthropic.OverloadedError) as caught:
        await claude(gateway).messages.create(model=SONNET, max_tokens=9, messages=HELLO)
    assert caught.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


async def test_a_stream_broken_mid_answer_continues_as_one_message(
    gateway_factory: GatewayFactory, claude: ClaudeFactory, mock_url: str
) -> None:
    models = [
        model("mock", "drop-mid-stream:after=2,text=part"),
        model("mock", "ok:chunks=1,text=rest"),
    ]
    gateway = await gateway_factory(
        make_settings(providers=prefill_providers(mock_url), models=models, streaming=TIMERS)
    )
    body = {"model": SONNET, "max_tokens": 9, "messages": HELLO}
    async with claude(gateway).messages.stream(**body) as stream:  # type: ignore[arg-type]
        message = await stream.get_final_message()
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "part partrest"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    _, events = await raw_events(gateway, body)
    names = [n for n, _ in events]
    assert names.count("message_start") == 1 and names.count("content_block_start") == 1
    assert "error" not in names


async def test_the_state_api_and_the_log_show_the_messages_dialect(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(
        make_settings(mock_url, [model("mock", "ok:chunks=3,delay_ms=150")])
    )
    body = {"model": SONNET, "max_tokens": 9, "messages": HELLO, "stream": True}
    async with aiohttp.ClientSession(headers={"x-api-key": API_KEY}) as session:
        async with session.post(root(gateway) + "/v1/messages", json=body) as resp:
            await resp.content.readline()  # message_start is here; the rest is still coming
            async with session.get(root(gateway) + "/gateway/state") as state:
                during = await state.json()
            await resp.read()
        async with session.get(root(gateway) + "/gateway/state") as state:
            after = await state.json()
    [active] = during["active"]
    assert active["dialect"] == "messages" and active["stream"] is True
    assert after["active"] == [] and after["recent"][-1]["dialect"] == "messages"
    [row] = await logged(gateway.request_log)
    assert row.dialect == "messages" and row.status == 200


def _tool_turns(use: anthropic.types.Message) -> list[Any]:
    [call] = [b for b in use.content if b.type == "tool_use"]
    return [
        {"role": "user", "content": "read the readme"},
        {"role": "assistant", "content": [b.model_dump() for b in use.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "# Title"}],
        },
    ]


READ_TOOL: list[Any] = [
    {
        "name": "Read",
        "description": "Read a file",
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
    }
]


@pytest.mark.skipif(not HAS_TOOL_SCENARIO, reason="the mock upstream has no tool-call scenario")
@pytest.mark.parametrize("stream", [True, False])
async def test_a_tool_use_round_trip_keeps_the_tool_call_id(
    gateway_factory: GatewayFactory,
    claude: ClaudeFactory,
    mock_url: str,
    mock_upstream: Any,
    stream: bool,
) -> None:
    gateway = await gateway_factory(
        make_settings(mock_url, [model("mock", "tool-call:fragments=4,text=Reading.")])
    )
    client = claude(gateway)
    ask: dict[str, Any] = {"model": SONNET, "max_tokens": 99, "tools": READ_TOOL}
    first_turn: list[Any] = [{"role": "user", "content": "read the readme"}]
    use: anthropic.types.Message
    if stream:
        async with client.messages.stream(**ask, messages=first_turn) as s:
            use = await s.get_final_message()
    else:
        use = await client.messages.create(**ask, messages=first_turn)
    assert [b.type for b in use.content] == ["text", "tool_use"]
    assert use.stop_reason == "tool_use"
    call = use.content[1]
    assert call.type == "tool_use" and call.name == "Read" and call.input == {"path": "README.md"}
    assert call.id  # the upstream's id, which must come back

    messages = _tool_turns(use)
    answer: anthropic.types.Message
    if stream:
        async with client.messages.stream(**ask, messages=messages) as s:
            answer = await s.get_final_message()
    else:
        answer = await client.messages.create(**ask, messages=messages)
    assert answer.content[0].text == "ok, tool result received"  # type: ignore[union-attr]
    assert answer.stop_reason == "end_turn"
    sent = mock_upstream.app[RECEIVED][-1].body["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.id
    assert sent[2] == {"role": "tool", "tool_call_id": call.id, "content": "# Title"}


@pytest.mark.skipif(not HAS_TOOL_SCENARIO, reason="the mock upstream has no tool-call scenario")
async def test_parallel_tool_calls_stream_as_consecutive_blocks(
    gateway_factory: GatewayFactory, claude: ClaudeFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "tool-call:calls=2")]))
    async with claude(gateway).messages.stream(
        model=SONNET, max_tokens=99, tools=READ_TOOL, messages=[{"role": "user", "content": "go"}]
    ) as s:
        use = await s.get_final_message()
    calls = [b for b in use.content if b.type == "tool_use"]
    assert len(calls) == 2 and len({c.id for c in calls}) == 2
    assert all(c.input == {"path": "README.md"} for c in calls)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/messages", {"model": "auto", "max_tokens": 64, "stream": True,
                          "messages": [{"role": "user", "content": "hi"}]}),
        ("/v1/responses", {"model": "auto", "stream": True, "input": "hi"}),
    ],
    ids=["messages", "responses"],
)  # fmt: skip
async def test_a_client_gone_mid_stream_through_any_door_leaves_one_row_and_nothing_in_flight(
    gateway_factory: GatewayFactory, mock_url: str, path: str, body: dict[str, Any]
) -> None:
    """The invariant of every request (one log row, no active entry) holds behind each door."""
    gateway = await gateway_factory(
        make_settings(mock_url, [model("mock", "ok:chunks=400,delay_ms=20")])
    )
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        resp = await http.post(root(gateway) + path, json=body)
        assert resp.status == 200
        await resp.content.readline()  # the stream has started
        resp.close()
    for _ in range(200):
        if not gateway.state.active:
            break
        await asyncio.sleep(0.02)
    assert gateway.state.active == {}
    rows = await logged(gateway.request_log)
    assert [(r.error_kind, r.dialect) for r in rows] == [("client_closed", path.rsplit("/", 1)[1])]
