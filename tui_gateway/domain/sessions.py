"""The text of a conversation's messages: for session keys (`conversations.py`) and display."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def flatten_content(content: Any) -> str:
    """The text of a message's `content`, whether a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, Mapping))
    return ""


def session_preview(messages: Sequence[Mapping[str, Any]], *, words: int = 8) -> str:
    """The first words of the first user message, for display."""
    first_user = next((m for m in messages if m.get("role") == "user"), None)
    text = flatten_content(first_user.get("content")) if first_user else ""
    parts = text.split()
    return " ".join(parts[:words]) + (" …" if len(parts) > words else "")
