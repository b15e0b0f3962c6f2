"""Tool calls reach the client whole (issue 11): fragments held until each call is complete."""

from __future__ import annotations

import json
from typing import Any

from tui_gateway.providers.sse import SSEBatch
from tui_gateway.proxy.whole_calls import WholeCalls

HEAD = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}


def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return json.dumps({**HEAD, "choices": [choice]}).encode()


def fragment(index: int, *, args: str, id: str | None = None, name: str | None = None) -> bytes:
    call: dict[str, Any] = {"index": index, "function": {"arguments": args}}
    if id is not None:
        call |= {"id": id, "type": "function"}
        call["function"]["name"] = name
    return chunk({"tool_calls": [call]})


def relayed(whole: WholeCalls, *payloads: bytes) -> list[dict[str, Any]]:
    out = whole.through(SSEBatch.of(list(payloads)))
    return [json.loads(p) for p in out.payloads() if p != b"[DONE]"] if out.framed else []


def calls_in(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for ch in chunks for c in ch["choices"][0]["delta"].get("tool_calls", ())]


def test_text_passes_untouched_and_unparsed() -> None:
    batch = SSEBatch.of([chunk({"content": "hi"})])
    assert WholeCalls().through(batch) is batch


def test_a_call_is_held_until_the_next_one_starts_then_sent_whole() -> None:
    whole = WholeCalls()
    assert (
        relayed(whole, fragment(0, args="", id="c0", name="read"), fragment(0, args='{"pa')) == []
    )
    assert relayed(whole, fragment(0, args='th": "a"}')) == []
    out = relayed(whole, fragment(1, args="", id="c1", name="grep"))
    assert calls_in(out) == [
        {"index": 0, "id": "c0", "type": "function",
         "function": {"name": "read", "arguments": '{"path": "a"}'}}
    ]  # fmt: skip
    assert json.loads(calls_in(out)[0]["function"]["arguments"]) == {"path": "a"}
    out = relayed(whole, fragment(1, args="{}"), chunk({}, finish="tool_calls"))
    assert [c["id"] for c in calls_in(out)] == ["c1"]
    assert out[-1]["choices"][0]["finish_reason"] == "tool_calls"  # after the call it ends
    assert not whole.holding


def test_done_releases_what_is_held() -> None:
    whole = WholeCalls()
    relayed(whole, fragment(0, args='{"a":', id="c0", name="f"))
    out = whole.through(SSEBatch.of([fragment(0, args="1}"), b"[DONE]"]))
    assert out.done and [json.loads(c["function"]["arguments"]) for c in
                         calls_in([json.loads(p) for p in out.payloads()[:-1]])] == [{"a": 1}]  # fmt: skip


def test_text_beside_a_call_fragment_is_not_held() -> None:
    whole = WholeCalls()
    mixed = {"content": "Let me look.", "tool_calls": [{"index": 0, "id": "c0", "type": "function",
             "function": {"name": "read", "arguments": "{"}}]}  # fmt: skip
    out = relayed(whole, chunk(mixed))
    assert [ch["choices"][0]["delta"] for ch in out] == [{"content": "Let me look."}]
    assert whole.holding


def test_a_stream_that_breaks_mid_call_leaves_nothing_half_sent() -> None:
    whole = WholeCalls()
    out = relayed(whole, chunk({"role": "assistant", "content": None}))
    out += relayed(whole, fragment(0, args='{"path": "READ', id="c0", name="read"))
    # The stream breaks here: nothing of the call reached the client.
    assert calls_in(out) == []
    assert whole.holding
