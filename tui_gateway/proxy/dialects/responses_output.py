"""The Responses API's output as JSON: the `response` object, its items, its usage and its error.

Shared by the whole reply (`responses.py`) and the streamed one (`responses_stream.py`), so both
say the same: a `message` item holds one `output_text` part, a `function_call` item carries the
tool's name as the client declared it (its namespace restored), usage counts zeros where the
upstream counted nothing, and a failure's `error` uses the codes Codex acts on (`failure_error`).
`ResponsesContext` is what these need from the request; `responses_translate.py` makes it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...domain.response_store import Messages
from ...providers.base import token_count
from ..errors import APIError

__all__ = [
    "DEFAULT_RETRY_S",
    "Remember",
    "ResponsesContext",
    "assistant_message",
    "failure_error",
    "function_item",
    "message_item",
    "response_json",
    "text_part",
    "usage_json",
]


@dataclass(frozen=True, slots=True)
class ResponsesContext:
    """What a reply needs to know about the request it answers (`ChatCall.context`)."""

    response_id: str
    model: str
    """The model name the client sent, echoed back."""
    created_at: int
    conversation: Messages
    """Restored history and this request's input, as chat messages, without the instructions."""
    instructions: str | None = None
    store: bool = True
    previous_response_id: str | None = None
    echo: dict[str, Any] = field(default_factory=dict)
    """Request fields a response repeats as they were sent: tools, tool_choice, text, ..."""
    namespaced: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Flattened tool name sent upstream -> (namespace, name) the client knows it by."""


Remember = Callable[[ResponsesContext, dict[str, Any]], None]
"""Called once a reply is whole, with its assistant chat message, to store the conversation."""


def response_json(
    ctx: ResponsesContext,
    *,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    incomplete_reason: str | None = None,
) -> dict[str, Any]:
    """The `response` object for `ctx`: what the request set is echoed, the rest as given."""
    echo = ctx.echo
    return {
        "id": ctx.response_id,
        "object": "response",
        "created_at": ctx.created_at,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
        "instructions": ctx.instructions,
        "max_output_tokens": echo.get("max_output_tokens"),
        "model": ctx.model,
        "output": output,
        "parallel_tool_calls": echo.get("parallel_tool_calls", True),
        "previous_response_id": ctx.previous_response_id,
        "reasoning": echo.get("reasoning") or {"effort": None, "summary": None},
        "store": ctx.store,
        "temperature": echo.get("temperature"),
        "text": echo.get("text") or {"format": {"type": "text"}},
        "tool_choice": echo.get("tool_choice", "auto"),
        "tools": echo.get("tools", []),
        "top_p": echo.get("top_p"),
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": echo.get("metadata") or {},
    }


def usage_json(usage: object) -> dict[str, Any]:
    """An OpenAI chat `usage` block in the Responses shape (zeros where nothing was counted)."""
    usage = usage if isinstance(usage, dict) else {}
    input_tokens = token_count(usage.get("prompt_tokens")) or 0
    output_tokens = token_count(usage.get("completion_tokens")) or 0
    cached = _detail(usage, "prompt_tokens_details", "cached_tokens")
    reasoning = _detail(usage, "completion_tokens_details", "reasoning_tokens")
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input_tokens + output_tokens,
    }


def _detail(usage: dict[str, Any], block: str, name: str) -> int:
    details = usage.get(block)
    return (token_count(details.get(name)) or 0) if isinstance(details, dict) else 0


def message_item(item_id: str, text: str, *, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [] if status == "in_progress" else [text_part(text)],
    }


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def function_item(
    ctx: ResponsesContext,
    item_id: str,
    *,
    call_id: str,
    name: str,
    arguments: str,
    status: str,
) -> dict[str, Any]:
    """A `function_call` item, named as the client declared the tool (namespace restored)."""
    item: dict[str, Any] = {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }
    if name in ctx.namespaced:
        item["namespace"], item["name"] = ctx.namespaced[name]
    return item


def assistant_message(text: str, calls: list[tuple[str, str, str]]) -> dict[str, Any]:
    """The reply as a chat message for the store: text and (call id, upstream name, arguments)."""
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
            for call_id, name, args in calls
        ]
    return message


# --- the error of a failed response ------------------------------------------------------

DEFAULT_RETRY_S = 5
"""What a rate-limited stream tells Codex to wait when no Retry-After said otherwise."""
_RETRY_IN_MESSAGE = re.compile(r"(?i)(?:retry.after|try again in)\D{0,8}(\d+(?:\.\d+)?)")
_RATE_CODES = frozenset({"rate_limit_exceeded", "rate_limited"})


def failure_error(error: APIError) -> dict[str, str]:
    """`response.error` in codes Codex acts on: it waits and retries a `rate_limit_exceeded`
    (reading "try again in N s" from the message), gives up on `context_length_exceeded`, and
    retries anything else as a `server_error`."""
    code = error.code or ""
    message = error.message
    if code in _RATE_CODES or error.status == 429:
        seconds = _retry_after(error)
        if not re.search(r"(?i)try again in\s*\d", message):
            message = f"{message.rstrip('. ')}. Please try again in {seconds}s."
        return {"code": "rate_limit_exceeded", "message": message}
    if code == "context_length_exceeded":
        return {"code": code, "message": message}
    return {"code": "server_error", "message": message}


def _retry_after(error: APIError) -> str:
    for value in (error.headers.get("Retry-After"), error.message):
        if not value:
            continue
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*", value) or _RETRY_IN_MESSAGE.search(value)
        if match:
            return match.group(1)
    return str(DEFAULT_RETRY_S)
