"""The mock upstream continues a broken answer the ways real models do, on demand."""

from __future__ import annotations

import json
from typing import Any, TypeAlias

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pytest_aiohttp import AiohttpClient

from scripts.mock_continuation import (
    PREFILL_REFUSAL,
    Continuing,
    recognise,
    reply_pieces,
    spaced,
)
from scripts.mock_upstream import RECEIVED, make_app

Client: TypeAlias = "TestClient[web.Request, web.Application]"

ANSWER = spaced("lorem ipsum dolor sit amet consectetur adipiscing elit".split())
INSTRUCTION = "Your previous message was cut off. Continue it from exactly where it stops."
USER = {"role": "user", "content": "say something"}


def _prefill(sent: str) -> list[dict[str, Any]]:
    return [USER, {"role": "assistant", "content": sent}]


def _instruct(sent: str) -> list[dict[str, Any]]:
    return [*_prefill(sent), {"role": "user", "content": INSTRUCTION}]


# The pure functions.


def test_trailing_assistant_message_is_a_prefill_continuation() -> None:
    assert recognise(_prefill("lorem ipsum")) == Continuing("prefill", "lorem ipsum")


def test_cut_off_user_turn_after_the_answer_is_an_instructed_continuation() -> None:
    assert recognise(_instruct("lorem ipsum")) == Continuing("instruct", "lorem ipsum")


@pytest.mark.parametrize(
    "messages",
    [
        [USER],
        [USER, {"role": "assistant", "content": "lorem"}, {"role": "user", "content": "more"}],
        [USER, {"role": "user", "content": INSTRUCTION}],  # no assistant turn before it
        [
            {"role": "assistant", "content": "x"},
            {"role": "user", "content": [{"type": "text", "text": "cut off"}]},
        ],
        [],
        None,
    ],
)
def test_other_conversations_are_fresh_requests(messages: Any) -> None:
    assert recognise(messages) is None


def test_exact_gives_the_rest_after_a_cut_between_words() -> None:
    assert reply_pieces(ANSWER, "lorem ipsum dolor", "exact") == ANSWER[3:]
    assert reply_pieces(ANSWER, "lorem ipsum dolor", "exact")[0] == " sit"


def test_exact_after_a_mid_word_cut_starts_with_the_rest_of_that_word() -> None:
    assert reply_pieces(ANSWER, "lorem ipsum dol", "exact") == ["or", *ANSWER[3:]]
    assert reply_pieces(ANSWER, "lorem ipsum ", "exact") == ["dolor", *ANSWER[3:]]


def test_exact_of_the_whole_answer_is_empty() -> None:
    assert reply_pieces(ANSWER, "".join(ANSWER), "exact") == []


@pytest.mark.parametrize("mode", ["exact", "restart", "repeat-word", "repeat-sentence"])
def test_sent_that_is_not_the_answers_beginning_gets_the_whole_answer(mode: str) -> None:
    assert reply_pieces(ANSWER, "something else entirely", mode) == ANSWER


def test_restart_gives_the_whole_answer() -> None:
    assert reply_pieces(ANSWER, "lorem ipsum dolor", "restart") == ANSWER


def test_repeat_word_repeats_the_last_whole_word_then_goes_on() -> None:
    assert reply_pieces(ANSWER, "lorem ipsum dolor", "repeat-word") == ["dolor", *ANSWER[3:]]
    # "dol" is not whole: the repeat starts at "ipsum", and "dolor" comes whole.
    assert reply_pieces(ANSWER, "lorem ipsum dol", "repeat-word") == ["ipsum", *ANSWER[2:]]


def test_repeat_sentence_repeats_the_last_sentence_then_goes_on() -> None:
    answer = spaced("One two. Three four! Five six? Seven eight.".split())
    text = "".join(answer)
    sent = text[: text.index("Five") + 3]  # "... Fiv"
    assert reply_pieces(answer, sent, "repeat-sentence") == ["Five", " six?", " Seven", " eight."]
    # A sentence just ended: that one is repeated, not an empty one.
    sent = text[: text.index("Five")]
    assert reply_pieces(answer, sent, "repeat-sentence") == ["Three", " four!", *answer[4:]]


def test_repeat_sentence_without_a_sentence_end_repeats_everything() -> None:
    assert reply_pieces(ANSWER, "lorem ipsum dol", "repeat-sentence") == ANSWER


def test_diverge_starts_like_the_answer_then_differs() -> None:
    reply = reply_pieces(ANSWER, "lorem ipsum dolor sit", "diverge")
    assert reply[:2] == ["lorem", " ipsum"]
    assert len(reply) == len(ANSWER)
    assert not set(reply[2:]) & set(ANSWER)
    assert reply_pieces(ANSWER, "", "diverge", same=5)[:5] == ANSWER[:5]


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown continue mode"):
        reply_pieces(ANSWER, "lorem", "paraphrase")


# Through the mock's HTTP API.


@pytest.fixture
async def client(aiohttp_client: AiohttpClient) -> Client:
    return await aiohttp_client(make_app())


async def _streamed_text(client: Client, body: dict[str, Any]) -> tuple[list[str], str | None]:
    """The content of each chunk of a streamed reply, and its last finish_reason."""
    resp = await client.post("/v1/chat/completions", json={"stream": True, **body})
    assert resp.status == 200
    pieces: list[str] = []
    finish = None
    for block in (await resp.text()).split("\n\n"):
        data = block.removeprefix("data: ")
        if not block.startswith("data: ") or data == "[DONE]":
            continue
        choice = json.loads(data)["choices"][0]
        if "content" in choice["delta"]:
            pieces.append(choice["delta"]["content"])
        finish = choice["finish_reason"] or finish
    return pieces, finish


async def test_prefill_continuation_of_ok_streams_exactly_the_rest(client: Client) -> None:
    body = {"model": "ok:chunks=8", "messages": _prefill("lorem ipsum dol")}
    pieces, finish = await _streamed_text(client, body)
    assert pieces == ["or", *ANSWER[3:]]
    assert finish == "stop"
    [record] = client.app[RECEIVED]
    assert record.continuation == "prefill"


async def test_non_streamed_continuation_puts_the_rest_in_the_message(client: Client) -> None:
    body = {"model": "ok:chunks=8,continue=exact", "messages": _instruct("lorem ipsum")}
    resp = await client.post("/v1/chat/completions", json=body)
    reply = await resp.json()
    assert reply["choices"][0]["message"]["content"] == "".join(ANSWER[2:])
    assert reply["usage"]["completion_tokens"] == 6
    [record] = client.app[RECEIVED]
    assert record.continuation == "instruct"


async def test_fresh_request_is_recorded_as_no_continuation(client: Client) -> None:
    pieces, _ = await _streamed_text(client, {"model": "ok:chunks=3", "messages": [USER]})
    assert pieces == ANSWER[:3]
    [record] = client.app[RECEIVED]
    assert record.continuation is None


async def test_prefill_refuse_rejects_prefill_like_a_reasoning_model(client: Client) -> None:
    body = {"model": "ok:prefill=refuse", "stream": True, "messages": _prefill("lorem ipsum")}
    resp = await client.post("/v1/chat/completions", json=body)
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["message"] == PREFILL_REFUSAL
    assert (error["type"], error["param"]) == ("invalid_request_error", "messages")


async def test_prefill_refuse_still_answers_an_instructed_continuation(client: Client) -> None:
    body = {"model": "ok:prefill=refuse,continue=repeat-word", "messages": _instruct("lorem ipsum")}
    pieces, finish = await _streamed_text(client, body)
    assert pieces == ["ipsum", *ANSWER[2:]]
    assert finish == "stop"


async def test_stalling_model_answers_a_continuation_normally(client: Client) -> None:
    body = {"model": "stall-after-first:after=1", "messages": _prefill("lorem")}
    pieces, finish = await _streamed_text(client, body)
    assert pieces == ANSWER[1:]
    assert finish == "stop"


async def test_faulty_models_fault_only_fresh_requests(client: Client) -> None:
    body = {"model": "cut", "messages": _instruct("lorem ipsum dolor sit")}
    pieces, finish = await _streamed_text(client, {**body, "model": "cut:continue=restart"})
    assert (pieces, finish) == (ANSWER, "stop")
    pieces, finish = await _streamed_text(client, {"model": "cut", "messages": [USER]})
    assert (pieces, finish) == (ANSWER, None)  # the fresh request is still cut


async def test_sentence_param_gives_the_default_words_sentences(client: Client) -> None:
    body = {
        "model": "ok:chunks=6,sentence=2,continue=repeat-sentence",
        "messages": _prefill("lorem ipsum. dolor sit. am"),
    }
    pieces, _ = await _streamed_text(client, body)
    assert pieces == ["amet", " consectetur."]


async def test_bad_continue_value_is_a_400(client: Client) -> None:
    resp = await client.post("/v1/chat/completions", json={"model": "ok:continue=nope"})
    assert resp.status == 400
    assert "continue='nope'" in (await resp.json())["error"]["message"]


async def test_shared_fixture_serves_continuations(mock_upstream: TestServer) -> None:
    async with TestClient(mock_upstream) as shared:
        body = {"model": "drop-mid-stream:after=2", "messages": _prefill("lorem ipsum")}
        resp = await shared.post("/v1/chat/completions", json=body)
        assert (await resp.json())["choices"][0]["message"]["content"] == "".join(ANSWER[2:])
