"""OpenAI chat completions -> Anthropic Messages: the reply, its stop reason, and error types.

Shared by the non-streaming reply and the stream encoder, so both agree. The way in is
`messages_translate.py`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from ..errors import APIError
from .base import first_choice, tool_calls
from .messages_translate import MessagesContext

__all__ = ["error_body", "error_type", "stop_reason", "to_message", "tool_input", "usage_block"]


def to_message(completion: Mapping[str, Any], context: MessagesContext) -> dict[str, Any]:
    """A whole `chat.completion` as a Messages `message` (its first choice)."""
    choice, message = first_choice(completion)
    content: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = message.get("content")
    if isinstance(text, list):  # a few upstreams answer in parts
        text = "".join(
            p["text"] for p in text if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    for call_id, name, arguments in tool_calls(message):
        # The upstream's id, if any: the client sends it back as `tool_use_id`.
        content.append({
            "type": "tool_use",
            "id": call_id or new_tool_id(),
            "name": name,
            "input": tool_input(arguments),
        })  # fmt: skip
    has_tools = any(block["type"] == "tool_use" for block in content)
    reason, sequence = stop_reason(
        choice.get("finish_reason"), choice.get("stop_reason"), context, tools=has_tools
    )
    usage = completion.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    cid = completion.get("id")
    return {
        "id": f"msg_{cid}" if isinstance(cid, str) and cid else new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": context.client_model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": usage_block(
            _count(usage.get("prompt_tokens"), context.input_tokens),
            _count(usage.get("completion_tokens"), 0),
        ),
    }


def usage_block(input_tokens: int, output_tokens: int) -> dict[str, int]:
    """Anthropic's usage object; the gateway caches nothing, so both cache counts are 0."""
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def tool_input(arguments: object) -> dict[str, Any]:
    """A tool call's arguments as the object Anthropic's `input` is; `{}` if they are not one."""
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return {}  # the model wrote broken JSON: the client's tool reports the missing input
    return parsed if isinstance(parsed, dict) else {}


_STOP_REASONS = {
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def stop_reason(
    finish: object, matched: object, context: MessagesContext, *, tools: bool
) -> tuple[str, str | None]:
    """Anthropic's (`stop_reason`, `stop_sequence`) for an OpenAI `finish_reason`.

    OpenAI does not say which stop sequence matched; some upstreams (vLLM) do, in the choice's
    `stop_reason` (`matched`): a `stop` that names one of the request's sequences is a
    `stop_sequence`, any other `stop` (or none at all) an `end_turn`. An answer that holds tool
    calls is a `tool_use` even where the upstream said `stop`.
    """
    reason = _STOP_REASONS.get(finish, "end_turn") if isinstance(finish, str) else "end_turn"
    if reason == "end_turn" and tools:
        return "tool_use", None
    if reason == "end_turn" and isinstance(matched, str) and matched in context.stop_sequences:
        return "stop_sequence", matched
    return reason, None


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex[:24]}"


def new_tool_id() -> str:
    return f"toolu_{uuid.uuid4().hex[:24]}"


def _count(value: object, default: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return default


# --- errors -------------------------------------------------------------------------------

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def error_type(error: APIError) -> tuple[int, str]:
    """The HTTP status and Anthropic error `type` for a gateway error.

    By status: 400 invalid_request_error, 401 authentication_error, 403 permission_error, 404
    not_found_error, 413 request_too_large, 429 rate_limit_error, any other 4xx
    invalid_request_error, any 5xx api_error. One exception: when every candidate failed and
    every failure was an upstream 503 or 529, the answer is 529 overloaded_error, which Claude
    Code retries with back-off. The gateway's own 503s (nothing to route to, shutting down) stay
    api_error: waiting would not help.
    """
    if error.overloaded:
        return 529, "overloaded_error"
    status = error.status
    if status in _TYPES:
        return status, _TYPES[status]
    return status, "api_error" if status >= 500 else "invalid_request_error"


def error_body(error: APIError) -> tuple[int, dict[str, Any]]:
    """The status and `{"type": "error", "error": {...}}` body for an error."""
    status, kind = error_type(error)
    return status, {"type": "error", "error": {"type": kind, "message": error.message}}
