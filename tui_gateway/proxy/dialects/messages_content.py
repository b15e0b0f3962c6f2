"""Anthropic Messages content -> OpenAI chat messages: the conversation of a `/v1/messages` request.

`system` (a string or text blocks) becomes a leading system message. Each turn's content blocks
become chat content: assistant `tool_use` blocks become `tool_calls`; user `tool_result` blocks
become `role: tool` messages placed before the rest of that user turn; images become
`image_url` parts; a text `document` becomes text. Blocks no upstream here can take (`thinking`,
`redacted_thinking`, PDFs, server tool blocks, ...) are dropped, never refused. Every field that
is read is checked first, and a wrong type is a 400 that names it.

The tools a request declares are `messages_tools.py`; the rest of the request,
`messages_translate.py`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..fields import bad

__all__ = ["chat_messages", "system_messages"]


def system_messages(system: object) -> list[dict[str, Any]]:
    """The request's `system` as one leading system message (none if it says nothing)."""
    if system is None:
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}] if system else []
    if not isinstance(system, list):
        raise bad("system", "system: must be a string or an array of text blocks")
    text = _plain_text(_blocks(system, "system"), "system")
    return [{"role": "system", "content": text}] if text else []


def chat_messages(raw: object) -> list[dict[str, Any]]:
    """The request's `messages` as chat messages, in order (a user turn may become several)."""
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


def _plain_text(blocks: list[dict[str, Any]], where: str) -> str:
    """The text blocks' text, joined by blank lines (empty ones left out); the rest is dropped."""
    texts = (
        _text(block, f"{where}[{n}]") for n, block in enumerate(blocks) if block["type"] == "text"
    )
    return "\n\n".join(t for t in texts if t)


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
