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
    """Writes the latest picture after each change, coalescing bursts into one write.

    A write the database refuses is logged and not retried in a loop: the next change, or
    `close()`, writes the latest picture again.

    Args:
        lock: held around each write; pass `RequestLog.write_lock` when sharing its connection,
            so neither's rollback undoes the other's uncommitted rows.
    """

    def __init__(
        self,
        db: aiosqlite.Connection,
        picture: Callable[[], dict[str, Any]],
        *,
        lock: asyncio.Lock | None = None,
    ) -> None:
        self._db = db
        self._picture = picture
        self._lock = lock
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self._unsaved = False
        """The last write failed: the current picture is not on disk yet."""

    def changed(self) -> None:
        if self._task is not None and not self._task.done():
            self._again = True  # the running write will loop once more with the newest picture
            return
        self._task = spawn(self._write(), name="save-controls")

    async def _write(self) -> None:
        while True:
            self._again = False
            try:
                await self._save()
            except Exception as exc:  # the database's problem: say so, try again later
                self._unsaved = True
                log.warning("could not save the controls (%s); will retry on the next change", exc)
                return
            self._unsaved = False
            if not self._again:
                return

    async def _save(self) -> None:
        if self._lock is None:
            await save(self._db, self._picture())
            return
        async with self._lock:
            try:
                await save(self._db, self._picture())
            except Exception:
                await _rollback(self._db)  # safe: the lock keeps others' rows out of this one
                raise

    async def close(self, *, timeout_s: float = 2.0) -> None:
        """Finish any pending write, or retry a failed one, within `timeout_s` (called before
        the connection closes). Never raises; a write still stuck after the bound is abandoned."""
        if (self._task is None or self._task.done()) and self._unsaved:
            self._task = spawn(self._write(), name="save-controls")
        if self._task is None:
            return
        # asyncio.wait, not wait_for: wait_for would wait for a stuck call to notice the cancel.
        await asyncio.wait({self._task}, timeout=timeout_s)
        if not self._task.done():
            self._task.cancel()
            log.error("gave up saving the controls after %.1f s", timeout_s)
        elif self._unsaved:
            log.error("the controls could not be saved; they are lost with this exit")


async def _rollback(db: aiosqlite.Connection) -> None:
    try:
        await db.rollback()
    except Exception as exc:
        log.debug("rollback failed: %s", exc)
