"""SQLite persistence: the request log (log.py writes, read.py reads, rows.py maps records to rows),
the posteriors' reload (stats.py), the user's saved controls (saved.py), and the schema.
Every connection is opened through connection.py, so its thread never outlives its use."""

from __future__ import annotations

from .log import RequestLog

__all__ = ["RequestLog"]
