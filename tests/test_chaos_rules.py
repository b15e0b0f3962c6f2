"""The chaos run's rule on an answer's text (scripts/chaos_rules.py): whole, nothing repeated
or lost, as the client reads it from each door."""

from __future__ import annotations

import json

import pytest

from scripts.chaos_rules import DOORS, WORDS, answer_text, not_whole

SAFE8 = " ".join(["safe"] * 8)


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
