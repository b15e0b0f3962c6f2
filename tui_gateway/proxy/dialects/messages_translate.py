"""Anthropic Messages request -> OpenAI chat body: the pure translation behind `/v1/messages`.

The request's own fields are read here: `model` (mapped to a gateway model by `gateway_model`),
`max_tokens`, `stream`, the sampling options and `stop_sequences`. Its conversation is
translated by `messages_content.py`, its tools by `messages_tools.py`, and the size it reports
before the upstream counts is `messages_estimate.py`. What no upstream behind the gateway can
honour (the `thinking` option, `metadata`, `cache_control`, `context_management`,
`output_config`, ...) is accepted and dropped, never refused. Every field that is read is
checked first, and a wrong type is a 400 that names it.

The way back (a `chat.completion` as a Messages `message`, stop reasons, error types) is in
`messages_reply.py`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ..fields import bad, is_int
from ..validation import MAX_MODEL_NAME
from .messages_content import chat_messages, system_messages
from .messages_estimate import estimate_tokens
from .messages_tools import chat_tools, tool_choice_fields

__all__ = ["MessagesContext", "gateway_model", "to_chat_body"]


@dataclass(frozen=True, slots=True)
class MessagesContext:
    """What the reply needs from the request: carried on `ChatCall.context`."""

    client_model: str
    """The model name the client sent (echoed back in every reply, as Anthropic does)."""
    input_tokens: int
    """The request's estimated size, for `message_start` before the upstream has counted."""
    stop_sequences: tuple[str, ...] = ()
    """To tell a `stop_sequence` stop from an `end_turn`, when the upstream says which matched."""


def gateway_model(name: str, patterns: Mapping[str, str], known: Collection[str]) -> str | None:
    """The gateway model a client's model name routes to, or None when nothing maps it.

    A name the gateway knows itself (virtual or configured) is kept; otherwise the first glob in
    `patterns` (in their configured order) that matches, case-sensitively, gives the target.
    """
    if name in known:
        return name
    for pattern, target in patterns.items():
        if fnmatch.fnmatchcase(name, pattern):
            return target
    return None


def to_chat_body(
    body: Mapping[str, Any], *, resolve: Callable[[str], str]
) -> tuple[dict[str, Any], MessagesContext]:
    """The OpenAI chat body for a Messages request, and what its reply will need.

    Args:
        body: the parsed JSON object the client sent.
        resolve: the client's model name -> the gateway's; raises APIError (404) if none.

    Raises:
        APIError: 400 naming the first field whose type is wrong.
    """
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("model", "model: a model name is required (such as 'claude-sonnet-4-5')")
    if len(model) > MAX_MODEL_NAME:
        raise bad("model", f"model: longer than {MAX_MODEL_NAME} characters")
    messages = [*system_messages(body.get("system")), *chat_messages(body.get("messages"))]
    tools = chat_tools(body.get("tools"))
    chat: dict[str, Any] = {"model": resolve(model), "messages": messages}
    max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        if not is_int(max_tokens) or max_tokens < 1:
            raise bad("max_tokens", "max_tokens: must be a whole number of at least 1")
        chat["max_tokens"] = max_tokens
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise bad("stream", "stream: must be true or false")
    if stream:
        chat["stream"] = True
        # Anthropic streams always end with usage; ask for it (the relay estimates it if absent).
        chat["stream_options"] = {"include_usage": True}
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise bad(name, f"{name}: must be a number")
            chat[name] = value
    top_k = body.get("top_k")
    if top_k is not None:
        if not is_int(top_k):
            raise bad("top_k", "top_k: must be a whole number")
        chat["top_k"] = top_k
    stops = _stop_sequences(body.get("stop_sequences"))
    if stops:
        chat["stop"] = list(stops)
    names = {t["function"]["name"] for t in tools or ()}
    # Checked even with no tool left upstream: a wrong type is a 400 all the same.
    choice = tool_choice_fields(body.get("tool_choice"), names)
    if tools:
        chat["tools"] = tools
        chat.update(choice)
    for name in ("metadata", "thinking"):  # read (so checked), then dropped
        if body.get(name) is not None and not isinstance(body[name], dict):
            raise bad(name, f"{name}: must be an object")
    context = MessagesContext(
        client_model=model,
        input_tokens=estimate_tokens(messages, tools),
        stop_sequences=stops,
    )
    return chat, context


def _stop_sequences(raw: object) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        raise bad("stop_sequences", "stop_sequences: must be an array of strings")
    return tuple(raw)
