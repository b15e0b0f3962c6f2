"""The Anthropic Messages door without sockets: translation both ways, and the stream encoder."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tui_gateway.config import AnthropicDialectSettings
from tui_gateway.domain.errors import ErrorKind, Unavailable
from tui_gateway.domain.flow import Flow
from tui_gateway.proxy.dialects import dialect_for_path
from tui_gateway.proxy.dialects.messages import MessagesDialect
from tui_gateway.proxy.dialects.messages_estimate import (
    IMAGE_TOKENS,
    estimate_tokens,
    input_estimate,
)
from tui_gateway.proxy.dialects.messages_reply import error_type, to_message
from tui_gateway.proxy.dialects.messages_stream import PING, MessagesStream
from tui_gateway.proxy.dialects.messages_translate import MessagesContext, gateway_model
from tui_gateway.proxy.errors import APIError
from tui_gateway.proxy.outcomes import exhausted

DIALECT = MessagesDialect(AnthropicDialectSettings(), known=("auto", "auto-fast", "mock/m1"))
CONTEXT = MessagesContext(client_model="claude-sonnet-4-5", input_tokens=7)


def parse(**body: Any) -> dict[str, Any]:
    """The OpenAI body a Messages request becomes."""
    body.setdefault("model", "claude-sonnet-4-5")
    body.setdefault("max_tokens", 100)
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return DIALECT.parse(body).body


def bad(**body: Any) -> APIError:
    with pytest.raises(APIError) as caught:
        parse(**body)
    return caught.value


# --- model names ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("claude-sonnet-4-5", "auto"),
        ("claude-haiku-4-5-20251001", "auto-fast"),
        ("claude-opus-4-1", "auto"),
        ("auto-fast", "auto-fast"),  # a name the gateway knows is kept
        ("mock/m1", "mock/m1"),
    ],
)
def test_model_names_map_through_the_globs_first_match_wins(name: str, expected: str) -> None:
    assert parse(model=name)["model"] == expected


def test_a_model_name_with_no_mapping_is_a_404_not_found() -> None:
    patterns = {"claude-*": "auto"}
    assert gateway_model("gpt-4o", patterns, ()) is None
    dialect = MessagesDialect(AnthropicDialectSettings(models=patterns))
    with pytest.raises(APIError) as caught:
        dialect.parse(
            {"model": "gpt-4o", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
        )
    assert caught.value.status == 404 and caught.value.param == "model"
    status, body = _error(dialect, caught.value)
    assert status == 404 and body["error"]["type"] == "not_found_error"
    assert "gpt-4o" in body["error"]["message"]


# --- request translation --------------------------------------------------------------------


def test_system_string_and_text_blocks_become_one_leading_system_message() -> None:
    assert parse(system="be brief")["messages"][0] == {"role": "system", "content": "be brief"}
    blocks = [
        {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Be careful."},
    ]
    body = parse(system=blocks)
    assert body["messages"][0] == {
        "role": "system",
        "content": "You are Claude Code.\n\nBe careful.",
    }
    assert "cache_control" not in json.dumps(body)


def test_a_system_role_inside_messages_stays_where_it_is() -> None:
    body = parse(
        messages=[
            {"role": "user", "content": "a"},
            {"role": "system", "content": [{"type": "text", "text": "now be terse"}]},
            {"role": "user", "content": "b"},
        ]
    )
    assert body["messages"][1] == {"role": "system", "content": "now be terse"}


def test_plain_fields_carry_over_and_unhonourable_ones_are_dropped() -> None:
    body = parse(
        max_tokens=321,
        temperature=0.5,
        top_p=0.9,
        top_k=40,
        stop_sequences=["END"],
        metadata={"user_id": "u1"},
        thinking={"type": "enabled", "budget_tokens": 1024},
        context_management={"edits": []},
        output_config={"effort": "high"},
        service_tier="auto",
    )
    assert body["max_tokens"] == 321 and body["temperature"] == 0.5 and body["top_p"] == 0.9
    assert body["top_k"] == 40 and body["stop"] == ["END"]
    for dropped in ("metadata", "thinking", "context_management", "output_config", "service_tier"):
        assert dropped not in body


def test_a_streamed_request_asks_the_upstream_for_usage() -> None:
    body = parse(stream=True)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert "stream_options" not in parse()


def test_images_base64_and_url_become_image_url_parts() -> None:
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
    ]
    [user] = parse(messages=[{"role": "user", "content": content}])["messages"]
    assert user["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
    ]


def test_tool_use_and_tool_result_become_tool_calls_and_tool_messages_in_order() -> None:
    messages = [
        {"role": "user", "content": "list files"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "ls", "input": {"path": "."}},
                {"type": "tool_use", "id": "toolu_2", "name": "pwd", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "and then summarise"},
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.py\nb.py"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": [{"type": "text", "text": "no such dir"}],
                    "is_error": True,
                },
            ],
        },
    ]
    out = parse(messages=messages)["messages"]
    assert out[1] == {
        "role": "assistant",
        "content": "Let me look.",
        "tool_calls": [
            {
                "id": "toolu_1",
                "type": "function",
                "function": {"name": "ls", "arguments": '{"path": "."}'},
            },
            {"id": "toolu_2", "type": "function", "function": {"name": "pwd", "arguments": "{}"}},
        ],
    }
    # Tool results come right after the assistant turn, before the user's other text.
    assert out[2:] == [
        {"role": "tool", "tool_call_id": "toolu_1", "content": "a.py\nb.py"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: no such dir"},
        {"role": "user", "content": "and then summarise"},
    ]
    assert "hmm" not in json.dumps(out)  # thinking never goes upstream


def test_an_assistant_turn_of_only_tool_calls_has_null_content() -> None:
    messages = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": [
                {"type": "redacted_thinking", "data": "x"},
                {"type": "tool_use", "id": "t", "name": "f", "input": {}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]},
    ]
    out = parse(messages=messages)["messages"]
    assert out[1]["content"] is None and out[1]["tool_calls"][0]["id"] == "t"
    assert out[2:] == [{"role": "tool", "tool_call_id": "t", "content": ""}]


def test_tools_and_tool_choice_become_openai_function_tools() -> None:
    tools = [
        {
            "name": "read",
            "description": "Read a file",
            "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
            "cache_control": {"type": "ephemeral"},
        },
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
    ]
    body = parse(tools=tools, tool_choice={"type": "any"})
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "read",
                "description": "Read a file",
                "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
            },
        }
    ]
    assert body["tool_choice"] == "required"
    assert parse(tools=tools, tool_choice={"type": "auto"})["tool_choice"] == "auto"
    assert parse(tools=tools, tool_choice={"type": "none"})["tool_choice"] == "none"
    named = parse(tools=tools, tool_choice={"type": "tool", "name": "read"})
    assert named["tool_choice"] == {"type": "function", "function": {"name": "read"}}
    no_parallel = parse(
        tools=tools, tool_choice={"type": "auto", "disable_parallel_tool_use": True}
    )
    assert no_parallel["parallel_tool_calls"] is False


def test_only_server_tools_means_no_tools_upstream() -> None:
    body = parse(
        tools=[{"type": "web_search_20250305", "name": "web_search"}], tool_choice={"type": "any"}
    )
    assert "tools" not in body and "tool_choice" not in body


@pytest.mark.parametrize(
    ("field", "value", "param"),
    [
        ("max_tokens", "100", "max_tokens"),
        ("max_tokens", 0, "max_tokens"),
        ("system", 5, "system"),
        ("system", [{"type": "text", "text": 3}], "system[0].text"),
        ("messages", [], "messages"),
        ("messages", [{"role": "robot", "content": "x"}], "messages[0].role"),
        ("messages", [{"role": "user", "content": 5}], "messages[0].content"),
        (
            "messages",
            [{"role": "user", "content": [{"type": "text"}]}],
            "messages[0].content[0].text",
        ),
        ("messages", [{"role": "user", "content": [{"text": "x"}]}], "messages[0].content[0].type"),
        (
            "messages",
            [
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "x"}],
                }
            ],
            "messages[0].content[0].input",
        ),
        (
            "messages",
            [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": 1}]}],
            "messages[0].content[0].tool_use_id",
        ),
        (
            "messages",
            [
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "t", "is_error": "yes"}],
                }
            ],
            "messages[0].content[0].is_error",
        ),
        (
            "messages",
            [
                {
                    "role": "user",
                    "content": [{"type": "image", "source": {"type": "base64", "data": "x"}}],
                }
            ],
            "messages[0].content[0].source.media_type",
        ),
        ("tools", {"name": "x"}, "tools"),
        ("tools", [{"name": 5}], "tools[0].name"),
        ("tools", [{"name": "x", "input_schema": []}], "tools[0].input_schema"),
        ("tool_choice", "auto", "tool_choice"),
        ("tool_choice", {"type": "sometimes"}, "tool_choice.type"),
        ("stop_sequences", "END", "stop_sequences"),
        ("temperature", "hot", "temperature"),
        ("top_k", 1.5, "top_k"),
        ("stream", "yes", "stream"),
        ("metadata", "u1", "metadata"),
        ("thinking", True, "thinking"),
        ("model", 42, "model"),
    ],
)
def test_a_wrong_type_is_a_400_invalid_request_error_naming_the_field(
    field: str, value: object, param: str
) -> None:
    error = bad(**{field: value})
    assert error.status == 400 and error.param == param
    assert param in error.message
    status, body = _error(DIALECT, error)
    assert status == 400 and body["error"]["type"] == "invalid_request_error"


def test_parse_records_the_dialect_and_what_the_reply_needs() -> None:
    call = DIALECT.parse(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "x" * 40}],
        }
    )
    assert call.dialect == "messages" and call.model == "auto"
    assert call.context == MessagesContext(client_model="claude-sonnet-4-5", input_tokens=10)


# --- count_tokens ---------------------------------------------------------------------------


def test_the_token_estimate_is_characters_over_four_plus_a_flat_rate_per_image() -> None:
    body = {
        "system": "s" * 8,
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "u" * 8},
                {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
            ]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "t" * 400}]},
        ],
    }  # fmt: skip
    assert input_estimate(body) == 4 + IMAGE_TOKENS  # 16 characters; thinking is not sent
    tool = {"name": "f", "input_schema": {"type": "object"}}
    with_tool = input_estimate({**body, "tools": [tool]})
    assert with_tool > input_estimate(body)
    assert with_tool == input_estimate({**body, "tools": [tool]})  # stable
    assert estimate_tokens([{"role": "user", "content": ""}], None) == 1  # never 0


def test_count_tokens_checks_the_body_like_messages_does() -> None:
    with pytest.raises(APIError) as caught:
        input_estimate({"messages": "hi"})
    assert caught.value.param == "messages"


# --- reply translation ----------------------------------------------------------------------


def completion(
    message: dict[str, Any], finish: str | None = "stop", **choice: Any
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": finish, **choice}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
    }


def test_a_text_reply_is_an_anthropic_message() -> None:
    message = to_message(completion({"role": "assistant", "content": "hello"}), CONTEXT)
    assert message == {
        "id": "msg_chatcmpl-1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "hello"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 11,
            "output_tokens": 3,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


def test_tool_calls_become_tool_use_blocks_and_bad_arguments_become_empty_input() -> None:
    calls = [
        {
            "id": "call_a",
            "type": "function",
            "function": {"name": "ls", "arguments": '{"path": "/"}'},
        },
        {"id": "call_b", "type": "function", "function": {"name": "cat", "arguments": '{"pa'}},
    ]
    message = to_message(
        completion({"role": "assistant", "content": None, "tool_calls": calls}, "tool_calls"),
        CONTEXT,
    )
    assert message["content"] == [
        {"type": "tool_use", "id": "call_a", "name": "ls", "input": {"path": "/"}},
        {"type": "tool_use", "id": "call_b", "name": "cat", "input": {}},
    ]
    assert message["stop_reason"] == "tool_use"


@pytest.mark.parametrize(
    ("finish", "extra", "expected"),
    [
        ("length", {}, ("max_tokens", None)),
        ("stop", {}, ("end_turn", None)),
        (None, {}, ("end_turn", None)),
        ("stop", {"stop_reason": "END"}, ("stop_sequence", "END")),
        ("stop", {"stop_reason": "OTHER"}, ("end_turn", None)),
        ("content_filter", {}, ("refusal", None)),
    ],
)
def test_finish_reasons_map_to_stop_reasons(
    finish: str | None, extra: dict[str, Any], expected: tuple[str, str | None]
) -> None:
    context = MessagesContext(client_model="m", input_tokens=1, stop_sequences=("END",))
    message = to_message(
        completion({"role": "assistant", "content": "x"}, finish, **extra), context
    )
    assert (message["stop_reason"], message["stop_sequence"]) == expected


def test_reasoning_in_a_whole_reply_becomes_a_thinking_block_first() -> None:
    reply = completion({"role": "assistant", "content": "4", "reasoning_content": "2+2"})
    assert to_message(reply, CONTEXT)["content"] == [
        {"type": "thinking", "thinking": "2+2", "signature": ""},
        {"type": "text", "text": "4"},
    ]


def test_reply_returns_json_bytes_under_the_clients_model_name() -> None:
    call = DIALECT.parse(
        {
            "model": "claude-haiku-4-5",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "x"}],
        }
    )
    out = json.loads(
        DIALECT.reply(call, json.dumps(completion({"role": "assistant", "content": "y"})).encode())
    )
    assert out["model"] == "claude-haiku-4-5" and out["content"] == [{"type": "text", "text": "y"}]


# --- errors ---------------------------------------------------------------------------------


def _error(dialect: MessagesDialect, error: APIError) -> tuple[int, dict[str, Any]]:
    response = dialect.error_response(error)
    assert response.body is not None and isinstance(response.body, bytes)
    return response.status, json.loads(response.body)


def _exhausted(*statuses: int | None) -> APIError:
    """The gateway's own all-candidates-failed error, after attempts that failed so."""
    flow = Flow(id="r", session="s", requested_model="auto", stream=False, started=0.0, clock=float)
    for n, status in enumerate(statuses):
        kind = ErrorKind.CONNECTION if status is None else ErrorKind.SERVER
        flow.failures.append((f"m/{n}", Unavailable("busy", status=status, kind=kind)))
    return exhausted(flow)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (APIError(400, "bad"), (400, "invalid_request_error")),
        (APIError(401, "who"), (401, "authentication_error")),
        (APIError(403, "no"), (403, "permission_error")),
        (APIError(404, "none"), (404, "not_found_error")),
        (APIError(405, "method"), (405, "invalid_request_error")),
        (APIError(413, "big"), (413, "request_too_large")),
        (APIError(429, "slow down"), (429, "rate_limit_error")),
        (APIError(500, "oops", type="server_error"), (500, "api_error")),
        (APIError(503, "no model", code="no_candidate"), (503, "api_error")),
        (APIError(504, "late", code="upstream_timeout"), (504, "api_error")),
        (_exhausted(503, 529), (529, "overloaded_error")),
        (_exhausted(503, 500), (502, "api_error")),
        (_exhausted(None), (502, "api_error")),
    ],
)
def test_errors_map_to_anthropic_types(error: APIError, expected: tuple[int, str]) -> None:
    assert error_type(error) == expected
    status, body = _error(DIALECT, error)
    assert status == expected[0]
    assert body == {"type": "error", "error": {"type": expected[1], "message": error.message}}


def test_a_rate_limit_keeps_its_retry_after() -> None:
    response = DIALECT.error_response(APIError(429, "slow", headers={"Retry-After": "3"}))
    assert response.headers["Retry-After"] == "3"


def test_paths_under_v1_messages_shape_errors_as_anthropic() -> None:
    assert dialect_for_path("/v1/messages").name == "messages"
    assert dialect_for_path("/v1/messages/nope").name == "messages"
    assert dialect_for_path("/v1/chat/completions").name == "chat"


# --- the stream encoder ---------------------------------------------------------------------


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    payload = {"id": "chatcmpl-9", "object": "chat.completion.chunk", "choices": choices, **extra}
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"
USAGE = chunk(None, usage={"prompt_tokens": 20, "completion_tokens": 5})


def events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) for each event, checking each is framed as Anthropic frames them."""
    out = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        name_line, data_line = block.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: ")
        name, data = name_line[7:], json.loads(data_line[6:])
        assert data["type"] == name
        out.append((name, data))
    return out


def run(*reads: bytes, encoder: MessagesStream | None = None) -> list[tuple[str, dict[str, Any]]]:
    encoder = encoder or MessagesStream(CONTEXT, message_id="msg_x")
    return events(b"".join(encoder.events(r) for r in reads))


def names(stream: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [name for name, _ in stream]


def test_a_text_stream_becomes_the_event_sequence_claude_code_expects() -> None:
    stream = run(
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}) + chunk({"content": "lo"}),
        chunk({}, "stop"),
        USAGE + DONE,
    )
    assert names(stream) == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = stream[0][1]["message"]
    assert (
        start["id"] == "msg_x" and start["model"] == "claude-sonnet-4-5" and start["content"] == []
    )
    assert start["usage"] == {
        "input_tokens": 7,
        "output_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    assert stream[1][1] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    assert [d["delta"] for _, d in stream[2:4]] == [
        {"type": "text_delta", "text": "Hel"},
        {"type": "text_delta", "text": "lo"},
    ]
    delta = stream[5][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == 5 and delta["usage"]["input_tokens"] == 20


def tool_fragments(index: int, call_id: str, name: str, parts: list[str]) -> bytes:
    first = {
        "index": index,
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": ""},
    }
    out = chunk({"tool_calls": [first]})
    for part in parts:
        out += chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
    return out


def test_text_then_a_tool_call_in_fragments_gives_two_blocks() -> None:
    stream = run(
        chunk({"role": "assistant", "content": "Looking."}),
        tool_fragments(0, "call_1", "read", ['{"pa', 'th": ', '"a.py"}']),
        chunk({}, "tool_calls"),
        USAGE + DONE,
    )
    starts = [d for n, d in stream if n == "content_block_start"]
    assert [s["index"] for s in starts] == [0, 1]
    assert starts[1]["content_block"] == {
        "type": "tool_use",
        "id": "call_1",
        "name": "read",
        "input": {},
    }
    partial = "".join(
        d["delta"]["partial_json"]
        for n, d in stream
        if n == "content_block_delta" and d["index"] == 1
    )
    assert json.loads(partial) == {"path": "a.py"}
    assert [d["index"] for n, d in stream if n == "content_block_stop"] == [0, 1]
    assert names(stream).index("content_block_stop") < names(stream).index("content_block_start", 2)
    assert stream[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_two_parallel_tool_calls_get_consecutive_blocks() -> None:
    stream = run(
        tool_fragments(0, "call_a", "ls", ['{"path":', '"."}']),
        tool_fragments(1, "call_b", "pwd", ["{}"]),
        chunk({}, "tool_calls") + USAGE + DONE,
    )
    blocks = [d["content_block"] for n, d in stream if n == "content_block_start"]
    assert [(b["id"], b["name"]) for b in blocks] == [("call_a", "ls"), ("call_b", "pwd")]
    assert names(stream)[1:] == [
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]  # fmt: skip


def test_a_tool_call_named_late_opens_once_named_with_the_arguments_so_far() -> None:
    stream = run(
        chunk({"tool_calls": [{"index": 0, "id": "c", "function": {"arguments": '{"a"'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": ": 1}"}}]}),
        chunk({}, "tool_calls") + DONE,
    )
    assert stream[1][1]["content_block"]["name"] == "f"
    assert [d["delta"]["partial_json"] for n, d in stream if n == "content_block_delta"] == [
        '{"a"',
        ": 1}",
    ]


def test_reasoning_deltas_become_a_thinking_block_before_the_text() -> None:
    stream = run(
        chunk({"reasoning_content": "Let me "}) + chunk({"reasoning": "think."}),
        chunk({"content": "42"}),
        chunk({}, "stop") + DONE,
    )
    starts = [d["content_block"] for n, d in stream if n == "content_block_start"]
    assert starts == [
        {"type": "thinking", "thinking": "", "signature": ""},
        {"type": "text", "text": ""},
    ]
    deltas = [d["delta"] for n, d in stream if n == "content_block_delta"]
    assert deltas == [
        {"type": "thinking_delta", "thinking": "Let me "},
        {"type": "thinking_delta", "thinking": "think."},
        {"type": "text_delta", "text": "42"},
    ]


def test_a_stream_cut_by_length_stops_with_max_tokens() -> None:
    stream = run(chunk({"content": "a b c"}), chunk({}, "length"), USAGE + DONE)
    assert stream[-2][1]["delta"]["stop_reason"] == "max_tokens"


def test_done_without_a_finish_reason_still_closes_the_message_as_end_turn() -> None:
    stream = run(chunk({"content": "a"}) + chunk({"content": "b"}), DONE)
    assert names(stream)[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    delta = stream[-2][1]
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"]["output_tokens"] == 2  # no usage came: one per delta
    assert delta["usage"]["input_tokens"] == 7  # the request's estimate


def test_a_keepalive_before_anything_sends_message_start_then_ping() -> None:
    encoder = MessagesStream(CONTEXT, message_id="msg_x")
    first = events(encoder.keepalive())
    assert names(first) == ["message_start", "ping"]
    assert encoder.keepalive() == PING == b'event: ping\ndata: {"type": "ping"}\n\n'
    rest = run(chunk({"content": "hi"}), chunk({}, "stop") + DONE, encoder=encoder)
    assert "message_start" not in names(rest) and names(rest)[0] == "content_block_start"


def test_failed_after_some_text_ends_with_an_error_event_naming_the_failure() -> None:
    encoder = MessagesStream(CONTEXT, message_id="msg_x")
    run(chunk({"content": "partial"}), encoder=encoder)
    error = APIError(502, "mock/m failed after the stream started: stall", type="stream_timeout")
    tail = events(encoder.failed(error))
    assert tail == [
        ("error", {"type": "error", "error": {"type": "api_error", "message": error.message}})
    ]
    assert encoder.events(DONE) == b""  # nothing follows an error


def test_an_empty_tail_adds_nothing() -> None:
    encoder = MessagesStream(CONTEXT, message_id="msg_x")
    run(chunk({"content": "x"}, "stop") + DONE, encoder=encoder)
    assert encoder.events(b"") == b"" and encoder.events(DONE) == b""


def test_a_continuation_stays_in_the_same_text_block() -> None:
    """Continuation re-dresses the next model's chunks as the same answer: one block."""
    stream = run(
        chunk({"role": "assistant", "content": "part"}),
        chunk({"content": " rest"}),
        chunk({}, "stop") + DONE,
    )
    assert names(stream).count("content_block_start") == 1
