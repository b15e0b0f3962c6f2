"""What the user decided at run time, kept across restarts: one JSON value per name."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import aiosqlite

from ..asyncio_utils import spawn

log = logging.getLogger("tui_gateway.store")
_KEY = "controls"


async def load_saved(db: aiosqlite.Connection) -> dict[str, Any]:
    async with db.execute("SELECT value FROM saved_state WHERE key = ?", (_KEY,)) as cursor:
        row = await cursor.fetchone()
    if row is None:
        return {}
    try:
        value = json.loads(row[0])
    except ValueError:
        log.warning("saved state is not valid JSON; starting from the config")
        return {}
    return value if isinstance(value, dict) else {}


async def save(db: aiosqlite.Connection, value: dict[str, Any]) -> None:
    await db.execute(
        "INSERT OR REPLACE INTO saved_state (key, value) VALUES (?, ?)", (_KEY, json.dumps(value))
    )
    await db.commit()


class Saver:
    """Writes the latest picture after each change, coalescing bursts into one write."""

    def __init__(self, db: aiosqlite.Connection, picture: Callable[[], dict[str, Any]]) -> None:
        self._db = db
        self._picture = picture
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def changed(self) -> None:
        if self._task is not None and not self._task.done():
            self._again = True  # the running write will loop once more with the newest picture
            return
        self._task = spawn(self._write(), name="save-controls")

    async def _write(self) -> None:
        while True:
            self._again = False
            await save(self._db, self._picture())
            if not self._again:
                return

    async def close(self) -> None:
        """Finish any pending write (called before the connection closes)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
