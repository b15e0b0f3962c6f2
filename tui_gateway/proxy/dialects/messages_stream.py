"""Relayed OpenAI chunks as Anthropic Messages stream events, in the order Claude Code expects.

    message_start
    (content_block_start, content_block_delta..., content_block_stop) per block
    message_delta (stop_reason, usage), message_stop

Blocks are numbered from 0 in the order they open: a `thinking` block for reasoning deltas, a
`text` block for content, one `tool_use` block per tool call (a new `index` in
`delta.tool_calls` closes the block before it). `message_delta` goes out at `[DONE]`, because the
usage chunk (the upstream's, or the relay's estimate) comes just before it.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import APIError
from .base import ChunkEncoder
from .messages_reply import (
    error_body,
    new_tool_id,
    stop_reason,
    usage_block,
)
from .messages_translate import MessagesContext

__all__ = ["PING", "MessagesStream", "sse"]

PING = b'event: ping\ndata: {"type": "ping"}\n\n'


def sse(name: str, data: dict[str, Any]) -> bytes:
    """One named event, framed as Anthropic frames them."""
    return b"event: " + name.encode() + b"\ndata: " + _json(data) + b"\n\n"


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


class MessagesStream(ChunkEncoder):
    """The encoder of one streamed reply: it keeps the open block across relayed reads."""

    __slots__ = (
        "_message_id",
        "_context",
        "_started",
        "_ended",
        "_blocks",
        "_kind",
        "_tool_key",
        "_tool_upstream_id",
        "_tool_id",
        "_tool_name",
        "_tool_started",
        "_tool_pending",
        "_tools",
        "_finish",
        "_matched",
        "_input_tokens",
        "_output_tokens",
        "_deltas",
    )

    def __init__(self, context: MessagesContext, *, message_id: str) -> None:
        self._message_id = message_id
        self._context = context
        self._started = False
        """`message_start` went out (it is the first event, whatever comes first)."""
        self._ended = False
        """`message_stop` or `error` went out: nothing may follow."""
        self._blocks = 0
        """Blocks opened so far; the open one, if any, has index `_blocks - 1`."""
        self._kind: str | None = None
        """The open block's type: thinking, text or tool_use."""
        self._tool_key: int | None = None
        """The open tool call's `index` in the upstream's `delta.tool_calls`."""
        self._tool_upstream_id: str | None = None
        self._tool_id = ""
        self._tool_name = ""
        self._tool_started = False
        """Its `content_block_start` went out (it waits until the upstream names the tool)."""
        self._tool_pending: list[str] = []
        """Argument fragments that came before the tool's name."""
        self._tools = False
        self._finish: object = None
        self._matched: object = None
        self._input_tokens: int | None = None
        self._output_tokens: int | None = None
        self._deltas = 0

    # --- StreamEncoder (`events` is ChunkEncoder's) -----------------------------------------

    def keepalive(self) -> bytes:
        out: list[bytes] = []
        self._start(out)  # Claude Code wants message_start first, even before a ping
        out.append(PING)
        return b"".join(out)

    def failed(self, error: APIError) -> bytes:
        out: list[bytes] = []
        self._start(out)
        self._ended = True
        _, body = error_body(error)
        out.append(sse("error", body))
        return b"".join(out)

    # --- chunks ------------------------------------------------------------------------------

    def _start(self, out: list[bytes]) -> None:
        if self._started:
            return
        self._started = True
        message: dict[str, Any] = {
            "id": self._message_id,
            "type": "message",
            "role": "assistant",
            "model": self._context.client_model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_block(self._context.input_tokens, 0),
        }
        out.append(sse("message_start", {"type": "message_start", "message": message}))

    def _chunk(self, out: list[bytes], chunk: dict[str, Any]) -> None:
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
            if _count(prompt) is not None:
                self._input_tokens = _count(prompt)
            if _count(completion) is not None:
                self._output_tokens = _count(completion)
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # Messages has one answer: the first choice is it
            delta = choice.get("delta")
            if isinstance(delta, dict):
                self._delta(delta, out)
            if choice.get("finish_reason") is not None:
                self._finish = choice["finish_reason"]
                self._matched = choice.get("stop_reason")

    def _delta(self, delta: dict[str, Any], out: list[bytes]) -> None:
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            if self._kind != "thinking":
                self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""}, out)
            self._emit({"type": "thinking_delta", "thinking": reasoning}, out)
        content = delta.get("content")
        if isinstance(content, str) and content:
            if self._kind != "text":
                self._open("text", {"type": "text", "text": ""}, out)
            self._emit({"type": "text_delta", "text": content}, out)
        calls = delta.get("tool_calls")
        for fragment in calls if isinstance(calls, list) else ():
            if isinstance(fragment, dict):
                self._tool_fragment(fragment, out)

    def _tool_fragment(self, fragment: dict[str, Any], out: list[bytes]) -> None:
        key = fragment.get("index")
        key = key if isinstance(key, int) and not isinstance(key, bool) else None
        upstream_id = fragment.get("id")
        upstream_id = upstream_id if isinstance(upstream_id, str) and upstream_id else None
        function = fragment.get("function")
        function = function if isinstance(function, dict) else {}
        name, arguments = function.get("name"), function.get("arguments")
        new_call = (
            self._kind != "tool_use"
            or (key is not None and self._tool_key is not None and key != self._tool_key)
            or (upstream_id is not None and self._tool_upstream_id not in (None, upstream_id))
        )
        if new_call:
            self._close(out)
            self._kind = "tool_use"
            self._tools = True
            self._tool_key = key
            self._tool_upstream_id = upstream_id
            self._tool_id = upstream_id or new_tool_id()
            self._tool_name = ""
            self._tool_started = False
            self._tool_pending = []
        elif upstream_id is not None and self._tool_upstream_id is None and not self._tool_started:
            self._tool_upstream_id = self._tool_id = upstream_id  # the id came a fragment late
        if isinstance(name, str) and name and not self._tool_started:
            self._tool_name = name
            self._start_tool(out)
        if isinstance(arguments, str) and arguments:
            if self._tool_started:
                self._emit({"type": "input_json_delta", "partial_json": arguments}, out)
            else:
                self._tool_pending.append(arguments)

    def _start_tool(self, out: list[bytes]) -> None:
        """The tool's block opens once its name is known, with any arguments that came first."""
        self._tool_started = True
        block = {"type": "tool_use", "id": self._tool_id, "name": self._tool_name, "input": {}}
        self._announce(block, out)
        if self._tool_pending:
            partial = "".join(self._tool_pending)
            self._tool_pending = []
            self._emit({"type": "input_json_delta", "partial_json": partial}, out)

    def _open(self, kind: str, block: dict[str, Any], out: list[bytes]) -> None:
        self._close(out)
        self._kind = kind
        self._announce(block, out)

    def _announce(self, block: dict[str, Any], out: list[bytes]) -> None:
        index = self._blocks
        self._blocks += 1
        out.append(
            sse(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": block},
            )
        )

    def _emit(self, delta: dict[str, Any], out: list[bytes]) -> None:
        self._deltas += 1
        out.append(
            sse(
                "content_block_delta",
                {"type": "content_block_delta", "index": self._blocks - 1, "delta": delta},
            )
        )

    def _close(self, out: list[bytes]) -> None:
        if self._kind is None:
            return
        if self._kind == "tool_use" and not self._tool_started:
            self._start_tool(out)  # never named: sent as it is, the client reports the tool
        self._kind = None
        index = self._blocks - 1
        out.append(sse("content_block_stop", {"type": "content_block_stop", "index": index}))

    def _end(self, out: list[bytes]) -> None:
        """At `[DONE]`: close the open block, then the stop reason and usage, then the end."""
        self._close(out)
        self._ended = True
        reason, sequence = stop_reason(
            self._finish, self._matched, self._context, tools=self._tools
        )
        usage = usage_block(
            self._context.input_tokens if self._input_tokens is None else self._input_tokens,
            self._output_tokens if self._output_tokens is not None else self._deltas,
        )
        delta = {"stop_reason": reason, "stop_sequence": sequence}
        out.append(sse("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
        out.append(sse("message_stop", {"type": "message_stop"}))


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
