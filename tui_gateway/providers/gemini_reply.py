"""Gemini replies and streamed events, translated to OpenAI chat completions and chunks. Pure.

The request side, OpenAI -> Gemini, is `gemini_translate`; tool call ids carry thought
signatures through `tool_ids`.
"""

from __future__ import annotations

import json
from typing import Any

from ..domain.errors import WrappedError
from .tool_ids import encode_call_id

__all__ = ["StreamTranslator", "finish_reason", "from_gemini", "read_parts", "usage_of"]

_FILTERED = frozenset({
    "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "MODEL_ARMOR",
})  # fmt: skip
"""Gemini's `finishReason`s that mean a filter stopped the answer."""

# --- Gemini reply -> OpenAI -------------------------------------------------------------------


def from_gemini(
    reply: dict[str, Any], *, model: str, created: int, call_prefix: str = ""
) -> dict[str, Any]:
    """The OpenAI `chat.completion` for a `generateContent` reply (not an error reply).

    Raises WrappedError if `reply` has neither candidates nor prompt feedback.
    """
    choices: list[dict[str, Any]] = []
    made = 0
    for i, candidate in enumerate(reply.get("candidates") or ()):
        if not isinstance(candidate, dict):
            continue
        text, calls = read_parts(candidate, call_prefix=call_prefix, first=made)
        made += len(calls)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": text if text or not calls else None,
        }
        if calls:
            message["tool_calls"] = calls
        reason = finish_reason(candidate.get("finishReason"), tool_calls=bool(calls))
        choices.append(
            {"index": candidate.get("index", i), "message": message, "finish_reason": reason}
        )
    if not choices:
        if not isinstance(reply.get("promptFeedback"), dict):
            raise WrappedError("200 with JSON that is not a Gemini reply", status=502)
        message = {"role": "assistant", "content": ""}  # the prompt itself was blocked
        choices.append({"index": 0, "message": message, "finish_reason": "content_filter"})
    completion: dict[str, Any] = {
        "id": f"chatcmpl-{reply.get('responseId') or call_prefix}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
    }
    usage = usage_of(reply.get("usageMetadata"))
    if usage is not None:
        completion["usage"] = usage
    return completion


def read_parts(
    candidate: dict[str, Any], *, call_prefix: str = "", first: int = 0
) -> tuple[str, list[dict[str, Any]]]:
    """A candidate's text (thought summaries left out) and its calls as OpenAI tool calls.

    Generated ids count from `first`, so a stream's later calls do not reuse an id.
    """
    content = candidate.get("content")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in content.get("parts") or () if isinstance(content, dict) else ():
        if not isinstance(part, dict) or part.get("thought"):
            continue
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        call = part.get("functionCall")
        if isinstance(call, dict):
            n = first + len(calls)
            base = call.get("id") or (f"call_{call_prefix}_{n}" if call_prefix else f"call_{n}")
            signature = part.get("thoughtSignature")
            function = {
                "name": str(call.get("name") or ""),
                "arguments": json.dumps(call.get("args") or {}),
            }
            tool_call: dict[str, Any] = {
                "id": encode_call_id(str(base), signature),
                "type": "function",
                "function": function,
            }
            if signature:
                tool_call["extra_content"] = {"google": {"thought_signature": signature}}
            calls.append(tool_call)
    return "".join(texts), calls


def finish_reason(reason: Any, *, tool_calls: bool) -> str:
    """OpenAI's finish_reason for Gemini's `finishReason` (a call made wins over STOP)."""
    if reason in _FILTERED:
        return "content_filter"
    if reason == "MAX_TOKENS":
        return "length"
    return "tool_calls" if tool_calls else "stop"


def usage_of(meta: Any) -> dict[str, Any] | None:
    """OpenAI `usage` for Gemini's `usageMetadata`; thinking tokens count as completion tokens."""
    if not isinstance(meta, dict):
        return None

    def count(key: str) -> int:
        value = meta.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    prompt, thoughts = count("promptTokenCount"), count("thoughtsTokenCount")
    completion = count("candidatesTokenCount") + thoughts
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": count("totalTokenCount") or prompt + completion,
    }
    if thoughts:
        usage["completion_tokens_details"] = {"reasoning_tokens": thoughts}
    if count("cachedContentTokenCount"):
        usage["prompt_tokens_details"] = {"cached_tokens": count("cachedContentTokenCount")}
    return usage


class StreamTranslator:
    """Turns each `streamGenerateContent` event into OpenAI `chat.completion.chunk` payloads."""

    def __init__(
        self,
        *,
        model: str,
        created: int,
        chunk_id: str,
        include_usage: bool = False,
        choices: int = 1,
    ) -> None:
        self._envelope = {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }
        self._call_prefix = chunk_id.removeprefix("chatcmpl-")
        self._include_usage = include_usage
        self._choices = choices
        self._started: set[int] = set()
        self._calls: dict[int, int] = {}
        self._finished: set[int] = set()
        self._usage: dict[str, Any] | None = None
        self.done = False
        """Every choice has finished (and the usage chunk, if asked for, was produced)."""

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """The OpenAI chunks for one Gemini event (possibly none)."""
        out: list[dict[str, Any]] = []
        self._usage = usage_of(event.get("usageMetadata")) or self._usage
        candidates = event.get("candidates") or ()
        for i, candidate in enumerate(candidates):
            if not isinstance(candidate, dict):
                continue
            index = candidate.get("index", i)
            made = self._calls.get(index, 0)
            text, calls = read_parts(candidate, call_prefix=self._call_prefix, first=made)
            delta: dict[str, Any] = {"content": text} if text else {}
            if calls:
                delta["tool_calls"] = [{"index": made + k, **c} for k, c in enumerate(calls)]
                self._calls[index] = made + len(calls)
            if delta:
                out.append(self._chunk(index, self._with_role(index, delta), None))
            if candidate.get("finishReason") not in (None, "", "FINISH_REASON_UNSPECIFIED"):
                made = self._calls.get(index, 0)
                reason = finish_reason(candidate["finishReason"], tool_calls=made > 0)
                out.append(self._chunk(index, self._with_role(index, {}), reason))
                self._finished.add(index)
        if not candidates and isinstance(event.get("promptFeedback"), dict):
            if event["promptFeedback"].get("blockReason"):
                out.append(self._chunk(0, self._with_role(0, {}), "content_filter"))
                self._finished.update(range(self._choices))
        if len(self._finished) >= self._choices and not self.done:
            self.done = True
            if self._include_usage and self._usage is not None:
                out.append({**self._envelope, "choices": [], "usage": self._usage})
        return out

    def _with_role(self, index: int, delta: dict[str, Any]) -> dict[str, Any]:
        if index in self._started:
            return delta
        self._started.add(index)
        return {"role": "assistant", "content": "", **delta}

    def _chunk(self, index: int, delta: dict[str, Any], reason: str | None) -> dict[str, Any]:
        choice = {"index": index, "delta": delta, "finish_reason": reason}
        return {**self._envelope, "choices": [choice]}
