"""What reading a request body safely costs, per parser, by body size (issues 8 and 10).

    python scripts/bench_body.py

For request bodies from a small chat request to a 2 MB agent context (turns with tool calls,
25 tool schemas), times per body: a bare `json.loads` (what the first build did); the stdlib
path with the checks (UTF-8 decode, parse with NaN/Infinity refused, the nesting walk, the
search for surrogate escapes: what `read_json` did up to issue 9); `parse_body` as it is now
(msgspec, which refuses NaN, lone surrogates and bad UTF-8 itself, plus the nesting walk); and,
if it is installed, orjson with the same walk, for comparison only (it turns integers past 64
bits into floats, so it would not keep a body's values). Also an agent body with escaped emoji,
which costs the stdlib path its exact per-string surrogate check.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from tui_gateway.proxy.body import MAX_DEPTH, _nested_past, _parse_strictly, parse_body

try:
    import orjson
except ImportError:  # not a dependency: only compared when present
    orjson = None


def agent_body(turns: int, *, emoji: bool = False) -> bytes:
    schema = {
        "type": "object",
        "properties": {f"p{i}": {"type": "string", "description": "d" * 50} for i in range(8)},
        "required": ["p0"],
    }
    tool = {"type": "function", "function": {"name": "t", "description": "x" * 500,
                                             "parameters": schema}}  # fmt: skip
    text = "hello \U0001f600 " if emoji else "hello "
    messages: list[dict[str, Any]] = []
    for _ in range(turns):
        messages.append({"role": "user", "content": [{"type": "text", "text": text * 200}]})
        call = {"id": "c1", "type": "function",
                "function": {"name": "t", "arguments": json.dumps({"a": "b" * 300})}}  # fmt: skip
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        messages.append({"role": "tool", "tool_call_id": "c1", "content": "result " * 300})
    body = {"model": "auto", "messages": messages, "tools": [tool] * 25, "stream": True}
    return json.dumps(body).encode()  # ensure_ascii: emoji become \ud83d\ude00 pairs


def chat_body(size: int) -> bytes:
    """A chat request of about `size` bytes: a system prompt and a few short turns."""
    turns = [{"role": "system", "content": "You are a careful assistant. " * (size // 60)}]
    for i in range(3):
        turns += [{"role": "user", "content": f"Question {i}?"},
                  {"role": "assistant", "content": f"Answer {i}."}]  # fmt: skip
    turns.append({"role": "user", "content": "And the last one?"})
    return json.dumps({"model": "auto", "messages": turns, "stream": True}).encode()


def with_orjson(raw: bytes) -> dict[str, Any]:
    assert orjson is not None
    body: dict[str, Any] = orjson.loads(raw)
    assert not _nested_past(body, MAX_DEPTH)
    return body


def per_call_us(fn: Callable[[bytes], Any], raw: bytes, *, seconds: float = 0.5) -> float:
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn(raw)
        calls += 1
    return elapsed / calls * 1e6


def main() -> None:
    small = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
    bodies = {
        "small chat request": small.encode(),
        "chat request, 1 KB": chat_body(1_000),
        "agent request, 100 KB (22 turns)": agent_body(22),
        "agent request, 100 KB, escaped emoji": agent_body(14, emoji=True),
        "agent request, 2 MB (460 turns)": agent_body(460),
    }
    parsers: dict[str, Callable[[bytes], Any]] = {
        "json.loads": json.loads,
        "stdlib + checks": _parse_strictly,
        "msgspec + walk (parse_body)": parse_body,
    }
    if orjson is not None:
        parsers["orjson + walk"] = with_orjson
    print("| body | size | " + " | ".join(f"{p} µs" for p in parsers) + " | parse_body / stdlib |")
    print("|---|---:|" + "---:|" * (len(parsers) + 1))
    for name, raw in bodies.items():
        assert parse_body(raw) == _parse_strictly(raw)
        times = {p: min(per_call_us(fn, raw) for _ in range(3)) for p, fn in parsers.items()}
        cells = " | ".join(f"{t:,.1f}" for t in times.values())
        ratio = times["msgspec + walk (parse_body)"] / times["stdlib + checks"]
        print(f"| {name} | {len(raw):,} B | {cells} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
