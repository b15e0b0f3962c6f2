"""Conversations keyed by their history (issue 9): a follow-up continues its conversation, and two
conversations that open with the same fixed preamble (aider, Qwen Code) stay apart."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.conftest import GatewayFactory
from tests.factories import API_KEY, FakeClock, make_settings, model
from tui_gateway.domain.conversations import ConversationIndex

Msg = dict[str, Any]
SYSTEM: Msg = {"role": "system", "content": "You are a coding assistant."}
# aider opens every conversation with the same example exchange.
EXAMPLE = [
    {"role": "user", "content": "Change get_factorial() to use math.factorial"},
    {"role": "assistant", "content": "To make this change we need to modify mathweb/flask/app.py"},
]


def user(text: str) -> Msg:
    return {"role": "user", "content": text}


def assistant(text: str) -> Msg:
    return {"role": "assistant", "content": text}


def index(clock: FakeClock | None = None, **options: Any) -> tuple[ConversationIndex, FakeClock]:
    return ConversationIndex(**{"ttl_s": 1800.0, "cap": 1000, **options}), clock or FakeClock()


def test_a_follow_up_turn_continues_its_conversation() -> None:
    conversations, clock = index()
    first = [SYSTEM, user("fix the bug in parser.py")]
    key = conversations.session_for("auto", first, clock())
    second = [*first, assistant("Done: the off-by-one is fixed."), user("now add a test")]
    third = [*second, assistant("Added."), user("thanks")]
    assert conversations.session_for("auto", second, clock()) == key
    assert conversations.session_for("auto", third, clock()) == key


def test_conversations_that_share_a_fixed_preamble_do_not_share_a_session() -> None:
    """Keyed by the first user message, every aider conversation was one session."""
    conversations, clock = index()
    a1 = [SYSTEM, *EXAMPLE, user("rename Foo to Bar")]
    b1 = [SYSTEM, *EXAMPLE, user("why does the build fail?")]
    a, b = (
        conversations.session_for("auto", a1, clock()),
        conversations.session_for("auto", b1, clock()),
    )
    assert a != b
    a2 = [*a1, assistant("Renamed."), user("and in the docs too")]
    b2 = [*b1, assistant("A missing import."), user("fix it")]
    assert conversations.session_for("auto", b2, clock()) == b
    assert conversations.session_for("auto", a2, clock()) == a


def test_an_agent_loop_of_tool_results_stays_in_its_conversation() -> None:
    conversations, clock = index()
    first = [SYSTEM, user("list the files")]
    key = conversations.session_for("auto", first, clock())
    call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "ls", "arguments": "{}"}}
        ],
    }
    looped = [*first, call, {"role": "tool", "tool_call_id": "c1", "content": "a.py b.py"}]
    assert conversations.session_for("auto", looped, clock()) == key


def test_the_same_history_in_another_mode_is_another_conversation() -> None:
    conversations, clock = index()
    messages = [SYSTEM, user("hello")]
    assert conversations.session_for("auto", messages, clock()) != conversations.session_for(
        "auto-smart", messages, clock()
    )


def test_text_parts_and_a_plain_string_are_the_same_turn() -> None:
    conversations, clock = index()
    key = conversations.session_for("auto", [user("fix the bug")], clock())
    parts = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "fix the "}, {"type": "text", "text": "bug"}],
        }
    ]
    follow = [*parts, assistant("ok"), user("more")]
    assert conversations.session_for("auto", follow, clock()) == key


def test_a_conversation_idle_past_the_ttl_starts_afresh() -> None:
    clock = FakeClock()
    conversations, _ = index(clock, ttl_s=60.0)
    first = [user("hello")]
    key = conversations.session_for("auto", first, clock())
    clock.advance(60.0)
    follow = [*first, assistant("hi"), user("again")]
    assert conversations.session_for("auto", follow, clock()) != key


def test_the_index_keeps_at_most_cap_states() -> None:
    conversations, clock = index(cap=3)
    for n in range(10):
        conversations.session_for("auto", [user(f"question {n}")], clock())
    assert len(conversations) == 3


def test_long_turns_cost_their_edges_not_their_length() -> None:
    """Two long turns that differ only in the middle are the same turn: the summary reads the
    length and 256 characters at each end (the price of hashing per turn, not per byte)."""
    conversations, clock = index()
    a = "x" * 300 + "A" * 100 + "y" * 300
    b = "x" * 300 + "B" * 100 + "y" * 300
    key = conversations.session_for("auto", [user(a)], clock())
    assert (
        conversations.session_for("auto", [user(b), assistant("r"), user("next")], clock()) == key
    )


@pytest.mark.parametrize(
    ("header", "tag"),
    [("X-Claude-Code-Session-Id", "x-claude-code-session-id"), ("session-id", "session-id"),
     ("x-session-affinity", "x-session-affinity"), ("X-Session-Id", "x-session-id")],
)  # fmt: skip
async def test_a_client_named_session_is_used_and_the_state_says_which_header(
    gateway_factory: GatewayFactory, mock_url: str, header: str, tag: str
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok")]))
    body = {"model": "auto", "messages": [user("hi")]}
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        for text in ("hi", "something else entirely"):
            body = {"model": "auto", "messages": [user(text)]}
            async with http.post(
                gateway.base_url + "/chat/completions", json=body, headers={header: "conv-42"}
            ) as resp:
                assert resp.status == 200
        async with http.get(gateway.base_url.removesuffix("/v1") + "/gateway/state") as resp:
            sticky = (await resp.json())["sticky"]
    assert [(s["key"], s["source"], s["turns"]) for s in sticky] == [("conv-42", tag, 2)]
