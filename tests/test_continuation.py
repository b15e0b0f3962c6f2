"""What a continuation asks for and how its reply is dressed (issue 11), on constructed chunks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tui_gateway.domain.errors import ErrorKind, UpstreamClientError, UpstreamError
from tui_gateway.providers.sse import SSEBatch
from tui_gateway.proxy.continuation import (
    INSTRUCTION,
    AnswerSoFar,
    Continued,
    Unaligned,
    refuses_prefill,
)

BODY = {"model": "auto", "messages": [{"role": "user", "content": "Tell me about Paris."}]}


def chunk(cid: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return json.dumps({"id": cid, "object": "chat.completion.chunk", "choices": [choice]}).encode()


def sent(*payloads: bytes) -> AnswerSoFar:
    return AnswerSoFar.of([SSEBatch.of(list(payloads)).framed])


def texts(batch: SSEBatch) -> str:
    out = []
    for p in batch.payloads():
        if p != b"[DONE]":
            out.append(json.loads(p)["choices"][0]["delta"].get("content") or "")
    return "".join(out)


ANSWER = sent(
    chunk("a1", {"role": "assistant", "content": "Paris is the capital"}),
    chunk("a1", {"content": " of France."}),
)


def test_the_answer_so_far_is_read_from_what_was_relayed() -> None:
    assert ANSWER.text == "Paris is the capital of France."
    assert ANSWER.answer_id == "a1" and ANSWER.calls == ()


def test_prefill_sends_the_text_as_a_trailing_assistant_message() -> None:
    body = ANSWER.request(BODY, "prefill")
    assert body["messages"][1:] == [{"role": "assistant", "content": ANSWER.text}]
    assert body["model"] == "auto"


def test_instruct_adds_a_user_turn_asking_to_go_on() -> None:
    body = ANSWER.request(BODY, "instruct")
    assert body["messages"][1] == {"role": "assistant", "content": ANSWER.text}
    assert body["messages"][2] == {"role": "user", "content": INSTRUCTION}


def test_with_nothing_said_yet_the_original_request_is_asked_again() -> None:
    nothing = sent(chunk("a1", {"role": "assistant", "content": None}))
    assert nothing.request(BODY, "prefill") is BODY


def test_calls_already_made_are_named_and_a_repeat_is_dropped() -> None:
    call = {"index": 0, "id": "c0", "type": "function",
            "function": {"name": "read", "arguments": '{"path":"a"}'}}  # fmt: skip
    answer = sent(chunk("a1", {"role": "assistant", "content": "Reading."}),
                  chunk("a1", {"tool_calls": [call]}))  # fmt: skip
    body = answer.request(BODY, "instruct")
    assert 'read({"path":"a"})' in body["messages"][-1]["content"]
    again = {**call, "id": "x0"}
    other = {"index": 1, "id": "x1", "type": "function",
             "function": {"name": "grep", "arguments": "{}"}}  # fmt: skip
    out = Continued(answer).feed(SSEBatch.of([chunk("b9", {"tool_calls": [again]}),
                                              chunk("b9", {"tool_calls": [other]})]))  # fmt: skip
    calls = [c for p in out.payloads() for c in json.loads(p)["choices"][0]["delta"]["tool_calls"]]
    assert [(c["id"], c["index"]) for c in calls] == [("x1", 1)]  # numbered after the sent one


def test_a_continuation_is_dressed_as_the_same_answer() -> None:
    joined = Continued(ANSWER)
    out = joined.feed(SSEBatch.of([
        chunk("b7", {"role": "assistant", "content": "Paris is the capital of France."}),
        chunk("b7", {"content": " It has many bridges."}),
        chunk("b7", {}, finish="stop"),
        b"[DONE]",
    ]))  # fmt: skip
    payloads = [json.loads(p) for p in out.payloads()[:-1]]
    assert {p["id"] for p in payloads} == {"a1"}
    assert not any("role" in p["choices"][0]["delta"] for p in payloads)
    assert texts(out) == " It has many bridges."  # the restart was dropped
    assert payloads[-1]["choices"][0]["finish_reason"] == "stop" and out.done


def test_the_opening_is_held_across_chunks_until_the_join_is_known() -> None:
    joined = Continued(ANSWER)
    assert joined.feed(SSEBatch.of([chunk("b", {"content": "Paris"})])).framed == b""
    assert joined.feed(SSEBatch.of([chunk("b", {"content": " is the"})])).framed == b""
    out = joined.feed(SSEBatch.of([chunk("b", {"content": " capital of France. Yes."})]))
    assert texts(out) == " Yes."


def test_a_diverging_continuation_raises() -> None:
    with pytest.raises(Unaligned):
        Continued(ANSWER).feed(SSEBatch.of([
            chunk("b", {"content": "Paris is the capital of Europe, they say"}),
            chunk("b", {}, finish="stop"),
        ]))  # fmt: skip


def test_held_text_is_released_when_the_stream_ends() -> None:
    joined = Continued(ANSWER)
    assert joined.feed(SSEBatch.of([chunk("b", {"content": " the"})])).framed == b""
    assert texts(joined.end()) == " the"


@pytest.mark.parametrize(
    ("message", "refusal"),
    [
        ("This model does not support assistant message prefill.", True),
        ("The final message must be a user message", True),
        ("messages: roles must alternate", False),
    ],
)
def test_a_400_about_the_prefill_is_told_from_other_400s(message: str, refusal: bool) -> None:
    assert refuses_prefill(UpstreamClientError(message, status=400, kind=ErrorKind.REJECTED)) is (
        refusal
    )
    assert not refuses_prefill(UpstreamError(message, kind=ErrorKind.SERVER))
