"""Session keys: which conversation a request belongs to."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any


def flatten_content(content: Any) -> str:
    """The text of a message's `content`, whether a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, Mapping))
    return ""


def session_key(mode: str, messages: Sequence[Mapping[str, Any]]) -> str:
    """Hash of the routing mode and the first user message: stable across a conversation's turns."""
    first_user = next((m for m in messages if m.get("role") == "user"), None)
    text = flatten_content(first_user.get("content")) if first_user else ""
    digest = hashlib.blake2b(f"{mode}\x00{text}".encode(), digest_size=8)
    return digest.hexdigest()


def session_preview(messages: Sequence[Mapping[str, Any]], *, words: int = 8) -> str:
    """The first words of the first user message, for display."""
    first_user = next((m for m in messages if m.get("role") == "user"), None)
    text = flatten_content(first_user.get("content")) if first_user else ""
    parts = text.split()
    return " ".join(parts[:words]) + (" …" if len(parts) > words else "")
