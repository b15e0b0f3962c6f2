"""The simulated provider sometimes answers an offered read-like tool with one call of it."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from openai.types.chat import ChatCompletionToolParam

from tests.conftest import GatewayFactory, SdkFactory
from tests.factories import make_settings, model
from tui_gateway.config import ModelSettings, ProviderSettings, SimulatedBehaviour
from tui_gateway.providers.simulated import SimulatedUpstream
from tui_gateway.providers.sse import DONE

SEEDS = range(40)
# Fewer for streams: each simulated text stream takes at least 20 ms.
STREAM_SEEDS = range(12)
FAST = {"first_token_ms": 0, "tokens_per_s": 100_000, "reply_tokens": 6}
READ_FILE: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "read_file",
        "description": "Read a file of the workspace.",
        "parameters": {
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "directory": {"type": "string"},
                "pattern": {"type": "string"},
                "limit": {"type": "integer"},
                "scale": {"type": "number"},
                "raw": {"type": "boolean"},
                "ranges": {"type": "array", "items": {"type": "integer"}},
                "options": {"type": "object"},
                "mode": {"type": "string", "enum": ["text", "bytes"]},
                "encoding": {"type": ["string", "null"]},
                "offset": {"type": "integer", "description": "not required, so never sent"},
            },
            "required": [
                "path", "directory", "pattern", "limit", "scale", "raw", "ranges", "options",
                "mode", "encoding",
            ],
        },
    },
}  # fmt: skip
SDK_TOOL = cast(ChatCompletionToolParam, READ_FILE)
EXPECTED_ARGS = {
    "path": "README.md",
    "directory": ".",
    "pattern": "TODO",
    "limit": 1,
    "scale": 1,
    "raw": False,
    "ranges": [],
    "options": {},
    "mode": "text",
    "encoding": "demo",
}


def _function(name: str, **properties: str) -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": {key: {"type": kind} for key, kind in properties.items()},
        "required": list(properties),
    }
    return {"type": "function", "function": {"name": name, "parameters": schema}}


WRITE_LIKE = [
    _function("write_file", path="string", content="string"),
    _function("bash", command="string"),
    _function("edit_cells", cells="array"),  # "ls" inside a word is not the ls command
]
TOOL_RESULT = [
    {"role": "user", "content": "what does the readme say? use a tool"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "read_file", "arguments": '{"path": "README.md"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "# tui-gateway"},
]


def _upstream() -> SimulatedUpstream:
    return SimulatedUpstream(ProviderSettings(name="sim", kind="simulated"))


def _model(seed: int = 0) -> ModelSettings:
    return ModelSettings(provider="sim", id="m", simulate=SimulatedBehaviour(seed=seed, **FAST))


def _body(prompt: str, tools: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": prompt}], "tools": tools, **extra}


async def _complete(body: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    completion = await _upstream().complete(body, _model(seed))
    choice: dict[str, Any] = json.loads(completion.body)["choices"][0]
    return choice


async def _stream(body: dict[str, Any], seed: int = 0) -> list[Any]:
    """Each chunk of a streamed reply as JSON, with `[DONE]` kept as bytes."""
    events: list[Any] = []
    async with _upstream().stream(body, _model(seed)) as chunks:
        async for batch in chunks:
            events += [p if p == DONE else json.loads(p) for p in batch.payloads()]
    return events


async def test_read_like_tool_is_called_in_some_conversations_with_fitting_arguments() -> None:
    called = 0
    for seed in SEEDS:
        choice = await _complete(_body("summarise the project", [READ_FILE]), seed)
        calls = choice["message"].get("tool_calls")
        if calls is None:
            assert choice["finish_reason"] == "stop"
            assert isinstance(choice["message"]["content"], str)
            continue
        called += 1
        assert choice["finish_reason"] == "tool_calls"
        assert choice["message"]["content"] is None
        [call] = calls
        assert call["type"] == "function" and call["id"].startswith("call_")
        assert call["function"]["name"] == "read_file"
        args = json.loads(call["function"]["arguments"])
        assert args == EXPECTED_ARGS
        assert type(args["limit"]) is int and type(args["raw"]) is bool
    # A chance, not a rule: some conversations call, others answer in text.
    assert 0 < called < len(SEEDS)


async def test_one_of_several_read_like_tools_is_called() -> None:
    tools = [
        _function("list_dir", dir="string"),
        _function("ls"),
        _function("grep", query="string"),
        _function("write_file", path="string"),
    ]
    names = set()
    for seed in SEEDS:
        choice = await _complete(_body("use a tool please", tools), seed)
        names.add(choice["message"]["tool_calls"][0]["function"]["name"])
    assert names == {"list_dir", "ls", "grep"}


@pytest.mark.parametrize("stream", [False, True])
async def test_write_like_tools_are_never_called(stream: bool) -> None:
    for seed in STREAM_SEEDS if stream else SEEDS:
        for prompt in ("fix the bug", "use a tool to fix the bug"):
            body = _body(prompt, WRITE_LIKE, tool_choice="required")
            if stream:
                events = await _stream(body, seed)
                deltas = [e["choices"][0]["delta"] for e in events[:-1] if e["choices"]]
                assert all("tool_calls" not in d for d in deltas)
                assert events[-2]["choices"][0]["finish_reason"] == "stop"
            else:
                choice = await _complete(body, seed)
                assert "tool_calls" not in choice["message"]
                assert choice["finish_reason"] == "stop"


async def test_write_like_tools_leave_the_text_reply_as_it_was_without_tools() -> None:
    plain = {"messages": [{"role": "user", "content": "fix the bug"}]}
    with_tools = _body("fix the bug", WRITE_LIKE)
    assert await _complete(with_tools, 3) == await _complete(plain, 3)


@pytest.mark.parametrize("stream", [False, True])
async def test_after_a_tool_result_the_answer_is_always_text(stream: bool) -> None:
    for seed in STREAM_SEEDS if stream else SEEDS:
        body = {"messages": TOOL_RESULT, "tools": [READ_FILE], "tool_choice": "required"}
        if stream:
            events = await _stream(body, seed)
            text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-2])
            assert text and events[-2]["choices"][0]["finish_reason"] == "stop"
        else:
            choice = await _complete(body, seed)
            assert "tool_calls" not in choice["message"] and choice["message"]["content"]
            assert choice["finish_reason"] == "stop"


async def test_asking_for_a_tool_always_gets_a_call_and_tool_choice_none_never_does() -> None:
    for seed in SEEDS:
        asked = await _complete(_body("read the README with a tool", [READ_FILE]), seed)
        assert asked["finish_reason"] == "tool_calls"
        required = _body("summarise the project", [READ_FILE], tool_choice="required")
        assert (await _complete(required, seed))["finish_reason"] == "tool_calls"
        refused = _body("read the README with a tool", [READ_FILE], tool_choice="none")
        assert (await _complete(refused, seed))["finish_reason"] == "stop"


async def test_streamed_call_arrives_in_fragments_that_concatenate_to_json() -> None:
    body = _body("use a tool", [READ_FILE], stream_options={"include_usage": True})
    events = await _stream(body)
    *chunks, finish, usage, done = events
    assert done == DONE
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] > 0
    assert finish["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "tool_calls"}
    first = chunks[0]["choices"][0]["delta"]
    assert first["role"] == "assistant" and first["content"] is None
    [head] = first["tool_calls"]
    assert head["index"] == 0 and head["type"] == "function" and head["id"].startswith("call_")
    assert head["function"] == {"name": "read_file", "arguments": ""}
    pieces = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks[1:]]
    assert len(pieces) > 1
    assert all(p["index"] == 0 and set(p) == {"index", "function"} for p in pieces)
    arguments = "".join(p["function"]["arguments"] for p in pieces)
    assert json.loads(arguments) == EXPECTED_ARGS
    # The same conversation non-streamed calls the same tool with the same arguments.
    choice = await _complete(_body("use a tool", [READ_FILE]))
    assert choice["message"]["tool_calls"][0]["function"]["arguments"] == arguments


async def test_agent_through_the_gateway_takes_one_tool_round_trip(
    gateway_factory: GatewayFactory, sdk: SdkFactory
) -> None:
    settings = make_settings(
        providers=[{"name": "sim", "kind": "simulated"}],
        models=[model("sim", "quick", simulate=FAST)],
    )
    client = sdk(await gateway_factory(settings))
    messages: list[Any] = [{"role": "user", "content": "use a tool to read the README"}]
    stream = await client.chat.completions.create(
        model="sim/quick",
        messages=messages,
        tools=[SDK_TOOL],
        stream=True,
    )
    ids, arguments, reasons = "", "", []
    async for chunk in stream:
        for delta in (chunk.choices[0].delta.tool_calls if chunk.choices else None) or []:
            assert delta.function is not None
            ids += delta.id or ""
            arguments += delta.function.arguments or ""
        reasons += [c.finish_reason for c in chunk.choices if c.finish_reason]
    assert reasons == ["tool_calls"]
    assert json.loads(arguments) == EXPECTED_ARGS
    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": ids,
                    "type": "function",
                    "function": {"name": "read_file", "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": ids, "content": "# tui-gateway"},
    ]
    reply = await client.chat.completions.create(
        model="sim/quick",
        messages=messages,
        tools=[SDK_TOOL],
    )
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.tool_calls is None and reply.choices[0].message.content
