"""The token estimate of a `/v1/messages` request: `count_tokens`, and `message_start` before the
upstream has counted.

Characters / 4, rounded up, over what goes upstream, plus a flat rate per image: stable and
cheap, never exact. The request is read by the same translation (`messages_content.py`,
`messages_tools.py`) and checked as strictly as `/v1/messages` checks it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from .messages_content import chat_messages, system_messages
from .messages_tools import chat_tools

__all__ = ["IMAGE_TOKENS", "estimate_tokens", "input_estimate"]

IMAGE_TOKENS = 1600
"""What one image counts for in the estimate: about what a large image costs on Claude."""


def input_estimate(body: Mapping[str, Any]) -> int:
    """`count_tokens`: the estimate for a Messages body, checked as `to_chat_body` checks it.

    The estimate is the same one every reply's `message_start` carries: see `estimate_tokens`.
    """
    messages = [*system_messages(body.get("system")), *chat_messages(body.get("messages"))]
    return estimate_tokens(messages, chat_tools(body.get("tools")))


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
