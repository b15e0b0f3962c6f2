"""The front doors: one dialect per client API, all over the same router (see `base.py`)."""

from __future__ import annotations

from .base import Dialect, StreamEncoder
from .chat import CHAT, ChatDialect
from .messages import MESSAGES_ERRORS, MessagesDialect
from .responses import ResponsesDialect

__all__ = [
    "CHAT",
    "ChatDialect",
    "Dialect",
    "MessagesDialect",
    "ResponsesDialect",
    "StreamEncoder",
    "dialect_for_path",
]

_BY_PATH: tuple[tuple[str, Dialect], ...] = (("/v1/messages", MESSAGES_ERRORS),)
"""(path prefix, dialect) for every door but chat, longest prefix first. A door built per app
(with its settings) is represented here by an instance that only shapes errors and names."""


def dialect_for_path(path: str) -> Dialect:
    """The dialect a path belongs to (or suggests): its errors come in that shape."""
    for prefix, dialect in _BY_PATH:
        if path.startswith(prefix):
            return dialect
    return CHAT
