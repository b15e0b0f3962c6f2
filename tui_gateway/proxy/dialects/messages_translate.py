"""Anthropic Messages <-> OpenAI chat completions: the pure translation behind `/v1/messages`.

In: a Messages request becomes an OpenAI chat body. `system` (a string or text blocks) becomes a
leading system message; assistant `tool_use` blocks become `tool_calls`; user `tool_result`
blocks become `role: tool` messages placed before the rest of that user turn; images become
`image_url` parts. What no upstream behind the gateway can honour (`thinking` blocks and the
`thinking` option, `cache_control`, `metadata`, server tools such as web search,
`context_management`, `output_config`, ...) is accepted and dropped, never refused. Every field
that is read is checked first, and a wrong type is a 400 that names it.

The way back (a `chat.completion` as a Messages `message`, stop reasons, error types) is in
`messages_reply.py`.
"""

from __future__ import annotations

import fnmatch
import json
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ..fields import bad, is_int
from ..validation import MAX_MODEL_NAME

__all__ = [
    "IMAGE_TOKENS",
    "MessagesContext",
    "estimate_tokens",
    "gateway_model",
    "input_estimate",
    "to_chat_body",
]

IMAGE_TOKENS = 1600
"""What one image counts for in the estimate: about what a large image costs on Claude."""


@dataclass(frozen=True, slots=True)
class MessagesContext:
    """What the reply needs from the request: carried on `ChatCall.context`."""

    client_model: str
    """The model name the client sent (echoed back in every reply, as Anthropic does)."""
    input_tokens: int
    """The request's estimated size, for `message_start` before the upstream has counted."""
    stop_sequences: tuple[str, ...] = ()
    """To tell a `stop_sequence` stop from an `end_turn`, when the upstream says which matched."""


# --- model names --------------------------------------------------------------------------


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


# --- request ------------------------------------------------------------------------------


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
    messages = [*_system(body.get("system")), *_messages(body.get("messages"))]
    tools = _tools(body.get("tools"))
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
    if tools:
        chat["tools"] = tools
        chat.update(_tool_choice(body.get("tool_choice"), {t["function"]["name"] for t in tools}))
    else:
        _tool_choice(body.get("tool_choice"), set())  # still checked: a wrong type is a 400
    for name in ("metadata", "thinking"):  # read (so checked), then dropped
        if body.get(name) is not None and not isinstance(body[name], dict):
            raise bad(name, f"{name}: must be an object")
    context = MessagesContext(
        client_model=model,
        input_tokens=estimate_tokens(messages, tools),
        stop_sequences=stops,
    )
    return chat, context


def input_estimate(body: Mapping[str, Any]) -> int:
    """`count_tokens`: the estimate for a Messages body, checked as `to_chat_body` checks it.

    The estimate is the same one every reply's `message_start` carries: see `estimate_tokens`.
    """
    messages = [*_system(body.get("system")), *_messages(body.get("messages"))]
    return estimate_tokens(messages, _tools(body.get("tools")))


def estimate_tokens(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> int:
    """A stable, cheap token estimate: characters / 4, rounded up, plus a flat rate per image.

    Counts the text that is sent upstream: every message's text (system included), each tool
    call's name and JSON arguments, each tool result, and each tool definition as JSON (name,
    description, schema). Each image counts `IMAGE_TOKENS`, whatever its size. Dropped content
    (thinking blocks, server tools) is not counted. Always at least 1.
    """
    chars = 0
    images = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if part.get("type") == "image_url":
                    images += 1
                else:
                    chars += len(part.get("text") or "")
        for call in message.get("tool_calls") or ():
            function = call["function"]
            chars += len(function["name"]) + len(function["arguments"])
    for tool in tools or ():
        chars += len(json.dumps(tool["function"], ensure_ascii=False))
    return max(1, math.ceil(chars / 4) + images * IMAGE_TOKENS)


def _system(system: object) -> list[dict[str, Any]]:
    if system is None:
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}] if system else []
    if not isinstance(system, list):
        raise bad("system", "system: must be a string or an array of text blocks")
    texts = []
    for n, block in enumerate(system):
        at = f"system[{n}]"
        kind = _block_type(block, at)
        if kind == "text":
            texts.append(_text(block, at))
    text = "\n\n".join(t for t in texts if t)
    return [{"role": "system", "content": text}] if text else []


def _messages(raw: object) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise bad("messages", "messages: must be a non-empty array of message objects")
    out: list[dict[str, Any]] = []
    for i, message in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise bad(where, f"{where}: must be an object with 'role' and 'content'")
        role = message.get("role")
        blocks = _blocks(message.get("content"), f"{where}.content")
        if role == "user":
            out += _user(blocks, f"{where}.content")
        elif role == "assistant":
            out.append(_assistant(blocks, f"{where}.content"))
        elif role == "system":
            out.append({"role": "system", "content": _plain_text(blocks, f"{where}.content")})
        else:
            raise bad(f"{where}.role", f"{where}.role: must be 'user' or 'assistant'")
    return out


def _blocks(content: object, where: str) -> list[dict[str, Any]]:
    """A message's content as blocks (a string is one text block), each with a string type."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise bad(where, f"{where}: must be a string or an array of content blocks")
    for n, block in enumerate(content):
        _block_type(block, f"{where}[{n}]")
    return content


def _block_type(block: object, where: str) -> str:
    if not isinstance(block, dict):
        raise bad(where, f'{where}: must be an object such as {{"type": "text", "text": ...}}')
    kind = block.get("type")
    if not isinstance(kind, str):
        raise bad(f"{where}.type", f"{where}.type: must be a string such as 'text'")
    return kind


def _text(block: Mapping[str, Any], where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise bad(f"{where}.text", f"{where}.text: must be a string")
    return text


def _user(blocks: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    """One user turn: its tool results first (each a `tool` message), then what else it says."""
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for n, block in enumerate(blocks):
        at = f"{where}[{n}]"
        if block["type"] == "tool_result":
            text, images = _tool_result(block, at)
            results.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": text})
            parts += images  # OpenAI tool messages take text only: images ride in the user turn
        else:
            parts += _part(block, at)
    if not parts:
        return results or [{"role": "user", "content": ""}]
    if len(parts) == 1 and parts[0]["type"] == "text":
        return [*results, {"role": "user", "content": parts[0]["text"]}]
    return [*results, {"role": "user", "content": parts}]


def _part(block: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    """A user content block as OpenAI parts: none for what cannot go upstream."""
    kind = block["type"]
    if kind == "text":
        return [{"type": "text", "text": _text(block, where)}]
    if kind == "image":
        url = _image_url(block, where)
        return [] if url is None else [{"type": "image_url", "image_url": {"url": url}}]
    if kind == "document":
        source = block.get("source")
        if isinstance(source, dict) and source.get("type") == "text":
            data = source.get("data")
            if not isinstance(data, str):
                raise bad(f"{where}.source.data", f"{where}.source.data: must be a string")
            return [{"type": "text", "text": data}]
    return []  # thinking, redacted_thinking, PDFs, server tool blocks, ...: dropped


def _image_url(block: Mapping[str, Any], where: str) -> str | None:
    source = block.get("source")
    if not isinstance(source, dict):
        raise bad(f"{where}.source", f"{where}.source: must be an object")
    kind = source.get("type")
    if kind == "base64":
        media, data = source.get("media_type"), source.get("data")
        if not isinstance(media, str):
            raise bad(f"{where}.source.media_type", f"{where}.source.media_type: must be a string")
        if not isinstance(data, str):
            raise bad(f"{where}.source.data", f"{where}.source.data: must be a string")
        return f"data:{media};base64,{data}"
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str):
            raise bad(f"{where}.source.url", f"{where}.source.url: must be a string")
        return url
    if not isinstance(kind, str):
        raise bad(f"{where}.source.type", f"{where}.source.type: must be 'base64' or 'url'")
    return None  # a Files API `file` source: nothing upstream can fetch it


def _tool_result(block: Mapping[str, Any], where: str) -> tuple[str, list[dict[str, Any]]]:
    """A tool result's text, and its images (which a `tool` message cannot carry)."""
    if not isinstance(block.get("tool_use_id"), str):
        raise bad(f"{where}.tool_use_id", f"{where}.tool_use_id: must be a string")
    is_error = block.get("is_error")
    if is_error is not None and not isinstance(is_error, bool):
        raise bad(f"{where}.is_error", f"{where}.is_error: must be true or false")
    content = block.get("content")
    images: list[dict[str, Any]] = []
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    elif isinstance(content, list):
        texts = []
        for n, inner in enumerate(content):
            at = f"{where}.content[{n}]"
            kind = _block_type(inner, at)
            if kind == "text":
                texts.append(_text(inner, at))
            elif kind == "image":
                images += _part(inner, at)
        text = "\n".join(texts)
    else:
        raise bad(f"{where}.content", f"{where}.content: must be a string or an array of blocks")
    # OpenAI has no error flag on a tool message: the model reads it in the text instead.
    return (f"Error: {text}" if is_error else text), images


def _assistant(blocks: list[dict[str, Any]], where: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for n, block in enumerate(blocks):
        at = f"{where}[{n}]"
        kind = block["type"]
        if kind == "text":
            texts.append(_text(block, at))
        elif kind == "tool_use":
            calls.append(_tool_call(block, at))
    text = "\n\n".join(t for t in texts if t)
    message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
    if calls:
        message["tool_calls"] = calls
    return message


def _tool_call(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    call_id, name = block.get("id"), block.get("name")
    if not isinstance(call_id, str):
        raise bad(f"{where}.id", f"{where}.id: must be a string")
    if not isinstance(name, str):
        raise bad(f"{where}.name", f"{where}.name: must be a string")
    arguments = block.get("input", {})
    if not isinstance(arguments, dict):
        raise bad(f"{where}.input", f"{where}.input: must be an object")
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)},
    }


def _plain_text(blocks: list[dict[str, Any]], where: str) -> str:
    return "\n\n".join(
        _text(block, f"{where}[{n}]") for n, block in enumerate(blocks) if block["type"] == "text"
    )


def _tools(raw: object) -> list[dict[str, Any]] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise bad("tools", "tools: must be an array of tool definitions")
    tools = []
    for n, tool in enumerate(raw):
        at = f"tools[{n}]"
        if not isinstance(tool, dict):
            raise bad(at, f"{at}: must be an object")
        kind = tool.get("type")
        if kind is not None and not isinstance(kind, str):
            raise bad(f"{at}.type", f"{at}.type: must be a string")
        if kind not in (None, "custom"):
            continue  # a server tool (web_search_..., code_execution_...): nobody here runs it
        name, description = tool.get("name"), tool.get("description")
        if not isinstance(name, str) or not name:
            raise bad(f"{at}.name", f"{at}.name: must be a non-empty string")
        if description is not None and not isinstance(description, str):
            raise bad(f"{at}.description", f"{at}.description: must be a string")
        schema = tool.get("input_schema", {"type": "object", "properties": {}})
        if not isinstance(schema, dict):
            raise bad(f"{at}.input_schema", f"{at}.input_schema: must be an object")
        function: dict[str, Any] = {"name": name}
        if description:
            function["description"] = description
        function["parameters"] = schema
        tools.append({"type": "function", "function": function})
    return tools


def _tool_choice(choice: object, names: set[str]) -> dict[str, Any]:
    """The OpenAI fields for a Messages `tool_choice` (none if no tool is left to choose)."""
    if choice is None:
        return {}
    if not isinstance(choice, dict):
        raise bad("tool_choice", 'tool_choice: must be an object such as {"type": "auto"}')
    kind = choice.get("type")
    out: dict[str, Any]
    if kind == "auto":
        out = {"tool_choice": "auto"}
    elif kind == "any":
        out = {"tool_choice": "required"}
    elif kind == "none":
        out = {"tool_choice": "none"}
    elif kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str):
            raise bad("tool_choice.name", "tool_choice.name: must be a string")
        out = {"tool_choice": {"type": "function", "function": {"name": name}}}
        if name not in names:
            out = {}  # the tool was a server tool, dropped: let the model choose
    else:
        raise bad("tool_choice.type", "tool_choice.type: must be 'auto', 'any', 'tool' or 'none'")
    parallel = choice.get("disable_parallel_tool_use")
    if parallel is not None and not isinstance(parallel, bool):
        raise bad(
            "tool_choice.disable_parallel_tool_use",
            "tool_choice.disable_parallel_tool_use: must be true or false",
        )
    if not names:
        return {}
    if parallel and kind != "none":
        out["parallel_tool_calls"] = False
    return out


def _stop_sequences(raw: object) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        raise bad("stop_sequences", "stop_sequences: must be an array of strings")
    return tuple(raw)
