"""The chaos run's rule on a successful answer (scripts/chaos_rules.py): its text whole, nothing
repeated or lost, or its one tool call whole, as the client reads them from each door."""

from __future__ import annotations

import json

import pytest

from scripts.chaos_rules import DOORS, WORDS, answer_calls, answer_text, not_one_call, not_whole

SAFE8 = " ".join(["safe"] * 8)
CALL_TEXT = ("get_weather", '{"path": "README.md"}')


def lorem(n: int) -> str:
    return " ".join(WORDS[i % len(WORDS)] for i in range(n))


@pytest.mark.parametrize(
    "text",
    [
        lorem(5), lorem(8), lorem(20), SAFE8,
        lorem(2) + SAFE8,  # broken after two words, rescued by a model that answers its own
        lorem(1) + " " + SAFE8,
        "safe safe" + lorem(20),  # and the other way round
    ],
)  # fmt: skip
def test_whole_answers_and_rescued_ones_pass(text: str) -> None:
    assert not_whole(text) is None


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (lorem(2) + " " + lorem(8), "repeated"),  # a restart relayed, not dropped
        (lorem(3) + " " + lorem(8)[len(lorem(2)) + 1 :], "repeated"),  # a repeated word
        ("lorem dolor sit amet consectetur", "repeated or lost"),  # a word lost
        (lorem(3), "not whole"),  # broken off and told it ended
        ("", "not whole"),
        (SAFE8 + " safe", "more than one"),
        (lorem(5) + " sed", "repeated or lost"),
        (lorem(4) + " lore", "never sends"),  # half a word
    ],
)
def test_repeated_lost_or_broken_text_is_caught(text: str, why: str) -> None:
    assert why in (not_whole(text) or "")


def sse(*events: tuple[str | None, object]) -> bytes:
    blocks = [
        (f"event: {name}\n" if name else "") + f"data: {json.dumps(data)}" for name, data in events
    ]
    return ("\n\n".join([*blocks, ": keep-alive"]) + "\n\n").encode()


def test_the_text_is_read_as_each_door_streams_it() -> None:
    chat, messages, responses = DOORS
    delta = {"choices": [{"index": 0, "delta": {"content": "lorem"}}]}
    more = {"choices": [{"index": 0, "delta": {"content": " ipsum"}}]}
    assert (
        answer_text(chat, True, sse((None, delta), (None, more)) + b"data: [DONE]\n\n")
        == "lorem ipsum"
    )
    text_delta = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": "lorem"},
    }
    ping = {"type": "ping"}
    assert (
        answer_text(messages, True, sse(("ping", ping), ("content_block_delta", text_delta)))
        == "lorem"
    )
    out = {"type": "response.output_text.delta", "delta": " ipsum"}
    assert answer_text(responses, True, sse(("response.output_text.delta", out))) == " ipsum"


def test_the_text_is_read_from_each_doors_whole_body() -> None:
    chat, messages, responses = DOORS
    body = {"choices": [{"message": {"role": "assistant", "content": "lorem"}}]}
    assert answer_text(chat, False, json.dumps(body).encode()) == "lorem"
    body = {"type": "message", "content": [{"type": "text", "text": "lorem"}]}
    assert answer_text(messages, False, json.dumps(body).encode()) == "lorem"
    item = {"type": "message", "content": [{"type": "output_text", "text": "lorem"}]}
    body = {"output": [{"type": "reasoning"}, item]}
    assert answer_text(responses, False, json.dumps(body).encode()) == "lorem"


def test_a_tool_call_is_read_as_each_door_streams_it_and_must_be_whole() -> None:
    chat, messages, responses = DOORS
    opened = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather"}}
    pieces = [
        {"index": 0, "function": {"arguments": part}} for part in ('{"path": ', '"README.md"}')
    ]
    chunks = [
        {"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]} for call in (opened, *pieces)
    ]
    calls = answer_calls(chat, True, sse(*((None, c) for c in chunks)))
    assert calls == [("get_weather", '{"path": "README.md"}')] and not_one_call(calls) is None
    block = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
    half = {"type": "input_json_delta", "partial_json": '{"path": "READ'}
    stream = sse(
        (
            "content_block_start",
            {"type": "content_block_start", "index": 1, "content_block": block},
        ),
        ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": half}),
    )
    assert "not JSON" in (not_one_call(answer_calls(messages, True, stream)) or "")
    item = {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"}
    done = {"type": "response.output_item.done", "output_index": 0, "item": item}
    calls = answer_calls(responses, True, sse(("response.output_item.done", done)))
    assert "not the one whole call" in (not_one_call(calls) or "")
    assert "not the one whole call" in (not_one_call([CALL_TEXT, CALL_TEXT]) or "")


def test_a_tool_call_is_read_from_each_doors_whole_body() -> None:
    chat, messages, responses = DOORS
    function = {"name": "get_weather", "arguments": CALL_TEXT[1]}
    body = {"choices": [{"message": {"content": None, "tool_calls": [{"function": function}]}}]}
    assert answer_calls(chat, False, json.dumps(body).encode()) == [CALL_TEXT]
    use = {"type": "tool_use", "name": "get_weather", "input": {"path": "README.md"}}
    body = {"content": [{"type": "text", "text": "lorem"}, use]}
    assert not_one_call(answer_calls(messages, False, json.dumps(body).encode())) is None
    item = {"type": "function_call", "name": "get_weather", "arguments": CALL_TEXT[1]}
    assert answer_calls(responses, False, json.dumps({"output": [item]}).encode()) == [CALL_TEXT]
