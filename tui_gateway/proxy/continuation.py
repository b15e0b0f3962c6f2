"""Continuing a broken answer on another model: what to ask, and what of the reply to relay.

When a stream breaks after the client got part of the answer, the next model is asked to go on
from there, in one of two ways (`Continuation`):

- **prefill**: the original messages and the text so far as a trailing assistant message,
  which the model extends (where it takes one; many recent models refuse it with a 400);
- **instruct**: the same, plus a short user turn asking to continue exactly where the text
  stops (`INSTRUCTION`), which any chat model takes.

Either way the reply is dressed as the answer the client is reading (`Continued`): the first
completion id, no second `role`, tool calls numbered after those already sent and never sent
twice, and its text joined to what was sent by `alignment.join`, so nothing is repeated. All of
this runs only for a stream that broke; an unbroken one never pays for it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..config import Continuation
from ..domain.errors import ErrorKind, UpstreamError
from ..providers.sse import DONE, SSEBatch
from .alignment import UNALIGNED, Join, join
from .chunks import encode_chunk

INSTRUCTION = (
    "Your previous message was cut off. Continue it from exactly where it stops: do not repeat"
    " any of it, do not start over, and write nothing before the continuation."
)
"""The user turn of an instructed continuation (the mock upstream recognises `cut off`)."""


JOIN_FAILED = UpstreamError("its text could not be joined to the answer", kind=ErrorKind.UNALIGNED)
"""How a continuation that could not be joined is logged (it says nothing about the model)."""
_PREFILL_WORDS = ("prefill", "assistant", "last message", "final message", "must end with")


def refuses_prefill(exc: UpstreamError) -> bool:
    """A 400 that says the trailing assistant message (the prefill) is what it refuses."""
    if exc.kind != ErrorKind.REJECTED:
        return False
    message = exc.message.lower()
    return any(word in message for word in _PREFILL_WORDS)


class Unaligned(Exception):
    """The continuation's text cannot be joined to what the client has: end with the failure."""


@dataclass(frozen=True, slots=True)
class SentCall:
    """A whole tool call the client already received."""

    index: int
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class AnswerSoFar:
    """What the client has of the answer, read from the framed batches relayed to it."""

    text: str
    calls: tuple[SentCall, ...]
    answer_id: str | None

    @classmethod
    def of(cls, framed_batches: Iterable[bytes]) -> AnswerSoFar:
        parts: list[str] = []
        calls: list[SentCall] = []
        answer_id: str | None = None
        first = True
        for chunk in _chunks(framed_batches):
            if first:
                first = False
                answer_id = chunk.get("id") if isinstance(chunk.get("id"), str) else None
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") if isinstance(choice, dict) else None
                if not isinstance(delta, dict):
                    continue
                if isinstance(delta.get("content"), str):
                    parts.append(delta["content"])
                for call in delta.get("tool_calls") or ():
                    sent = _sent_call(call)
                    if sent is not None:
                        calls.append(sent)
        return cls("".join(parts), tuple(calls), answer_id)

    def request(self, body: dict[str, Any], how: Continuation) -> dict[str, Any]:
        """The original request, asking to go on from here (or again, if nothing was said)."""
        if not self.text and not self.calls:
            return body  # only a role (or nothing) went out: asking again is a continuation
        messages = [*body["messages"]]
        if self.text:
            messages.append({"role": "assistant", "content": self.text})
        if how == "instruct" or not self.text:
            messages.append({"role": "user", "content": INSTRUCTION + self._calls_note()})
        return {**body, "messages": messages}

    def _calls_note(self) -> str:
        if not self.calls:
            return ""
        made = "; ".join(f"{c.name}({c.arguments})" for c in self.calls)
        return f" These tool calls were already made, do not make them again: {made}."


@dataclass(slots=True)
class Continued:
    """One continuation attempt's chunks, rewritten to continue the client's answer.

    Its opening text is held until `alignment.join` can tell where it joins; `feed` raises
    `Unaligned` when it cannot be joined.
    """

    answer: AnswerSoFar
    earlier_tokens: int = 0
    """Tokens of the answer before this attempt (estimated): added to the usage it reports, so
    the client's usage covers the whole answer."""
    _join: Join | None = None
    _pending: str = ""
    _skip_left: int = 0
    _envelope: dict[str, Any] = field(default_factory=dict)
    _indexes: dict[int, int | None] = field(default_factory=dict)
    """The continuation's tool-call index -> the client's, or None for a repeat dropped."""
    _next_index: int = 0

    def __post_init__(self) -> None:
        self._next_index = len(self.answer.calls)

    def feed(self, batch: SSEBatch) -> SSEBatch:
        out: list[bytes] = []
        for payload in batch.payloads():
            if payload == DONE:
                out += self._decide(final=True)
                out.append(payload)
                continue
            try:
                chunk = json.loads(payload)
            except ValueError:
                continue  # the scan already dropped what is not JSON; [DONE] handled above
            if isinstance(chunk, dict):
                out += self._chunk(chunk)
        return SSEBatch.of(out) if out else SSEBatch(b"", 0)

    def end(self) -> SSEBatch:
        """The continuation's stream ended: decide on the text still held and release it."""
        out = self._decide(final=True)
        return SSEBatch.of(out) if out else SSEBatch(b"", 0)

    @property
    def decided(self) -> bool:
        return self._join is not None

    def _chunk(self, chunk: dict[str, Any]) -> list[bytes]:
        if self.answer.answer_id is not None:
            chunk["id"] = self.answer.answer_id
        self._envelope = {k: v for k, v in chunk.items() if k != "choices"}
        out: list[bytes] = []
        choices = []
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                choices.append(choice)
                continue
            delta.pop("role", None)
            content = delta.pop("content", None)
            # Text is held (None) until the join is known, and may be all a repeat ("").
            if isinstance(content, str) and content and (text := self._text(content)):
                delta["content"] = text
            if "tool_calls" in delta:
                delta["tool_calls"] = self._calls(delta["tool_calls"])
                if not delta["tool_calls"]:
                    del delta["tool_calls"]
            if (delta.get("tool_calls") or choice.get("finish_reason")) and not self.decided:
                out += self._decide(final=True)  # the text part of the answer is over
            if delta or choice.get("finish_reason"):
                choices.append(choice)
        usage = chunk.get("usage")
        if isinstance(usage, dict) and self.earlier_tokens:
            for field_name in ("completion_tokens", "total_tokens"):
                if isinstance(usage.get(field_name), int):
                    usage[field_name] += self.earlier_tokens
        if choices or usage:
            out.append(encode_chunk({**chunk, "choices": choices}))
        return out

    def _text(self, content: str) -> str | None:
        """What of `content` to relay now; None while the join is not known."""
        if self._join is None:
            self._pending += content
            self._join = join(self.answer.text, self._pending)
            if self._join is None:
                return None
            if self._join is UNALIGNED:
                raise Unaligned(self._pending)
            return self._joined()
        if self._skip_left:
            cut = min(self._skip_left, len(content))
            self._skip_left -= cut
            content = content[cut:]
        return content

    def _joined(self) -> str:
        assert self._join is not None
        skip, held = self._join.skip, self._pending
        self._pending = ""
        self._skip_left = max(0, skip - len(held))
        return self._join.prefix + held[skip:]

    def _decide(self, *, final: bool) -> list[bytes]:
        if self._join is not None:
            return []
        self._join = join(self.answer.text, self._pending, final=final)
        if self._join is None or self._join is UNALIGNED:
            raise Unaligned(self._pending)
        text = self._joined()
        if not text:
            return []
        choice = {"index": 0, "delta": {"content": text}, "finish_reason": None}
        return [encode_chunk({**self._envelope, "choices": [choice]})]

    def _calls(self, fragments: Any) -> list[Any]:
        """Tool calls (whole, see whole_calls.py) renumbered after the sent ones; repeats go."""
        kept = []
        sent = {(c.name, c.arguments) for c in self.answer.calls}
        for call in fragments if isinstance(fragments, list) else ():
            if not isinstance(call, dict):
                continue
            theirs = call.get("index", 0)
            if theirs not in self._indexes:
                function = call.get("function") or {}
                repeat = (function.get("name"), function.get("arguments")) in sent
                self._indexes[theirs] = None if repeat else self._next_index
                self._next_index += not repeat
            ours = self._indexes[theirs]
            if ours is not None:
                kept.append({**call, "index": ours})
        return kept


def _chunks(framed_batches: Iterable[bytes]) -> Iterable[dict[str, Any]]:
    for framed in framed_batches:
        for payload in SSEBatch(framed, 0).payloads():
            try:
                chunk = json.loads(payload)
            except ValueError:
                continue  # [DONE]
            if isinstance(chunk, dict):
                yield chunk


def _sent_call(call: Any) -> SentCall | None:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict):
        return None
    name, arguments = function.get("name"), function.get("arguments")
    if not isinstance(name, str) or not isinstance(arguments, str):
        return None
    return SentCall(call.get("index", 0), name, arguments)
