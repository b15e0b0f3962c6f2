"""The Responses door without sockets: translation both ways, the store, the stream encoder."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.factories import FakeClock
from tui_gateway.config import ResponsesDialectSettings
from tui_gateway.domain.response_store import ResponseStore
from tui_gateway.proxy.dialects import ResponsesDialect
from tui_gateway.proxy.dialects.responses_output import ResponsesContext, failure_error
from tui_gateway.proxy.dialects.responses_stream import ResponsesStream
from tui_gateway.proxy.dialects.responses_translate import to_chat
from tui_gateway.proxy.errors import APIError

# --- helpers -----------------------------------------------------------------------------


def counter_ids() -> Callable[[], str]:
    numbers = itertools.count(1)
    return lambda: f"{next(numbers):04d}"


def make_dialect(clock: FakeClock, *, ttl_s: float = 60.0, cap: int = 10) -> ResponsesDialect:
    settings = ResponsesDialectSettings(store_ttl_s=ttl_s, store_cap=cap)
    return ResponsesDialect(settings, clock=clock, ids=counter_ids())


def completion(
    content: str | None = "hi there",
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    finish: str = "stop",
    usage: dict[str, Any] | None = None,
) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return json.dumps({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage or {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }).encode()  # fmt: skip


def tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta or {}, "finish_reason": finish}
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [choice]}


def usage_chunk(prompt: int = 5, completion: int = 4) -> dict[str, Any]:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion,
             "total_tokens": prompt + completion}  # fmt: skip
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [], "usage": usage}


def framed(*chunks: dict[str, Any], done: bool = False) -> bytes:
    out = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
    return out + (b"data: [DONE]\n\n" if done else b"")


def fragment(
    index: int, *, id: str | None = None, name: str | None = None, args: str = ""
) -> dict[str, Any]:
    function: dict[str, Any] = {"arguments": args}
    call: dict[str, Any] = {"index": index, "function": function}
    if id is not None:
        call |= {"id": id, "type": "function"}
        function["name"] = name
    return {"tool_calls": [call]}


def parse_events(data: bytes) -> list[dict[str, Any]]:
    """Each `event: NAME\\ndata: {...}` block as its JSON, checking the name matches the type."""
    events = []
    for block in data.decode().split("\n\n"):
        if not block:
            continue
        name_line, data_line = block.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: ")
        event = json.loads(data_line[6:])
        assert event["type"] == name_line[7:]
        events.append(event)
    return events


def names(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


class Recorder:
    """Stands in for the dialect's store: what a stream asked to remember."""

    def __init__(self) -> None:
        self.stored: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, ctx: ResponsesContext, message: dict[str, Any]) -> None:
        self.stored.append((ctx.response_id, message))


def encoder(
    *, store: bool = True, namespaced: dict[str, tuple[str, str]] | None = None
) -> tuple[ResponsesStream, Recorder]:
    ctx = ResponsesContext(
        response_id="resp_1",
        model="auto",
        created_at=100,
        conversation=({"role": "user", "content": "hi"},),
        store=store,
        namespaced=namespaced or {},
    )
    recorder = Recorder()
    return ResponsesStream(ctx, ids=counter_ids(), remember=recorder), recorder


def run(stream: ResponsesStream, *reads: bytes) -> list[dict[str, Any]]:
    events = parse_events(b"".join(stream.events(read) for read in reads))
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]

# --- requests in -------------------------------------------------------------------------


def test_a_string_input_becomes_one_user_message_after_the_instructions() -> None:
    chat, ctx = to_chat({"model": "auto", "input": "hello", "instructions": "be brief"})
    assert chat == {
        "model": "auto",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello"},
        ],
    }
    assert ctx.conversation == ({"role": "user", "content": "hello"},)  # no instructions kept
    assert ctx.instructions == "be brief" and ctx.store is True


def test_message_items_keep_their_roles_and_parts() -> None:
    chat, _ = to_chat({"model": "auto", "input": [
        {"type": "message", "role": "developer", "content": [
            {"type": "input_text", "text": "rule one"}, {"type": "input_text", "text": "rule two"},
        ]},
        {"role": "user", "content": "plain string, no type"},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "what is this?"},
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
        ]},
        {"type": "message", "role": "assistant", "content": [
            {"type": "output_text", "text": "a ", "annotations": []},
            {"type": "output_text", "text": "cat"},
        ]},
        {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "s"}]},
    ]})  # fmt: skip
    assert chat["messages"] == [
        {"role": "system", "content": "rule one\nrule two"},  # developer: what every upstream takes
        {"role": "user", "content": "plain string, no type"},
        {"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
        ]},
        {"role": "assistant", "content": "a cat"},
        {"role": "system", "content": "s"},
    ]  # fmt: skip


def test_function_calls_join_one_assistant_turn_and_outputs_become_tool_messages() -> None:
    chat, _ = to_chat({"model": "auto", "input": [
        {"role": "user", "content": "look around"},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "xyz"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Looking."}]},
        {"type": "function_call", "call_id": "c1", "name": "ls", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "pwd", "arguments": ""},
        {"type": "function_call_output", "call_id": "c1", "output": "a.md"},
        {"type": "function_call_output", "call_id": "c2", "output": [
            {"type": "input_text", "text": "/home"}, {"type": "input_text", "text": "/work"},
        ]},
        {"type": "function_call", "call_id": "c3", "name": "cat", "arguments": "{\"f\": 1}"},
        {"type": "function_call_output", "call_id": "c3", "output": "text"},
    ]})  # fmt: skip
    assert chat["messages"] == [
        {"role": "user", "content": "look around"},
        {"role": "assistant", "content": "Looking.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "ls", "arguments": "{}"}},
            {"id": "c2", "type": "function", "function": {"name": "pwd", "arguments": ""}},
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": "a.md"},
        {"role": "tool", "tool_call_id": "c2", "content": "/home\n/work"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c3", "type": "function", "function": {"name": "cat", "arguments": "{\"f\": 1}"}},
        ]},
        {"role": "tool", "tool_call_id": "c3", "content": "text"},
    ]  # fmt: skip


def test_function_and_namespace_tools_become_chat_tools_and_hosted_ones_are_dropped() -> None:
    params = {"type": "object", "properties": {"cmd": {"type": "string"}}}
    chat, ctx = to_chat({"model": "auto", "input": "hi", "tool_choice": "required",
                         "parallel_tool_calls": False, "tools": [
        {"type": "function", "name": "shell", "description": "run", "parameters": params, "strict": False},
        {"type": "web_search"},
        {"type": "local_shell"},
        {"type": "custom", "name": "apply_patch", "format": {"type": "grammar"}},
        {"type": "namespace", "name": "mcp__github__", "description": "gh", "tools": [
            {"type": "function", "name": "list_prs", "parameters": params},
            {"type": "custom", "name": "freeform"},
        ]},
        {"type": "namespace", "name": "collaboration", "description": "c", "tools": [
            {"type": "function", "name": "spawn_agent"},
        ]},
    ]})  # fmt: skip
    assert chat["tools"] == [
        {"type": "function", "function": {"name": "shell", "description": "run", "parameters": params, "strict": False}},
        {"type": "function", "function": {"name": "mcp__github__list_prs", "parameters": params}},
        {"type": "function", "function": {"name": "collaboration__spawn_agent", "parameters": {"type": "object"}}},
    ]  # fmt: skip
    assert chat["tool_choice"] == "required" and chat["parallel_tool_calls"] is False
    assert ctx.namespaced == {
        "mcp__github__list_prs": ("mcp__github__", "list_prs"),
        "collaboration__spawn_agent": ("collaboration", "spawn_agent"),
    }


def test_a_namespaced_call_in_the_input_goes_upstream_by_its_flattened_name() -> None:
    tools = [{"type": "namespace", "name": "crm", "description": "", "tools": [
        {"type": "function", "name": "find"}]}]  # fmt: skip
    chat, _ = to_chat({"model": "auto", "tools": tools, "input": [
        {"type": "function_call", "call_id": "c1", "namespace": "crm", "name": "find", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "none"},
    ]})  # fmt: skip
    assert chat["messages"][0]["tool_calls"][0]["function"]["name"] == "crm__find"


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", "auto"),
        ("none", "none"),
        (
            {"type": "function", "name": "shell"},
            {"type": "function", "function": {"name": "shell"}},
        ),
        ({"type": "web_search"}, "auto"),
        ({"type": "allowed_tools", "mode": "required", "tools": []}, "required"),
    ],
)
def test_tool_choice_is_translated(choice: Any, expected: Any) -> None:
    tools = [{"type": "function", "name": "shell"}]
    chat, _ = to_chat({"model": "auto", "input": "hi", "tools": tools, "tool_choice": choice})
    assert chat["tool_choice"] == expected


def test_with_only_hosted_tools_no_tool_fields_go_upstream() -> None:
    chat, _ = to_chat({"model": "auto", "input": "hi", "tools": [{"type": "web_search"}],
                       "tool_choice": "required", "parallel_tool_calls": True})  # fmt: skip
    assert not {"tools", "tool_choice", "parallel_tool_calls"} & chat.keys()


def test_sampling_limits_and_streaming_are_translated_and_unknown_fields_dropped() -> None:
    chat, ctx = to_chat({
        "model": "auto", "input": "hi", "stream": True, "max_output_tokens": 50,
        "temperature": 0.2, "top_p": 0.9, "store": False, "reasoning": {"effort": "high"},
        "include": ["reasoning.encrypted_content"], "prompt_cache_key": "k",
        "client_metadata": {"a": "b"}, "metadata": {"m": "1"}, "service_tier": "flex",
        "truncation": "auto", "something_new": [1, 2],
        "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": True}},
    })  # fmt: skip
    assert chat == {
        "model": "auto",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 50,
        "temperature": 0.2,
        "top_p": 0.9,
        "response_format": {"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True}},
    }  # fmt: skip
    assert ctx.store is False and ctx.echo["metadata"] == {"m": "1"}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": 5}, "input"),
        ({"input": ""}, "input"),
        ({"input": []}, "input"),
        ({"input": ["hi"]}, "input[0]"),
        ({"input": [{"type": "message", "role": "bot", "content": "x"}]}, "input[0].role"),
        ({"input": [{"role": "user", "content": 5}]}, "input[0].content"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_text", "text": 3}]}]},
            "input[0].content[0].text",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0].image_url",
        ),
        (
            {"input": [{"type": "function_call", "name": "x", "arguments": "{}"}]},
            "input[0].call_id",
        ),
        (
            {"input": [{"type": "function_call", "call_id": "c", "name": "x", "arguments": {}}]},
            "input[0].arguments",
        ),
        (
            {"input": [{"type": "function_call_output", "call_id": "c", "output": 3}]},
            "input[0].output",
        ),
        ({"input": [{"type": 3}]}, "input[0].type"),
        ({"instructions": 3}, "instructions"),
        ({"tools": "shell"}, "tools"),
        ({"tools": [{"type": "function"}]}, "tools[0].name"),
        ({"tools": [{"type": "function", "name": "f", "parameters": "x"}]}, "tools[0].parameters"),
        ({"tools": [{"type": "namespace", "name": "n"}]}, "tools[0].tools"),
        ({"tool_choice": "always"}, "tool_choice"),
        ({"tool_choice": {"type": "function"}}, "tool_choice.name"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"max_output_tokens": "9"}, "max_output_tokens"),
        ({"temperature": "hot"}, "temperature"),
        ({"stream": "yes"}, "stream"),
        ({"store": 1}, "store"),
        ({"parallel_tool_calls": "no"}, "parallel_tool_calls"),
        ({"previous_response_id": 5}, "previous_response_id"),
        ({"metadata": []}, "metadata"),
        ({"include": "all"}, "include"),
        ({"text": {"format": "json"}}, "text.format"),
        ({"model": 5}, "model"),
    ],
)
def test_a_field_of_the_wrong_type_is_a_400_naming_it(body: dict[str, Any], param: str) -> None:
    with pytest.raises(APIError) as caught:
        to_chat({"model": "auto", "input": "hi", **body})
    assert caught.value.status == 400 and caught.value.param == param


def test_parse_marks_the_call_as_the_responses_dialect() -> None:
    call = make_dialect(FakeClock()).parse({"model": "auto-fast", "input": "hi", "stream": True})
    assert call.dialect == "responses" and call.model == "auto-fast" and call.stream
    assert call.context.response_id == "resp_0001"
    assert call.body["stream_options"] == {"include_usage": True}


# --- replies out -------------------------------------------------------------------------


def test_a_whole_reply_is_a_completed_response_object() -> None:
    clock = FakeClock(1_700_000_000.5)
    dialect = make_dialect(clock)
    call = dialect.parse({"model": "auto", "input": "hi", "instructions": "be brief",
                          "metadata": {"k": "v"}})  # fmt: skip
    usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10,
             "prompt_tokens_details": {"cached_tokens": 2}}  # fmt: skip
    response = json.loads(dialect.reply(call, completion("hello", usage=usage)))
    assert response["id"] == "resp_0001" and response["object"] == "response"
    assert response["created_at"] == 1_700_000_000 and response["status"] == "completed"
    assert response["model"] == "auto" and response["instructions"] == "be brief"
    assert response["error"] is None and response["incomplete_details"] is None
    assert response["store"] is True and response["previous_response_id"] is None
    assert response["metadata"] == {"k": "v"} and response["tools"] == []
    assert response["output"] == [{
        "id": "msg_0002", "type": "message", "status": "completed", "role": "assistant",
        "content": [{"type": "output_text", "text": "hello", "annotations": [], "logprobs": []}],
    }]  # fmt: skip
    assert response["usage"] == {
        "input_tokens": 7,
        "input_tokens_details": {"cached_tokens": 2},
        "output_tokens": 3,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 10,
    }


def test_tool_calls_in_a_whole_reply_become_function_call_items() -> None:
    dialect = make_dialect(FakeClock())
    tools = [{"type": "namespace", "name": "crm", "description": "", "tools": [
        {"type": "function", "name": "find"}]}]  # fmt: skip
    call = dialect.parse({"model": "auto", "input": "hi", "tools": tools})
    calls = [tool_call("call_a", "crm__find", '{"q": 1}'), tool_call("call_b", "other", "{}")]
    response = json.loads(
        dialect.reply(call, completion(None, tool_calls=calls, finish="tool_calls"))
    )
    assert response["status"] == "completed"
    assert response["output"] == [
        {"id": "fc_0002", "type": "function_call", "status": "completed", "call_id": "call_a",
         "name": "find", "namespace": "crm", "arguments": '{"q": 1}'},
        {"id": "fc_0003", "type": "function_call", "status": "completed", "call_id": "call_b",
         "name": "other", "arguments": "{}"},
    ]  # fmt: skip


def test_a_reply_cut_at_max_tokens_is_incomplete() -> None:
    dialect = make_dialect(FakeClock())
    call = dialect.parse({"model": "auto", "input": "hi", "max_output_tokens": 3})
    response = json.loads(dialect.reply(call, completion("a b c", finish="length")))
    assert response["status"] == "incomplete" and response["max_output_tokens"] == 3
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["output"][0]["status"] == "incomplete"


# --- previous_response_id and the store ----------------------------------------------------


def test_a_previous_response_restores_its_conversation_without_its_instructions() -> None:
    clock = FakeClock()
    dialect = make_dialect(clock)
    first = dialect.parse({"model": "auto", "input": "one", "instructions": "old rules"})
    first_id = json.loads(dialect.reply(first, completion("reply one")))["id"]
    second = dialect.parse({"model": "auto", "input": "two", "instructions": "new rules",
                            "previous_response_id": first_id})  # fmt: skip
    assert second.body["messages"] == [
        {"role": "system", "content": "new rules"},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "reply one"},
        {"role": "user", "content": "two"},
    ]
    assert second.context.previous_response_id == first_id


def test_a_stored_tool_call_is_restored_so_its_output_can_follow() -> None:
    dialect = make_dialect(FakeClock())
    first = dialect.parse(
        {"model": "auto", "input": "go", "tools": [{"type": "function", "name": "ls"}]}
    )
    calls = [tool_call("call_1", "ls", "{}")]
    first_id = json.loads(dialect.reply(first, completion(None, tool_calls=calls)))["id"]
    second = dialect.parse({"model": "auto", "previous_response_id": first_id, "input": [
        {"type": "function_call_output", "call_id": "call_1", "output": "a.md"}]})  # fmt: skip
    assert second.body["messages"] == [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "call_1", "content": "a.md"},
    ]


def test_store_false_stores_nothing_so_continuing_it_is_not_found() -> None:
    dialect = make_dialect(FakeClock())
    first = dialect.parse({"model": "auto", "input": "one", "store": False})
    first_id = json.loads(dialect.reply(first, completion()))["id"]
    assert dialect.store_counts().stored == 0
    with pytest.raises(APIError) as caught:
        dialect.parse({"model": "auto", "input": "two", "previous_response_id": first_id})
    assert caught.value.status == 400 and caught.value.code == "previous_response_not_found"
    assert caught.value.param == "previous_response_id"


def test_an_expired_previous_response_is_not_found() -> None:
    clock = FakeClock()
    dialect = make_dialect(clock, ttl_s=60)
    first_id = json.loads(dialect.reply(dialect.parse({"model": "a", "input": "x"}), completion()))[
        "id"
    ]
    clock.advance(59.9)
    dialect.parse({"model": "a", "input": "y", "previous_response_id": first_id})  # still there
    clock.advance(0.1)
    with pytest.raises(APIError) as caught:
        dialect.parse({"model": "a", "input": "y", "previous_response_id": first_id})
    assert caught.value.code == "previous_response_not_found"


def test_the_store_forgets_after_its_ttl_and_exactly_at_it() -> None:
    clock = FakeClock()
    store = ResponseStore(ttl_s=10, cap=5)
    store.put("r1", ({"role": "user", "content": "a"},), now=clock())
    clock.advance(9.99)
    assert store.get("r1", now=clock()) == ({"role": "user", "content": "a"},)
    clock.advance(0.01)
    assert store.get("r1", now=clock()) is None
    assert store.counts(now=clock()).stored == 0


def test_the_store_drops_the_oldest_beyond_its_cap() -> None:
    clock = FakeClock()
    store = ResponseStore(ttl_s=100, cap=2)
    for name in ("r1", "r2", "r3"):
        store.put(name, (), now=clock())
        clock.advance(1)
    assert store.get("r1", now=clock()) is None
    assert store.get("r2", now=clock()) == () and store.get("r3", now=clock()) == ()
    counts = store.counts(now=clock())
    assert counts.as_json() == {"stored": 2, "cap": 2, "ttl_s": 100}


def test_the_store_expires_older_entries_while_keeping_newer_ones() -> None:
    clock = FakeClock()
    store = ResponseStore(ttl_s=10, cap=5)
    store.put("old", (), now=clock())
    clock.advance(5)
    store.put("new", (), now=clock())
    clock.advance(5)
    assert store.get("old", now=clock()) is None and store.get("new", now=clock()) == ()


@pytest.mark.parametrize(("ttl_s", "cap"), [(0, 1), (1, 0)])
def test_a_store_without_room_or_time_is_refused(ttl_s: float, cap: int) -> None:
    with pytest.raises(ValueError):
        ResponseStore(ttl_s=ttl_s, cap=cap)


# --- the stream encoder ------------------------------------------------------------------


def test_a_streamed_text_answer_has_the_full_event_sequence() -> None:
    stream, recorder = encoder()
    events = run(
        stream,
        framed(chunk({"role": "assistant", "content": "Hel"})),
        framed(chunk({"content": "lo"}), chunk(finish="stop"), usage_chunk(5, 2)),
        b"data: [DONE]\n\n",
    )
    assert names(events) == TEXT_EVENTS
    added, part_added = events[2], events[3]
    assert added["item"] == {"id": "msg_0001", "type": "message", "status": "in_progress",
                             "role": "assistant", "content": []}  # fmt: skip
    assert part_added["part"]["text"] == "" and part_added["item_id"] == "msg_0001"
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert [d["delta"] for d in deltas] == ["Hel", "lo"]
    assert all(
        (d["item_id"], d["output_index"], d["content_index"]) == ("msg_0001", 0, 0) for d in deltas
    )
    assert events[6]["text"] == "Hello" and events[7]["part"]["text"] == "Hello"
    done_item = events[8]["item"]
    assert done_item["status"] == "completed" and done_item["content"][0]["text"] == "Hello"
    completed = events[-1]["response"]
    assert completed["status"] == "completed" and completed["output"] == [done_item]
    assert completed["usage"]["input_tokens"] == 5 and completed["usage"]["output_tokens"] == 2
    assert completed["usage"]["total_tokens"] == 7
    assert recorder.stored == [("resp_1", {"role": "assistant", "content": "Hello"})]
    assert stream.events(b"data: [DONE]\n\n") == b"" and stream.keepalive() == b""


def test_text_then_a_tool_call_in_fragments_yields_two_whole_items() -> None:
    stream, recorder = encoder()
    events = run(
        stream,
        framed(chunk({"role": "assistant", "content": "Let me look."})),
        framed(chunk(fragment(0, id="call_9", name="read", args=""))),
        framed(chunk(fragment(0, args='{"pa')), chunk(fragment(0, args='th": "a.md"}'))),
        framed(chunk(finish="tool_calls"), usage_chunk(), done=True),
    )
    assert names(events) == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.completed",
    ]  # fmt: skip
    call_added = events[8]
    assert call_added["output_index"] == 1
    assert call_added["item"] == {"id": "fc_0002", "type": "function_call", "status": "in_progress",
                                  "call_id": "call_9", "name": "read", "arguments": ""}  # fmt: skip
    assert [e["delta"] for e in events[9:11]] == ['{"pa', 'th": "a.md"}']
    assert events[11]["arguments"] == '{"path": "a.md"}' and events[11]["name"] == "read"
    call_done = events[12]["item"]
    assert call_done["arguments"] == '{"path": "a.md"}' and call_done["status"] == "completed"
    assert [i["type"] for i in events[-1]["response"]["output"]] == ["message", "function_call"]
    assert recorder.stored[0][1] == {
        "role": "assistant",
        "content": "Let me look.",
        "tool_calls": [{"id": "call_9", "type": "function",
                        "function": {"name": "read", "arguments": '{"path": "a.md"}'}}],
    }  # fmt: skip


def test_two_parallel_tool_calls_are_two_items_each_done_before_completed() -> None:
    stream, _ = encoder(namespaced={"crm__find": ("crm", "find")})
    events = run(
        stream,
        framed(chunk({"role": "assistant", "content": None} | fragment(0, id="c0", name="crm__find"))),
        framed(chunk(fragment(0, args='{"a":'))),
        framed(chunk(fragment(0, args="1}"))),
        framed(chunk(fragment(1, id="c1", name="ls")), chunk(fragment(1, args="{}"))),
        framed(chunk(finish="tool_calls"), done=True),
    )  # fmt: skip
    done = [e for e in events if e["type"] == "response.output_item.done"]
    assert [(e["output_index"], e["item"]["call_id"], e["item"]["arguments"]) for e in done] == [
        (0, "c0", '{"a":1}'),
        (1, "c1", "{}"),
    ]
    assert done[0]["item"]["name"] == "find" and done[0]["item"]["namespace"] == "crm"
    assert names(events)[-1] == "response.completed"
    assert names(events).index("response.output_item.done") < names(events).index(
        "response.completed"
    )
    assert not any(e["type"].startswith("response.output_text") for e in events)


def test_finish_reason_length_ends_with_response_incomplete() -> None:
    stream, recorder = encoder()
    events = run(
        stream,
        framed(chunk({"content": "cut"}), chunk(finish="length"), usage_chunk(), done=True),
    )
    assert names(events)[-1] == "response.incomplete"
    response = events[-1]["response"]
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert events[-2]["item"]["status"] == "incomplete"
    assert "response.completed" not in names(events)
    assert len(recorder.stored) == 1  # an incomplete answer can still be continued


def test_keepalives_before_anything_start_the_response_then_repeat_in_progress() -> None:
    stream, _ = encoder()
    first = parse_events(stream.keepalive())
    assert names(first) == ["response.created", "response.in_progress"]
    assert (
        first[0]["response"]["status"] == "in_progress" and first[0]["response"]["id"] == "resp_1"
    )
    second = parse_events(stream.keepalive())
    assert names(second) == ["response.in_progress"] and second[0]["sequence_number"] == 2
    rest = parse_events(
        stream.events(framed(chunk({"content": "x"}), chunk(finish="stop"), done=True))
    )
    assert rest[0]["type"] == "response.output_item.added"  # no second response.created
    assert [e["sequence_number"] for e in rest] == list(range(3, 3 + len(rest)))


@pytest.mark.parametrize(
    ("error", "code", "says"),
    [
        (APIError(429, "all 1 candidates failed", code="rate_limit_exceeded",
                  headers={"Retry-After": "7"}), "rate_limit_exceeded", "try again in 7s"),
        (APIError(502, "m failed after the stream started: HTTP 429", code="rate_limited"),
         "rate_limit_exceeded", "try again in 5s"),
        (APIError(429, "slow down, retry after 12 seconds", code="rate_limit_exceeded"),
         "rate_limit_exceeded", "try again in 12s"),
        (APIError(400, "too long", code="context_length_exceeded"), "context_length_exceeded",
         "too long"),
        (APIError(502, "m failed after the stream started: no data for 1 s", type="stream_timeout",
                  code="stall"), "server_error", "no data for 1 s"),
        (APIError(503, "the gateway is shutting down", code="shutdown"), "server_error",
         "shutting down"),
    ],
)  # fmt: skip
def test_a_failure_after_some_text_ends_with_response_failed_in_codes_codex_knows(
    error: APIError, code: str, says: str
) -> None:
    stream, recorder = encoder()
    events = run(stream, framed(chunk({"role": "assistant", "content": "half"})))
    failed = parse_events(stream.failed(error))
    assert names(failed) == ["response.failed"]
    assert failed[0]["sequence_number"] == events[-1]["sequence_number"] + 1
    response = failed[0]["response"]
    assert response["status"] == "failed" and response["error"]["code"] == code
    assert says in response["error"]["message"]
    assert response["output"][0]["status"] == "incomplete"
    assert response["output"][0]["content"][0]["text"] == "half"
    assert recorder.stored == []  # a broken answer is not stored
    assert stream.events(framed(chunk({"content": "late"}))) == b"" and stream.failed(error) == b""


def test_a_failure_before_anything_still_starts_the_response_first() -> None:
    stream, _ = encoder()
    events = parse_events(stream.failed(APIError(504, "timed out", code="upstream_timeout")))
    assert names(events) == ["response.created", "response.in_progress", "response.failed"]
    assert [e["sequence_number"] for e in events] == [0, 1, 2]
    assert events[-1]["response"]["output"] == []


def test_the_rate_limit_message_matches_what_codex_parses() -> None:
    """Codex reads the delay with `(?i)try again in\\s*(\\d+(?:\\.\\d+)?)\\s*(s|ms|seconds?)`."""
    error = failure_error(
        APIError(429, "busy", code="rate_limit_exceeded", headers={"Retry-After": "3"})
    )
    match = re.search(r"(?i)try again in\s*(\d+(?:\.\d+)?)\s*(s|ms|seconds?)", error["message"])
    assert match is not None and match.group(1) == "3" and match.group(2) == "s"


def test_usage_in_the_finish_chunk_itself_is_reported() -> None:
    stream, _ = encoder()
    last = chunk(finish="stop") | {"usage": {"prompt_tokens": 9, "completion_tokens": 1}}
    events = run(stream, framed(chunk({"content": "x"}), last, done=True))
    assert events[-1]["response"]["usage"]["input_tokens"] == 9
    assert events[-1]["response"]["usage"]["total_tokens"] == 10


def test_done_without_a_finish_reason_still_closes_items_and_completes() -> None:
    stream, _ = encoder()
    events = run(stream, framed(chunk({"content": "x"})), b"data: [DONE]\n\n")
    assert names(events)[-4:] == [
        "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.completed",
    ]  # fmt: skip


def test_store_false_streams_are_not_remembered() -> None:
    stream, recorder = encoder(store=False)
    run(stream, framed(chunk({"content": "x"}), chunk(finish="stop"), done=True))
    assert recorder.stored == []


def test_the_dialect_stores_a_streamed_reply_when_its_encoder_sees_the_end() -> None:
    dialect = make_dialect(FakeClock())
    call = dialect.parse({"model": "auto", "input": "hi", "stream": True, "instructions": "x"})
    stream = dialect.encoder(call, "req1")
    stream.events(framed(chunk({"content": "streamed"}), chunk(finish="stop")))
    assert dialect.store_counts().stored == 0  # not before the end
    stream.events(b"data: [DONE]\n\n")
    follow = dialect.parse({"model": "auto", "input": "more",
                            "previous_response_id": call.context.response_id})  # fmt: skip
    assert follow.body["messages"] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "streamed"},
        {"role": "user", "content": "more"},
    ]
