"""Quota use across restarts (issue 13): each quota's window buckets, in a compact table.

`quota_usage` (schema.py, migration 9) holds one row per (quota, window, bucket), as
`Quotas.usage_changes` gives them: a quota's minute is at most 61 one-second rows, its day at
most 1,441 one-minute rows (one, with a daily reset), whatever the traffic. `QuotaStore`:

- `restore()`, at start and before serving: prunes the rows out of their window and reads the
  rest (one small table, not a scan of the log) into `Quotas.restore`, and the limits learned
  from 429s (`saved.QUOTA_LIMITS`) into `Quotas.restore_learned`;
- `start()`: every `interval_s` (1 s), off the request path, upserts the buckets counted in since
  the last write, if any, on the request log's connection under its `write_lock` (so neither's
  rollback undoes the other's rows); every `prune_every_s` such a write also prunes. A write the
  database refuses keeps its rows for the next tick. An idle gateway makes no query;
- `close()`: one last write within a bound, so a clean exit loses nothing and a crash a second.

The lowered limits change seldom: each tick compares them with the last picture and, when they
moved, has a `Saver` write them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Container
from typing import Any

import aiosqlite

from ..asyncio_utils import spawn
from ..domain.quotas import Quotas, UsageRow
from .saved import QUOTA_LIMITS, Saver, load_saved

log = logging.getLogger("tui_gateway.store")

SPAN_S = {"minute": 60.0, "day": 86_400.0, "daily": 0.0}
"""How long after its time a row's bucket leaves its window (`Slot.windows`: a daily row's time
is the end of its day); a window not named here is kept a day."""
MARGIN_S = 3600.0
"""Rows are kept this much longer: a clock set back a little finds them still."""

_UPSERT = (
    "INSERT OR REPLACE INTO quota_usage (slot, window, bucket, requests, tokens)"
    " VALUES (?, ?, ?, ?, ?)"
)
_PRUNE = (
    "DELETE FROM quota_usage WHERE bucket < CASE window"
    " WHEN 'minute' THEN ? WHEN 'daily' THEN ? ELSE ? END"
)
_SELECT = "SELECT slot, window, bucket, requests, tokens FROM quota_usage"


def _horizons(now: float) -> tuple[float, float, float]:
    """The oldest bucket time kept, for `_PRUNE`: minute, daily, then any other (the day)."""
    minute, daily, day = (now - SPAN_S[w] - MARGIN_S for w in ("minute", "daily", "day"))
    return minute, daily, day


def _stale(row: UsageRow, now: float) -> bool:
    return row[2] < now - SPAN_S.get(row[1], SPAN_S["day"]) - MARGIN_S


async def load_usage(db: aiosqlite.Connection) -> list[UsageRow]:
    """Every saved row (pruned ones gone): a few thousand per key and model at most."""
    async with db.execute(_SELECT) as cursor:
        cursor.row_factory = None
        rows = await cursor.fetchall()
    return [(str(s), str(w), float(b), int(r), int(t)) for s, w, b, r, t in rows]


class QuotaStore:
    """Saves the quotas' use and learned limits on the request log's connection; restores them.

    Args:
        lock: `RequestLog.write_lock`, held around each write on the shared connection.
        clock: The state's clock: what "now" is for restoring and pruning.
        interval_s: How often the buckets changed since the last write are written.
        prune_every_s: How often a write also deletes the rows out of their window.
    """

    def __init__(
        self,
        db: aiosqlite.Connection,
        quotas: Quotas,
        *,
        lock: asyncio.Lock,
        clock: Callable[[], float],
        interval_s: float = 1.0,
        prune_every_s: float = 60.0,
    ) -> None:
        self._db = db
        self._quotas = quotas
        self._lock = lock
        self._clock = clock
        self._interval_s = interval_s
        self._prune_every_s = prune_every_s
        self._pruned = clock()
        self._unwritten: dict[tuple[str, str, float], UsageRow] = {}
        """Rows taken from the quotas and not written yet (the last write failed), newest kept."""
        self._learned: dict[str, Any] = {}
        """The learned limits as last handed to `_limits`."""
        self._limits = Saver(db, quotas.learned, key=QUOTA_LIMITS, lock=lock)
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    async def restore(self, key_ids: Container[str] | None = None) -> int:
        """Before serving: the last run's use and learned limits, of the quotas the config still
        has and, given `key_ids`, of those keys only (a key removed from the config is gone).

        Returns:
            How many rows were taken back (before the quotas drop those out of their window).
        """
        now = self._clock()
        try:
            await self._write([], prune_at=now)
        except Exception as exc:  # a read-only file still restores; the writer will say more
            log.warning("quota use: could not prune old rows (%s)", exc)
        self._pruned = now

        def kept(name: str) -> bool:
            return key_ids is None or name.partition("|")[0] in key_ids

        rows = [row for row in await load_usage(self._db) if kept(row[0])]
        self._quotas.restore(rows, now)
        saved = await load_saved(self._db, QUOTA_LIMITS)
        self._quotas.restore_learned({k: v for k, v in saved.items() if kept(k)})
        self._learned = saved  # what is on disk: the first tick rewrites it if some were dropped
        return len(rows)

    def start(self) -> None:
        """Write the changes every `interval_s` until `close()`."""
        self._task = spawn(self._write_forever(), name="quota-usage-writer")

    async def _write_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.flush()
            except Exception:  # a bug, not the database: the loop lives on
                log.exception("quota use: the writer hit an unexpected error")

    async def flush(self) -> None:
        """Write the buckets changed since the last write, and the learned limits if they moved.
        Never raises for a store problem: what the database refused waits for the next call."""
        learned = self._quotas.learned()
        if learned != self._learned:
            self._learned = dict(learned)
            self._limits.changed()
        pending = self._unwritten
        for row in self._quotas.usage_changes():
            pending[row[:3]] = row
        if not pending:
            return  # nothing counted: no query
        now = self._clock()
        prune = now - self._pruned >= self._prune_every_s
        rows = list(pending.values())
        try:
            await self._write(rows, prune_at=now if prune else None)
        except Exception as exc:
            for key in [k for k, row in pending.items() if _stale(row, now)]:
                del pending[key]  # out of every window: not worth keeping while failing
            if not self._failing:
                self._failing = True
                log.warning("quota use: cannot save (%s); will retry every tick", exc)
            return
        for row in rows:
            if pending.get(row[:3]) is row:
                del pending[row[:3]]
        if prune:
            self._pruned = now
        if self._failing:
            self._failing = False
            log.warning("quota use: saving again")

    async def _write(self, rows: list[UsageRow], *, prune_at: float | None) -> None:
        async with self._lock:
            try:
                await self._db.executemany(_UPSERT, rows)
                if prune_at is not None:
                    await self._db.execute(_PRUNE, _horizons(prune_at))
                await self._db.commit()
            except Exception:
                await _rollback(self._db)  # safe: the lock keeps the log's rows out of this one
                raise

    async def close(self, *, timeout_s: float = 2.0) -> None:
        """Stop the writer, write the last changes and learned limits, within about `timeout_s`
        (called before the connection closes). Never raises; a stuck write is abandoned."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=timeout_s)
            self._task = None
        final = spawn(self.flush(), name="quota-usage-final-flush")
        await asyncio.wait({final}, timeout=max(0.0, deadline - loop.time()))
        if not final.done():
            final.cancel()
            log.error("quota use: gave up saving after %.1f s", timeout_s)
        elif self._unwritten:
            log.error("quota use: %d buckets could not be saved", len(self._unwritten))
        await self._limits.close(timeout_s=max(0.1, deadline - loop.time()))


async def _rollback(db: aiosqlite.Connection) -> None:
    try:
        await db.rollback()
    except Exception as exc:
        log.debug("quota use: rollback failed: %s", exc)
