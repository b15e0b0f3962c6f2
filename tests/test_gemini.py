"""Gemini: translation both ways (pure), and GeminiUpstream against the local fake Gemini API."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from typing import Any, cast

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.fake_gemini import RECEIVED, ReceivedRequest, make_app
from tui_gateway.config import ModelSettings, ProviderKind, ProviderSettings
from tui_gateway.domain.errors import (
    ErrorKind,
    RateLimited,
    Unavailable,
    UpstreamClientError,
    UpstreamError,
    WrappedError,
)
from tui_gateway.providers.gemini import DEFAULT_BASE_URL, GeminiUpstream, gemini_error, retry_delay
from tui_gateway.providers.gemini_reply import (
    StreamTranslator,
    finish_reason,
    from_gemini,
    usage_of,
)
from tui_gateway.providers.gemini_translate import FOREIGN_SIGNATURE, clean_schema, to_gemini
from tui_gateway.providers.http import UpstreamClient
from tui_gateway.providers.sse import DONE
from tui_gateway.providers.tool_ids import encode_call_id, split_call_id, strip_signature_ids

KEY = "gemini-test-key"
USER = [{"role": "user", "content": "hi"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "Search the code base",
            "strict": True,
            "parameters": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {"query": {"type": "string"}},
                "required": ["query"],
                "additionalProperties": False,
            },
        },
    }
]


def _settings(base_url: str = "") -> ProviderSettings:
    kind = cast(ProviderKind, "gemini")  # the config wiring is not part of these tests
    return ProviderSettings(name="gemini", kind=kind, base_url=base_url, api_keys=(KEY,))


def _model(model_id: str) -> ModelSettings:
    return ModelSettings(provider="gemini", id=model_id)


def _call(
    call_id: str, name: str = "search", args: str = '{"query": "x"}', **extra: Any
) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": args},
        **extra,
    }


# --- OpenAI request -> Gemini ------------------------------------------------------------------


def test_system_messages_become_the_system_instruction_and_same_role_turns_merge() -> None:
    request = to_gemini(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use Python."}]},
                {"role": "user", "content": "hi"},
                {"role": "user", "content": [{"type": "text", "text": "there"}]},
                {"role": "assistant", "content": "hello"},
                {"role": "assistant", "content": ""},
                {"role": "user", "content": "bye"},
            ],
            "model": "ignored",
            "stream": True,
        }
    )
    assert request["systemInstruction"] == {"parts": [{"text": "Be brief.\n\nUse Python."}]}
    assert request["contents"] == [
        {"role": "user", "parts": [{"text": "hi"}, {"text": "there"}]},
        {"role": "model", "parts": [{"text": "hello"}]},
        {"role": "user", "parts": [{"text": "bye"}]},
    ]
    assert set(request) == {"contents", "systemInstruction"}


def test_a_system_only_request_becomes_a_user_turn() -> None:
    request = to_gemini({"messages": [{"role": "system", "content": "Name this chat."}]})
    assert request == {"contents": [{"role": "user", "parts": [{"text": "Name this chat."}]}]}


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        ({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}, {"inlineData": {"mimeType": "image/png", "data": "iVBOR"}}),
        ({"type": "image_url", "image_url": {"url": "https://x.test/cat.png"}}, {"text": "[image not forwarded: https://x.test/cat.png]"}),
        ({"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE"}}, {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}}),
        ({"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}}, {"text": "[input_audio part not forwarded]"}),
    ],
)  # fmt: skip
def test_content_parts_become_inline_data_or_a_note(
    part: dict[str, Any], expected: dict[str, Any]
) -> None:
    request = to_gemini(
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "see"}, part]}]}
    )
    assert request["contents"][0]["parts"] == [{"text": "see"}, expected]


@pytest.mark.parametrize(
    ("calls", "signatures"),
    [
        ([_call(encode_call_id("call_1", "SIG1"))], ["SIG1"]),
        ([_call("call_1", extra_content={"google": {"thought_signature": "SIG2"}})], ["SIG2"]),
        ([_call(encode_call_id("call_1", "OLD"), extra_content={"google": {"thought_signature": "NEW"}})], ["NEW"]),
        ([_call("call_1"), _call("call_2")], [FOREIGN_SIGNATURE, None]),
        ([_call(encode_call_id("a", "S")), _call("b")], ["S", None]),
    ],
    ids=["in-id", "extra-content", "extra-content-wins", "foreign-history", "parallel"],
)  # fmt: skip
def test_assistant_tool_calls_carry_their_thought_signatures(
    calls: list[dict[str, Any]], signatures: list[str | None]
) -> None:
    request = to_gemini(
        {"messages": USER + [{"role": "assistant", "content": None, "tool_calls": calls}]}
    )
    parts = request["contents"][1]["parts"]
    assert [p.get("thoughtSignature") for p in parts] == signatures
    assert all(
        p["functionCall"] == {"name": "search", "args": {"query": "x"}} for p in parts
    )  # no `id`


def test_tool_results_become_function_responses_named_after_their_call() -> None:
    call_id = encode_call_id("call_9", "SIG")
    request = to_gemini(
        {
            "messages": USER
            + [
                {
                    "role": "assistant",
                    "content": "Looking.",
                    "tool_calls": [_call(call_id), _call("call_b", name="read")],
                },
                {"role": "tool", "tool_call_id": call_id, "content": '{"hits": 3}'},
                {"role": "tool", "tool_call_id": "call_b", "content": "plain text"},
                {
                    "role": "tool",
                    "tool_call_id": "call_9",
                    "content": [{"type": "text", "text": "by base id"}],
                },
            ]
        }
    )
    assert request["contents"][1]["parts"][0] == {"text": "Looking."}
    assert request["contents"][2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "search", "response": {"hits": 3}}},
            {"functionResponse": {"name": "read", "response": {"output": "plain text"}}},
            {"functionResponse": {"name": "search", "response": {"output": "by base id"}}},
        ],
    }


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("none", {"mode": "NONE"}),
        ("auto", {"mode": "AUTO"}),
        ("required", {"mode": "ANY"}),
        ({"type": "function", "function": {"name": "search"}}, {"mode": "ANY", "allowedFunctionNames": ["search"]}),
        (None, None),
    ],
)  # fmt: skip
def test_tool_choice_becomes_a_function_calling_mode(
    choice: Any, config: dict[str, Any] | None
) -> None:
    request = to_gemini({"messages": USER, "tools": TOOLS, "tool_choice": choice})
    assert request.get("toolConfig") == (config and {"functionCallingConfig": config})
    assert request["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "search",
                    "description": "Search the code base",
                    "parameters": {
                        "type": "object",
                        "properties": {"query": {"type": "string"}},
                        "required": ["query"],
                    },
                }
            ]
        }
    ]


def test_a_tool_without_parameters_is_declared_without_a_schema() -> None:
    tools = [
        {
            "type": "function",
            "function": {"name": "now", "parameters": {"type": "object", "properties": {}}},
        }
    ]
    assert to_gemini({"messages": USER, "tools": tools})["tools"] == [
        {"functionDeclarations": [{"name": "now"}]}
    ]


@pytest.mark.parametrize(
    ("options", "config"),
    [
        ({"temperature": 0.2, "top_p": 0.9, "n": 2}, {"temperature": 0.2, "topP": 0.9, "candidateCount": 2}),
        ({"max_tokens": 100}, {"maxOutputTokens": 100}),
        ({"max_tokens": 100, "max_completion_tokens": 50}, {"maxOutputTokens": 50}),
        ({"stop": "END"}, {"stopSequences": ["END"]}),
        ({"stop": ["a", "b"]}, {"stopSequences": ["a", "b"]}),
        ({"response_format": {"type": "json_object"}}, {"responseMimeType": "application/json"}),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "r", "strict": True, "schema": {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False}}}}, {"responseMimeType": "application/json", "responseSchema": {"type": "object", "properties": {"a": {"type": "integer"}}}}),
        ({"response_format": {"type": "text"}, "user": "u1", "stream_options": {"include_usage": True}}, None),
    ],
)  # fmt: skip
def test_sampling_options_become_the_generation_config(
    options: dict[str, Any], config: dict[str, Any] | None
) -> None:
    assert to_gemini({"messages": USER, **options}).get("generationConfig") == config


@pytest.mark.parametrize(
    ("schema", "cleaned"),
    [
        ({"type": "object", "additionalProperties": False, "$schema": "x", "strict": True, "properties": {}}, {"type": "object", "properties": {}}),
        ({"type": "object", "properties": {"strict": {"type": "boolean", "$id": "s"}, "format": {"type": "string"}}}, {"type": "object", "properties": {"strict": {"type": "boolean"}, "format": {"type": "string"}}}),
        ({"type": ["string", "null"]}, {"type": "string", "nullable": True}),
        ({"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None}, {"nullable": True, "type": "integer", "default": None}),
        ({"oneOf": [{"type": "integer"}, {"type": "string"}]}, {"anyOf": [{"type": "integer"}, {"type": "string"}]}),
        ({"const": "fixed"}, {"enum": ["fixed"]}),
        ({"type": "integer", "enum": [1, 2]}, {"type": "integer"}),
        ({"type": "string", "format": "uri"}, {"type": "string"}),
        ({"type": "string", "format": "date-time"}, {"type": "string", "format": "date-time"}),
        ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a", "gone"]}, {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}),
        ({"type": "array", "items": {"$ref": "#/$defs/Item"}, "$defs": {"Item": {"type": "object", "title": "Item", "properties": {"n": {"type": "integer"}}}}}, {"type": "array", "items": {"type": "object", "title": "Item", "properties": {"n": {"type": "integer"}}}}),
        ({"$ref": "#/definitions/Node", "definitions": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/definitions/Node"}}}}}, None),
    ],
    ids=["drops-keys", "property-names-kept", "null-type", "optional", "one-of", "const", "int-enum", "format", "date-time", "required", "ref", "recursive-ref"],
)  # fmt: skip
def test_schemas_are_cut_down_to_what_gemini_accepts(
    schema: dict[str, Any], cleaned: dict[str, Any] | None
) -> None:
    result = clean_schema(schema)
    if cleaned is None:  # a recursive $ref: bounded depth, and still only known keys
        assert result["type"] == "object" and "next" in result["properties"]
        assert "$ref" not in json.dumps(result)
    else:
        assert result == cleaned


# --- Gemini reply -> OpenAI --------------------------------------------------------------------


def _reply(
    parts: list[dict[str, Any]], finish: str | None = "STOP", **extra: Any
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "responseId": "r1", **extra}


def test_reply_text_parts_are_concatenated_and_thoughts_left_out() -> None:
    reply = _reply(
        [
            {"text": "plan", "thought": True},
            {"text": "Hello"},
            {"text": " world", "thoughtSignature": "S"},
        ]
    )
    reply["usageMetadata"] = {
        "promptTokenCount": 10,
        "candidatesTokenCount": 4,
        "thoughtsTokenCount": 6,
        "totalTokenCount": 20,
    }
    completion = from_gemini(reply, model="gemini-2.5-flash", created=7)
    assert completion["id"] == "chatcmpl-r1" and completion["object"] == "chat.completion"
    assert completion["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello world"},
            "finish_reason": "stop",
        }
    ]
    assert completion["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 10,
        "total_tokens": 20,
        "completion_tokens_details": {"reasoning_tokens": 6},
    }


def test_function_calls_become_tool_calls_with_ids_and_signatures() -> None:
    reply = _reply(
        [
            {"functionCall": {"name": "search", "args": {"query": "x"}}, "thoughtSignature": "SIG"},
            {"functionCall": {"name": "read", "args": {}, "id": "gem-7"}},
        ]
    )
    message = from_gemini(reply, model="m", created=0, call_prefix="p")["choices"][0]
    assert message["finish_reason"] == "tool_calls"
    assert message["message"]["content"] is None
    first, second = message["message"]["tool_calls"]
    assert first == {
        "id": "call_p_0__thought__SIG",
        "type": "function",
        "function": {"name": "search", "arguments": '{"query": "x"}'},
        "extra_content": {"google": {"thought_signature": "SIG"}},
    }
    assert second == {
        "id": "gem-7",
        "type": "function",
        "function": {"name": "read", "arguments": "{}"},
    }


def test_tool_calls_and_results_round_trip_with_ids_and_signatures() -> None:
    reply = _reply(
        [{"functionCall": {"name": "search", "args": {"query": "x"}}, "thoughtSignature": "SIG"}]
    )
    assistant = from_gemini(reply, model="m", created=0, call_prefix="p")["choices"][0]["message"]
    call_id = assistant["tool_calls"][0]["id"]
    assert split_call_id(call_id) == ("call_p_0", "SIG")
    follow_up = to_gemini(
        {
            "messages": USER
            + [assistant, {"role": "tool", "tool_call_id": call_id, "content": "found"}]
        }
    )
    assert follow_up["contents"][1:] == [
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {"name": "search", "args": {"query": "x"}},
                    "thoughtSignature": "SIG",
                }
            ],
        },
        {
            "role": "user",
            "parts": [{"functionResponse": {"name": "search", "response": {"output": "found"}}}],
        },
    ]
    # The same history sent to any other upstream loses the signature, not the pairing.
    stripped = strip_signature_ids(
        USER + [assistant, {"role": "tool", "tool_call_id": call_id, "content": "found"}]
    )
    assert stripped[1]["tool_calls"][0]["id"] == stripped[2]["tool_call_id"] == "call_p_0"


@pytest.mark.parametrize(
    ("reason", "calls", "expected"),
    [
        ("STOP", False, "stop"), ("STOP", True, "tool_calls"), ("MAX_TOKENS", False, "length"),
        ("MAX_TOKENS", True, "length"), ("SAFETY", False, "content_filter"), ("RECITATION", False, "content_filter"),
        ("BLOCKLIST", False, "content_filter"), ("PROHIBITED_CONTENT", False, "content_filter"), ("SPII", True, "content_filter"),
        ("OTHER", False, "stop"), ("MALFORMED_FUNCTION_CALL", False, "stop"), (None, True, "tool_calls"),
    ],
)  # fmt: skip
def test_finish_reasons_map_to_openai(reason: str | None, calls: bool, expected: str) -> None:
    assert finish_reason(reason, tool_calls=calls) == expected


def test_usage_metadata_maps_to_usage() -> None:
    assert usage_of({"promptTokenCount": 5, "candidatesTokenCount": 3, "cachedContentTokenCount": 2}) == {
        "prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8, "prompt_tokens_details": {"cached_tokens": 2},
    }  # fmt: skip
    assert usage_of(None) is None


def test_a_blocked_prompt_is_an_empty_content_filtered_reply() -> None:
    reply = {
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 4, "totalTokenCount": 4},
    }
    completion = from_gemini(reply, model="m", created=0)
    assert completion["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": ""},
            "finish_reason": "content_filter",
        }
    ]
    with pytest.raises(WrappedError):
        from_gemini({"usageMetadata": {}}, model="m", created=0)


def test_stream_translator_emits_role_content_tool_calls_finish_and_usage() -> None:
    translator = StreamTranslator(model="m", created=1, chunk_id="chatcmpl-x", include_usage=True)
    first = translator.feed(_reply([{"text": "Hi"}], finish=None))
    second = translator.feed(
        _reply(
            [{"functionCall": {"name": "f", "args": {"a": 1}}, "thoughtSignature": "S"}],
            usageMetadata={"promptTokenCount": 2, "candidatesTokenCount": 1},
        )
    )
    assert [c["choices"][0]["delta"] for c in first] == [{"role": "assistant", "content": "Hi"}]
    assert second[0]["choices"][0]["delta"]["tool_calls"] == [
        {
            "index": 0,
            "id": "call_x_0__thought__S",
            "type": "function",
            "function": {"name": "f", "arguments": '{"a": 1}'},
            "extra_content": {"google": {"thought_signature": "S"}},
        }
    ]
    assert second[1]["choices"] == [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]
    assert second[2]["choices"] == [] and second[2]["usage"]["total_tokens"] == 3
    assert translator.done


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            {"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}},
            429,
            "RESOURCE_EXHAUSTED",
        ),
        ({"error": {"message": "busy", "status": "UNAVAILABLE"}}, 503, "UNAVAILABLE"),
        ({"error": {"message": "odd", "status": "SOMETHING_NEW"}}, 502, "SOMETHING_NEW"),
        ({"error": "flat"}, 502, None),
    ],
)
def test_errors_inside_a_200_keep_their_status(
    body: dict[str, Any], status: int, code: str | None
) -> None:
    error = gemini_error(body)
    assert isinstance(error, WrappedError) and (error.status, error.code) == (status, code)
    assert gemini_error({"candidates": []}) is None


def test_retry_delay_is_read_from_retry_info() -> None:
    body = {
        "error": {
            "code": 429,
            "details": [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure"},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "27s"},
            ],
        }
    }
    assert retry_delay(json.dumps(body).encode()) == 27.0
    assert retry_delay(b'{"error": {"details": "RetryInfo"}}') is None


def test_urls_default_to_googles_endpoint_and_accept_full_model_paths() -> None:
    upstream = GeminiUpstream(_settings(), cast(UpstreamClient, None))
    assert (
        upstream.url(_model("gemini-2.0-flash"), "generateContent")
        == f"{DEFAULT_BASE_URL}/models/gemini-2.0-flash:generateContent"
    )
    assert upstream.url(_model("tunedModels/mine"), "x").endswith("/v1beta/tunedModels/mine:x")


# --- end to end against the fake Gemini API ------------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[TestServer]:
    server = TestServer(make_app(), host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def gemini(fake: TestServer) -> AsyncIterator[GeminiUpstream]:
    async with UpstreamClient() as session:
        yield GeminiUpstream(_settings(str(fake.make_url("/v1beta"))), session)


def _received(fake: TestServer) -> list[ReceivedRequest]:
    return fake.app[RECEIVED]


async def _complete(
    gemini: GeminiUpstream, model_id: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    completion = await gemini.complete(body or {"messages": USER}, _model(model_id), api_key=KEY)
    parsed: dict[str, Any] = json.loads(completion.body)
    return parsed


async def _stream(
    gemini: GeminiUpstream,
    model_id: str,
    body: dict[str, Any] | None = None,
    sink: list[bytes] | None = None,
) -> list[bytes]:
    payloads = [] if sink is None else sink
    async with gemini.stream(
        body or {"messages": USER, "stream": True}, _model(model_id), api_key=KEY
    ) as chunks:
        async for batch in chunks:
            payloads.extend(batch.payloads())
    return payloads


def _deltas(payloads: list[bytes]) -> list[tuple[dict[str, Any], str | None]]:
    chunks = [json.loads(p) for p in payloads if p != DONE]
    return [
        (c["choices"][0]["delta"], c["choices"][0]["finish_reason"]) for c in chunks if c["choices"]
    ]


async def test_complete_returns_an_openai_completion_and_sends_the_api_key(
    gemini: GeminiUpstream, fake: TestServer
) -> None:
    completion = await gemini.complete(
        {"messages": USER, "model": "gw/any", "temperature": 0},
        _model("gemini-2.0-flash"),
        api_key=KEY,
    )
    reply = json.loads(completion.body)
    assert reply["choices"][0]["message"] == {"role": "assistant", "content": "hello hello hello"}
    assert reply["choices"][0]["finish_reason"] == "stop"
    assert (completion.prompt_tokens, completion.completion_tokens) == (
        reply["usage"]["prompt_tokens"],
        3,
    )
    (seen,) = _received(fake)
    assert (seen.model, seen.method, seen.query) == ("gemini-2.0-flash", "generateContent", {})
    assert seen.headers["x-goog-api-key"] == KEY and "Authorization" not in seen.headers
    assert seen.body == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "generationConfig": {"temperature": 0},
    }


@pytest.mark.parametrize("include_usage", [True, False])
async def test_stream_yields_openai_chunks_then_done(
    gemini: GeminiUpstream, fake: TestServer, include_usage: bool
) -> None:
    body = {"messages": USER, "stream": True, "stream_options": {"include_usage": include_usage}}
    payloads = await _stream(gemini, "ok;chunks=3,text=yo", body)
    assert payloads[-1] == DONE
    assert _deltas(payloads) == [
        ({"role": "assistant", "content": "yo"}, None), ({"content": " yo"}, None), ({"content": " yo"}, None), ({}, "stop"),
    ]  # fmt: skip
    last = json.loads(payloads[-2])
    assert ("usage" in last) is include_usage
    if include_usage:
        assert last["choices"] == [] and last["usage"]["completion_tokens"] == 3
    (seen,) = _received(fake)
    assert (seen.method, seen.query, seen.headers["x-goog-api-key"]) == (
        "streamGenerateContent",
        {"alt": "sse"},
        KEY,
    )


async def test_tool_calls_round_trip_through_gemini(
    gemini: GeminiUpstream, fake: TestServer
) -> None:
    body = {"messages": USER, "tools": TOOLS, "tool_choice": "required"}
    message = (await _complete(gemini, "tool-call", body))["choices"][0]
    assert message["finish_reason"] == "tool_calls"
    (call,) = message["message"]["tool_calls"]
    assert call["function"] == {"name": "search", "arguments": '{"query": "q0"}'}
    signature = split_call_id(call["id"])[1]
    assert signature and call["extra_content"]["google"]["thought_signature"] == signature
    # The follow-up turn is accepted: the fake checks the signature came back, and no `id` did.
    result = {"role": "tool", "tool_call_id": call["id"], "content": "3 hits"}
    follow_up = {"messages": USER + [message["message"], result], "tools": TOOLS}
    assert (await _complete(gemini, "ok", follow_up))["choices"][0]["message"]["content"]
    sent = _received(fake)[-1].body
    assert sent["contents"][1]["parts"][0]["thoughtSignature"] == signature
    assert sent["contents"][2]["parts"] == [
        {"functionResponse": {"name": "search", "response": {"output": "3 hits"}}}
    ]


async def test_history_from_another_model_gets_the_placeholder_signature(
    gemini: GeminiUpstream,
) -> None:
    history = USER + [
        {"role": "assistant", "tool_calls": [_call("call_abc")]},
        {"role": "tool", "tool_call_id": "call_abc", "content": "ok"},
    ]
    assert (await _complete(gemini, "ok", {"messages": history, "tools": TOOLS}))["choices"][0][
        "finish_reason"
    ] == "stop"


async def test_streamed_parallel_tool_calls_keep_gemini_ids(gemini: GeminiUpstream) -> None:
    body = {"messages": USER, "tools": TOOLS, "stream": True}
    deltas = _deltas(await _stream(gemini, "tool-call;calls=2,ids=1,text=1", body))
    assert deltas[0] == ({"role": "assistant", "content": "Let me check."}, None)
    calls = deltas[1][0]["tool_calls"]
    assert [(c["index"], split_call_id(c["id"])[0]) for c in calls] == [
        (0, "gem-fake-0-0"),
        (1, "gem-fake-0-1"),
    ]
    assert "extra_content" in calls[0] and "extra_content" not in calls[1]
    assert deltas[-1] == ({}, "tool_calls")


@pytest.mark.parametrize(
    ("model_id", "content", "reason"),
    [
        ("max-tokens", "hello hello hello", "length"),
        ("safety", "hello", "content_filter"),
        ("blocked-prompt", "", "content_filter"),
        ("thinking", "hello hello hello", "stop"),
    ],
)
async def test_finish_reasons_end_to_end(
    gemini: GeminiUpstream, model_id: str, content: str, reason: str
) -> None:
    choice = (await _complete(gemini, model_id))["choices"][0]
    assert (choice["message"]["content"], choice["finish_reason"]) == (content, reason)
    deltas = _deltas(await _stream(gemini, model_id))
    assert "".join(d.get("content", "") for d, _ in deltas) == content
    assert deltas[-1][1] == reason


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize(
    ("model_id", "kind", "status", "retry_after"),
    [
        ("error-429;retry=7,header=1", RateLimited, 429, 7.0),
        ("error-429;retry=3", RateLimited, 429, 3.0),
        ("error-503", Unavailable, 503, None),
        ("error-404", UpstreamClientError, 404, None),
        ("wrapped-error", WrappedError, 503, None),
        ("html-200", WrappedError, 502, None),
    ],
)
async def test_failures_map_into_the_error_tree(
    gemini: GeminiUpstream,
    streaming: bool,
    model_id: str,
    kind: type[UpstreamError],
    status: int,
    retry_after: float | None,
) -> None:
    if streaming and model_id == "wrapped-error":
        model_id = "wrapped-error;after=0"
    with pytest.raises(kind) as caught:
        await (_stream(gemini, model_id) if streaming else _complete(gemini, model_id))
    assert (type(caught.value), caught.value.status, caught.value.retry_after_s) == (
        kind,
        status,
        retry_after,
    )


async def test_context_overflow_is_a_refusal_a_larger_model_may_accept(
    gemini: GeminiUpstream,
) -> None:
    with pytest.raises(UpstreamClientError) as caught:
        await _complete(gemini, "context-length")
    assert (caught.value.code, caught.value.kind, caught.value.retryable) == (
        "context_length_exceeded",
        ErrorKind.TRUNCATED,
        True,
    )


async def test_an_error_event_mid_stream_is_raised_from_the_iterator(
    gemini: GeminiUpstream,
) -> None:
    seen: list[bytes] = []
    with pytest.raises(WrappedError) as caught:
        await _stream(gemini, "wrapped-error;after=2,code=500,delay_ms=40", sink=seen)
    assert caught.value.status == 500 and caught.value.code == "UNAVAILABLE"
    assert [d for d, _ in _deltas(seen)] == [
        {"role": "assistant", "content": "hello"},
        {"content": " hello"},
    ]


@pytest.mark.parametrize("model_id", ["drop-mid-stream;after=1", "stall-after-first;ms=50"])
async def test_a_dropped_stream_is_truncated(gemini: GeminiUpstream, model_id: str) -> None:
    seen: list[bytes] = []
    with pytest.raises(Unavailable) as caught:
        await _stream(gemini, model_id, sink=seen)
    assert caught.value.kind == ErrorKind.TRUNCATED and len(seen) == 1


async def test_a_stream_cut_before_any_finish_reason_has_no_done(gemini: GeminiUpstream) -> None:
    payloads = await _stream(gemini, "cut")
    assert DONE not in payloads and all(reason is None for _, reason in _deltas(payloads))


async def test_an_unreachable_upstream_is_a_connection_failure() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with UpstreamClient() as session:
        gemini = GeminiUpstream(_settings(f"http://127.0.0.1:{port}/v1beta"), session)
        for call in (_complete(gemini, "ok"), _stream(gemini, "ok")):
            with pytest.raises(Unavailable) as caught:
                await call
            assert caught.value.kind == ErrorKind.CONNECTION


@pytest.mark.parametrize(
    ("contents", "tools", "message"),
    [
        ([{"role": "user", "parts": [{"text": "hi"}]}], [{"functionDeclarations": [{"name": "f", "parameters": {"type": "object", "additionalProperties": False}}]}], 'Unknown name "additionalProperties"'),
        ([{"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}, "id": "c1"}, "thoughtSignature": "skip_thought_signature_validator"}]}], None, 'Unknown name "id"'),
        ([{"role": "user", "parts": [{"text": "hi"}]}, {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]}], None, "missing a thought_signature"),
        ([{"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "forged"}]}], None, "Corrupted thought signature"),
        ([{"role": "assistant", "parts": [{"text": "hi"}]}], None, "valid role"),
        ([], None, "contents is not specified"),
    ],
    ids=["schema", "call-id", "no-signature", "forged-signature", "role", "empty"],
)  # fmt: skip
async def test_the_fake_refuses_what_gemini_refuses(
    fake: TestServer, contents: list[Any], tools: Any, message: str
) -> None:
    body: dict[str, Any] = {"contents": contents} | ({"tools": tools} if tools else {})
    async with aiohttp.ClientSession() as session:
        url = fake.make_url("/v1beta/models/ok:generateContent")
        async with session.post(url, json=body, headers={"x-goog-api-key": KEY}) as resp:
            error = (await resp.json())["error"]
    assert (resp.status, error["status"]) == (400, "INVALID_ARGUMENT") and message in error[
        "message"
    ]
