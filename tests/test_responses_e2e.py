"""End to end: the openai SDK's `client.responses` -> the gateway's `/v1/responses` -> the mock."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp.test_utils import TestServer
from openai.types.responses import FunctionToolParam, Response, ResponseCompletedEvent

from scripts.mock_upstream import RECEIVED
from tests.conftest import GatewayFactory, SdkFactory
from tests.factories import API_KEY, make_settings, model
from tests.logged import logged
from tests.test_streaming_faults import TIMERS, prefill_providers
from tui_gateway.server import Gateway

AUTH = {"Authorization": f"Bearer {API_KEY}"}
READ_FILE: FunctionToolParam = {
    "type": "function",
    "name": "read_file",
    "description": "Read a file",
    "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
    "strict": False,
}


async def raw_events(gateway: Gateway, body: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    """Status and every event as the client receives it (checking `event:` names its type)."""
    async with aiohttp.ClientSession(headers=AUTH) as session:
        async with session.post(gateway.base_url + "/responses", json=body) as resp:
            text = (await resp.read()).decode()
    events = []
    for block in filter(None, text.split("\n\n")):
        name, data = block.split("\n")
        event = json.loads(data.removeprefix("data: "))
        assert name == f"event: {event['type']}"
        events.append(event)
    return resp.status, events


def received(mock: TestServer) -> list[Any]:
    return mock.app[RECEIVED]


async def test_a_whole_reply_through_the_sdk(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str, mock_upstream: TestServer
) -> None:
    gateway = await gateway_factory(
        make_settings(mock_url, [model("mock", "ok:chunks=3,text=hey")])
    )
    response = await sdk(gateway).responses.create(
        model="auto", input="hello", instructions="be brief"
    )
    assert response.output_text == "hey hey hey"
    assert response.status == "completed" and response.id.startswith("resp_")
    assert response.model == "auto" and response.instructions == "be brief"
    assert response.usage is not None and response.usage.input_tokens > 0
    assert response.usage.output_tokens == 3
    [upstream] = received(mock_upstream)
    assert upstream.body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello"},
    ]


async def test_a_streamed_reply_through_the_sdk_is_in_order_and_completes(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str, mock_upstream: TestServer
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok:chunks=4,text=yo")]))
    stream = await sdk(gateway).responses.create(model="auto", input="hello", stream=True)
    events = [event async for event in stream]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "yo yo yo yo"
    completed = events[-1].response
    assert completed.output_text == "yo yo yo yo" and completed.status == "completed"
    assert completed.usage is not None and completed.usage.output_tokens == 4
    [upstream] = received(mock_upstream)
    assert upstream.body["stream_options"] == {"include_usage": True}


async def test_the_sdk_stream_helper_accumulates_the_final_response(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok:chunks=3,text=ab")]))
    async with sdk(gateway).responses.stream(model="auto", input="hello") as stream:
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(deltas) == final.output_text == "ab ab ab"


async def test_heartbeats_are_in_progress_events_the_sdk_accepts(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str
) -> None:
    settings = make_settings(
        mock_url, [model("mock", "ok:ttft_ms=700,chunks=2,text=late")], streaming=TIMERS
    )
    gateway = await gateway_factory(settings)
    status, events = await raw_events(gateway, {"model": "auto", "input": "hi", "stream": True})
    assert status == 200
    kinds = [e["type"] for e in events]
    first_item = kinds.index("response.output_item.added")
    assert kinds[0] == "response.created"
    assert kinds[1:first_item] == ["response.in_progress"] * (first_item - 1)
    assert first_item >= 3  # at least one heartbeat besides the first in_progress
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    async with sdk(gateway).responses.stream(model="auto", input="hi") as stream:
        final = await stream.get_final_response()
    assert final.output_text == "late late"


async def test_a_second_turn_sees_the_first_turns_history_upstream(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str, mock_upstream: TestServer
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok:chunks=2,text=hm")]))
    client = sdk(gateway)
    first = await client.responses.create(model="auto", input="one", instructions="rules v1")
    stream = await client.responses.create(
        model="auto", input="two", instructions="rules v2", previous_response_id=first.id,
        stream=True,
    )  # fmt: skip
    last = [e async for e in stream][-1]
    assert isinstance(last, ResponseCompletedEvent)
    second = last.response
    assert second.previous_response_id == first.id
    await client.responses.create(model="auto", input="three", previous_response_id=second.id)
    bodies = [r.body["messages"] for r in received(mock_upstream)]
    assert bodies[1] == [
        {"role": "system", "content": "rules v2"},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "hm hm"},
        {"role": "user", "content": "two"},
    ]
    assert bodies[2] == [  # the streamed turn was stored too, and no instructions came back
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "hm hm"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "hm hm"},
        {"role": "user", "content": "three"},
    ]


async def test_continuing_an_unstored_response_is_a_400_previous_response_not_found(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok:chunks=1")]))
    client = sdk(gateway)
    first = await client.responses.create(model="auto", input="one", store=False)
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="auto", input="two", previous_response_id=first.id)
    assert caught.value.code == "previous_response_not_found"
    assert caught.value.body["param"] == "previous_response_id"  # type: ignore[index]


@pytest.mark.parametrize("stream", [False, True])
async def test_errors_before_the_stream_starts_are_openai_shaped(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str, stream: bool
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "error-400")]))
    client = sdk(gateway)
    with pytest.raises(openai.NotFoundError) as missing:
        await client.responses.create(model="no-such-model", input="hi", stream=stream)
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as refused:  # what every upstream would say
        await client.responses.create(model="auto", input="hi", stream=stream)
    assert "mock: upstream error 400" in refused.value.message
    async with aiohttp.ClientSession(headers=AUTH) as session:
        async with session.post(
            gateway.base_url + "/responses", json={"model": "auto", "input": 5, "stream": stream}
        ) as resp:
            body = await resp.json()
    assert resp.status == 400 and body["error"]["param"] == "input"


async def test_a_stall_after_the_stream_started_ends_with_response_failed(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(
        make_settings(
            mock_url, [model("mock", "stall-after-first:after=1,text=so")], streaming=TIMERS
        )
    )
    stream = await sdk(gateway).responses.create(model="auto", input="hi", stream=True)
    events = [e async for e in stream]
    assert events[-1].type == "response.failed"
    assert not any(e.type == "response.completed" for e in events)
    failed = events[-1].response
    assert failed.error is not None and failed.error.code == "server_error"
    assert "stall" in failed.error.message or "no data" in failed.error.message
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "so"
    assert gateway.state.active == {}


@pytest.mark.parametrize("stream", [False, True])
async def test_a_failing_first_model_is_replaced_before_anything_is_sent(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str, stream: bool
) -> None:
    models = [model("mock", "error-500"), model("mock", "ok:chunks=2,text=fine")]
    gateway = await gateway_factory(make_settings(mock_url, models))
    client = sdk(gateway)
    response: Response
    if stream:
        async with client.responses.stream(model="auto", input="hi") as events:
            response = await events.get_final_response()
    else:
        response = await client.responses.create(model="auto", input="hi")
    assert response.output_text == "fine fine" and response.status == "completed"


async def test_a_stream_cut_mid_answer_continues_as_one_answer(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str
) -> None:
    models = [
        model("mock", "drop-mid-stream:after=2,text=part"),
        model("mock", "ok:chunks=1,text=rest"),
    ]
    gateway = await gateway_factory(
        make_settings(providers=prefill_providers(mock_url), models=models, streaming=TIMERS)
    )
    stream = await sdk(gateway).responses.create(model="auto", input="hi", stream=True)
    events = [e async for e in stream]
    assert events[-1].type == "response.completed"
    assert [e.type for e in events].count("response.output_item.added") == 1
    assert events[-1].response.output_text == "part partrest"
    [row] = await logged(gateway.request_log)
    assert row.status == 200 and [a.error_kind for a in row.attempts] == ["truncated", None]


async def test_the_state_and_the_log_say_the_request_came_by_the_responses_door(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok:chunks=1")]))
    await sdk(gateway).responses.create(model="auto", input="hi")
    async with aiohttp.ClientSession(headers=AUTH) as session:
        async with session.get(gateway.base_url.removesuffix("/v1") + "/gateway/state") as resp:
            state = await resp.json()
    assert state["recent"][-1]["dialect"] == "responses"
    assert state["responses_store"] == {"stored": 1, "cap": 1000, "ttl_s": 3600.0}
    [row] = await logged(gateway.request_log)
    assert row.dialect == "responses" and row.status == 200


@pytest.mark.parametrize("stream", [False, True])
async def test_a_function_call_round_trip(
    gateway_factory: GatewayFactory,
    sdk: SdkFactory,
    mock_url: str,
    mock_upstream: TestServer,
    stream: bool,
) -> None:
    gateway = await gateway_factory(
        make_settings(mock_url, [model("mock", "tool-call:fragments=3,calls=2")])
    )
    client = sdk(gateway)
    first: Response
    if stream:
        async with client.responses.stream(model="auto", input="read it", tools=[READ_FILE]) as s:
            events = [e async for e in s]
            first = await s.get_final_response()
        kinds = [e.type for e in events]
        # Each call's fragments are held until it is whole (whole_calls.py): one delta a call.
        assert kinds.count("response.function_call_arguments.delta") == 2
        assert kinds.count("response.output_item.done") == 2
    else:
        first = await client.responses.create(model="auto", input="read it", tools=[READ_FILE])
    calls = [item for item in first.output if item.type == "function_call"]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("read_file", {"path": "README.md"}),
        ("read_file", {"path": "README.md"}),
    ]
    assert len({c.call_id for c in calls}) == 2 and all(c.status == "completed" for c in calls)
    second = await client.responses.create(
        model="auto",
        previous_response_id=first.id,
        tools=[READ_FILE],
        input=[
            {"type": "function_call_output", "call_id": c.call_id, "output": "# README"}
            for c in calls
        ],
    )
    assert second.output_text == "ok, tool result received"
    upstream = received(mock_upstream)[-1].body
    assert upstream["tools"][0]["function"]["name"] == "read_file"
    assistant, *results = upstream["messages"][1:]
    assert [tc["id"] for tc in assistant["tool_calls"]] == [c.call_id for c in calls]
    assert results == [
        {"role": "tool", "tool_call_id": c.call_id, "content": "# README"} for c in calls
    ]
