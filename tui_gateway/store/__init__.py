"""SQLite persistence: the request log (and, later, saved pool order and bans)."""

from __future__ import annotations

from .log import RequestLog

__all__ = ["RequestLog"]
