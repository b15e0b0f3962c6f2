"""Tool calls reach the client whole: their argument fragments are held until each call ends.

A client that receives half a tool call (the stream broke in the middle of its arguments) is
left with JSON it cannot parse and a call it cannot make, and no continuation can take the
fragments back. So text streams through as it comes, while a call's fragments are gathered
here and relayed as one delta (`{"index", "id", "type", "function": {"name", "arguments"}}`)
once the call is complete: when the next call of the same choice starts, when the choice
finishes (`finish_reason`), or at `[DONE]`. An attempt that fails holding a partial call
simply drops it; the continuation asks again from the last complete point.

Only a batch that mentions `"tool_calls"` is parsed (one substring search otherwise).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..providers.sse import DONE, SSEBatch
from .chunks import encode_chunk

_MARKER = b'"tool_calls"'


@dataclass(slots=True)
class _Call:
    index: int
    id: str | None = None
    type: str = "function"
    name: str = ""
    arguments: str = ""

    def add(self, fragment: dict[str, Any]) -> None:
        if isinstance(fragment.get("id"), str):
            self.id = fragment["id"]
        if isinstance(fragment.get("type"), str):
            self.type = fragment["type"]
        function = fragment.get("function")
        if isinstance(function, dict):
            if isinstance(function.get("name"), str):
                self.name += function["name"]
            if isinstance(function.get("arguments"), str):
                self.arguments += function["arguments"]

    def delta(self) -> dict[str, Any]:
        whole = {"index": self.index, "id": self.id, "type": self.type}
        return whole | {"function": {"name": self.name, "arguments": self.arguments}}


@dataclass(slots=True)
class WholeCalls:
    """One attempt's tool calls in progress, per choice; `through()` every batch it relays."""

    _held: dict[int, list[_Call]] = field(default_factory=dict)
    """choice index -> its calls not yet complete (in practice one: the call being written)."""
    _envelope: dict[str, Any] | None = None
    """The last chunk's fields but `choices` (id, model, created...), to dress held calls in."""

    @property
    def holding(self) -> bool:
        return any(self._held.values())

    def through(self, batch: SSEBatch) -> SSEBatch:
        """What of `batch` may go to the client now: text, and the calls that are complete."""
        if _MARKER not in batch.framed and not self.holding:
            return batch
        out: list[bytes] = []
        for payload in batch.payloads():
            if payload == DONE:
                out += self._release_all()
                out.append(payload)
                continue
            try:
                chunk = json.loads(payload)
            except ValueError:
                out.append(payload)  # not ours to judge (the scan dropped what is malformed)
                continue
            out += self._chunk(chunk, payload)
        return SSEBatch.of(out) if out else SSEBatch(b"", 0)

    def _chunk(self, chunk: Any, payload: bytes) -> list[bytes]:
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        if not isinstance(choices, list) or not any(_has_calls(c) for c in choices):
            released = self._release_finished(choices)
            return [*released, payload]
        self._envelope = {k: v for k, v in chunk.items() if k != "choices"}
        out: list[bytes] = []
        kept: list[Any] = []
        for choice in choices:
            if not isinstance(choice, dict):
                kept.append(choice)
                continue
            out += self._gather(choice)
            rest = _without_calls(choice)
            if rest is not None:
                kept.append(rest)
        finished = [c for c in choices if isinstance(c, dict) and c.get("finish_reason")]
        for choice in finished:
            out += self._release(choice.get("index", 0))
        if kept:
            out.append(encode_chunk({**chunk, "choices": kept}))
        return out

    def _gather(self, choice: dict[str, Any]) -> list[bytes]:
        """Add the choice's fragments; returns the calls that a newer call just completed."""
        at = choice.get("index", 0)
        held = self._held.setdefault(at, [])
        out: list[bytes] = []
        for fragment in choice["delta"]["tool_calls"]:
            if not isinstance(fragment, dict):
                continue
            index = fragment.get("index", 0)
            if held and held[-1].index != index:
                out += self._release(at)  # a new call began: the ones before it are whole
                held = self._held.setdefault(at, [])
            if not held:
                held.append(_Call(index))
            held[-1].add(fragment)
        return out

    def _release(self, choice: int) -> list[bytes]:
        calls = self._held.pop(choice, [])
        envelope = self._envelope or {}
        return [
            encode_chunk(
                {
                    **envelope,
                    "choices": [
                        {
                            "index": choice,
                            "delta": {"tool_calls": [call.delta()]},
                            "finish_reason": None,
                        }
                    ],
                }
            )  # fmt: skip
            for call in calls
        ]

    def _release_finished(self, choices: Any) -> list[bytes]:
        if not self.holding or not isinstance(choices, list):
            return []
        out: list[bytes] = []
        for choice in choices:
            if isinstance(choice, dict) and choice.get("finish_reason"):
                out += self._release(choice.get("index", 0))
        return out

    def _release_all(self) -> list[bytes]:
        out: list[bytes] = []
        for choice in list(self._held):
            out += self._release(choice)
        return out


def _has_calls(choice: Any) -> bool:
    delta = choice.get("delta") if isinstance(choice, dict) else None
    return isinstance(delta, dict) and isinstance(delta.get("tool_calls"), list)


def _without_calls(choice: dict[str, Any]) -> dict[str, Any] | None:
    """The choice without its tool-call fragments, or None if nothing else is in it."""
    if not _has_calls(choice):
        return choice
    delta = {k: v for k, v in choice["delta"].items() if k != "tool_calls"}
    if not delta and not choice.get("finish_reason"):
        return None
    return {**choice, "delta": delta}
