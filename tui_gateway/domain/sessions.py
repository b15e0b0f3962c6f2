"""The text of a conversation's messages: for session keys (`conversations.py`) and display."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

_TAGGED = re.compile(r"<(system-reminder|environment_context|user_instructions)>.*?</\1>", re.S)
"""Blocks assistants put in front of what the user typed (Claude Code, Codex): not the topic."""


def flatten_content(content: Any) -> str:
    """The text of a message's `content`, whether a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, Mapping))
    return ""


def session_preview(messages: Sequence[Mapping[str, Any]], *, words: int = 8) -> str:
    """The first words the user wrote, for display: the first user message, without the tagged
    blocks an assistant puts before them (Claude Code's `<system-reminder>`, Codex's
    `<environment_context>`), and the next user message when nothing else is left."""
    parts: list[str] = []
    for message in messages:
        if message.get("role") == "user":
            parts = _TAGGED.sub(" ", flatten_content(message.get("content"))).split()
            if parts:
                break
    return " ".join(parts[:words]) + (" …" if len(parts) > words else "")
