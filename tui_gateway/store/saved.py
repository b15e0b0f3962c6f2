"""What the gateway keeps across restarts besides the log: one JSON value per name.

controls         what the user decided at run time (pool order, enablement, bans, protection)
prefill_refused  models that refused an assistant prefill, and why (continued by instruction)
quota_limits     quota limits lowered after a 429, by quota (domain/quotas.py, `learned`)
invalid_keys     API keys an upstream refused, by key id: provider, a hash of the secret (never
                 the secret), reason, status, since (domain/keys.py, `saved_invalid`)
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import aiosqlite

from ..asyncio_utils import spawn

log = logging.getLogger("tui_gateway.store")
CONTROLS = "controls"
PREFILL_REFUSED = "prefill_refused"
QUOTA_LIMITS = "quota_limits"
INVALID_KEYS = "invalid_keys"


async def load_saved(db: aiosqlite.Connection, key: str = CONTROLS) -> dict[str, Any]:
    async with db.execute("SELECT value FROM saved_state WHERE key = ?", (key,)) as cursor:
        row = await cursor.fetchone()
    if row is None:
        return {}
    try:
        value = json.loads(row[0])
    except ValueError:
        log.warning("saved %s is not valid JSON; starting without it", key)
        return {}
    return value if isinstance(value, dict) else {}


async def save(db: aiosqlite.Connection, value: dict[str, Any], key: str = CONTROLS) -> None:
    await db.execute(
        "INSERT OR REPLACE INTO saved_state (key, value) VALUES (?, ?)", (key, json.dumps(value))
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
        key: str = CONTROLS,
        lock: asyncio.Lock | None = None,
    ) -> None:
        self._db = db
        self._picture = picture
        self._key = key
        self._lock = lock
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self._unsaved = False
        """The last write failed: the current picture is not on disk yet."""

    def changed(self) -> None:
        if self._task is not None and not self._task.done():
            self._again = True  # the running write will loop once more with the newest picture
            return
        self._task = spawn(self._write(), name=f"save-{self._key}")

    async def _write(self) -> None:
        while True:
            self._again = False
            try:
                await self._save()
            except Exception as exc:  # the database's problem: say so, try again later
                self._unsaved = True
                log.warning(
                    "could not save the %s (%s); will retry on the next change", self._key, exc
                )
                return
            self._unsaved = False
            if not self._again:
                return

    async def _save(self) -> None:
        if self._lock is None:
            await save(self._db, self._picture(), self._key)
            return
        async with self._lock:
            try:
                await save(self._db, self._picture(), self._key)
            except Exception:
                await _rollback(self._db)  # safe: the lock keeps others' rows out of this one
                raise

    async def close(self, *, timeout_s: float = 2.0) -> None:
        """Finish any pending write, or retry a failed one, within `timeout_s` (called before
        the connection closes). Never raises; a write still stuck after the bound is abandoned."""
        if (self._task is None or self._task.done()) and self._unsaved:
            self._task = spawn(self._write(), name=f"save-{self._key}")
        if self._task is None:
            return
        # asyncio.wait, not wait_for: wait_for would wait for a stuck call to notice the cancel.
        await asyncio.wait({self._task}, timeout=timeout_s)
        if not self._task.done():
            self._task.cancel()
            log.error("gave up saving the %s after %.1f s", self._key, timeout_s)
        elif self._unsaved:
            log.error("the %s could not be saved; they are lost with this exit", self._key)


async def _rollback(db: aiosqlite.Connection) -> None:
    try:
        await db.rollback()
    except Exception as exc:
        log.debug("rollback failed: %s", exc)
