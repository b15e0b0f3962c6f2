"""What reading a request body safely costs over a bare `json.loads` (issue 8's checks).

    python scripts/bench_body.py

For a small chat request and an agent-sized one (60 turns with tool calls, 25 tool schemas,
about 260 KB), times per body: `json.loads` alone (what the first build did), and the gateway's
whole check: UTF-8 decode, parse with NaN/Infinity refused, the nesting walk and the search for
surrogate escapes (`tui_gateway/proxy/body.py`). Also an agent body with escaped emoji, which
takes the exact per-string surrogate check too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from tui_gateway.proxy.body import (
    _SURROGATE_ESCAPE,
    MAX_DEPTH,
    _lone_surrogate_at,
    _nested_past,
    _no_constant,
)


def agent_body(*, emoji: bool = False) -> bytes:
    schema = {
        "type": "object",
        "properties": {f"p{i}": {"type": "string", "description": "d" * 50} for i in range(8)},
        "required": ["p0"],
    }
    tool = {"type": "function", "function": {"name": "t", "description": "x" * 500,
                                             "parameters": schema}}  # fmt: skip
    text = "hello \U0001f600 " if emoji else "hello "
    messages: list[dict[str, Any]] = []
    for _ in range(60):
        messages.append({"role": "user", "content": [{"type": "text", "text": text * 200}]})
        call = {"id": "c1", "type": "function",
                "function": {"name": "t", "arguments": json.dumps({"a": "b" * 300})}}  # fmt: skip
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        messages.append({"role": "tool", "tool_call_id": "c1", "content": "result " * 300})
    body = {"model": "auto", "messages": messages, "tools": [tool] * 25, "stream": True}
    return json.dumps(body).encode()  # ensure_ascii: emoji become \ud83d\ude00 pairs


def checked(raw: bytes) -> dict[str, Any]:
    """The checks of `read_json`, without the aiohttp request around them."""
    text = raw.decode("utf-8-sig")
    body: dict[str, Any] = json.loads(text, parse_constant=_no_constant)
    assert not _nested_past(body, MAX_DEPTH)
    if _SURROGATE_ESCAPE.search(text):
        assert _lone_surrogate_at(body) is None
    return body


def per_call_us(fn: Callable[[bytes], Any], raw: bytes, *, seconds: float = 1.0) -> float:
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn(raw)
        calls += 1
    return elapsed / calls * 1e6


def main() -> None:
    small = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
    bodies = {
        "small chat request": small.encode(),
        "agent request": agent_body(),
        "agent request, escaped emoji": agent_body(emoji=True),
    }
    print("| body | size | json.loads µs | with the checks µs | ratio |")
    print("|---|---:|---:|---:|---:|")
    for name, raw in bodies.items():
        bare = min(per_call_us(json.loads, raw) for _ in range(3))
        full = min(per_call_us(checked, raw) for _ in range(3))
        print(f"| {name} | {len(raw):,} B | {bare:.1f} | {full:.1f} | {full / bare:.2f}x |")


if __name__ == "__main__":
    main()
