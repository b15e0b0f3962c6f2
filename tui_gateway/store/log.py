"""The request log: appended to on the request path, written to SQLite in batches off it.

The writer never stops and never loses a row quietly (issue 8):

- A batch the database refuses (locked, full, read-only, I/O error) is rolled back and stays at
  the head of the queue, retried with a backoff. The queue is bounded: past `max_backlog` the
  oldest rows are dropped and counted.
- A batch refused for a value in it (a lone surrogate, an int past int64) is written again with
  those values repaired (`repair.py`). Only then: the fast path is one multi-row INSERT per chunk.
- `close()` gives up after a bound and says how many rows it could not write. The connection's
  thread is a daemon, so a SQLite call that never returns cannot keep the process from exiting.

What a row holds is `rows.py`'s business (with each attempt's outcome, for the posteriors' reload);
reading requests back is `read.py`'s.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import aiosqlite

from ..asyncio_utils import spawn, wait_set
from ..domain.records import LoggedRequest, LogHealth, RequestRecord
from ..domain.text import clean_text
from .connection import connect, stop
from .read import read_requests
from .repair import is_data_error, repair_batch
from .rows import Row, as_record, attempt_rows, insert_rows, request_row
from .schema import migrate

if TYPE_CHECKING:
    from .analytics import Analytics

log = logging.getLogger("tui_gateway.store")


class RequestLog:
    """Batches finished requests and writes them every `flush_interval_s` (or when many wait).

    Args:
        max_backlog: rows kept while the database refuses writes; past it the oldest go.
        busy_timeout_s: how long one SQLite call waits for another connection's lock.
        retry_initial_s, retry_max_s: the backoff between attempts while writes fail.
        on_health: called with `health()` when failing starts or ends, the error changes, or
            rows are repaired or dropped. It runs in the writer; what it raises is logged.
    """

    def __init__(
        self,
        path: Path,
        *,
        flush_interval_s: float = 0.25,
        batch_size: int = 500,
        max_backlog: int = 20_000,
        busy_timeout_s: float = 5.0,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        on_health: Callable[[LogHealth], None] | None = None,
    ) -> None:
        if max_backlog < 1:
            raise ValueError(f"max_backlog must be at least 1, not {max_backlog}")
        self.path = path
        self._flush_interval_s = flush_interval_s
        self._batch_size = batch_size
        self._max_backlog = max_backlog
        self._busy_timeout_s = busy_timeout_s
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._on_health = on_health
        self._pending: list[LoggedRequest] = []
        self._inflight = 0
        """How many rows at the head of `_pending` the writer holds; a drop never takes those."""
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._db: aiosqlite.Connection | None = None
        self._writer: asyncio.Task[None] | None = None
        self._written = self._repaired = self._dropped = 0
        self._last_error: str | None = None
        self._failing_since: float | None = None
        self._retry_s = retry_initial_s
        self._dropping = False  # the "backlog full" warning was logged for this episode
        self._notified: tuple[object, ...] = (False, 0, 0, None)

    @property
    def db(self) -> aiosqlite.Connection:
        """The open connection, for the other store modules (stats, saved state)."""
        assert self._db is not None, "RequestLog.open() was not awaited"
        return self._db

    @property
    def write_lock(self) -> asyncio.Lock:
        """Held around each of the log's transactions on `db`. Another writer on the connection
        (`Saver`) takes it too, so one's rollback cannot undo the other's uncommitted rows."""
        return self._lock

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A daemon thread: a call stuck in SQLite cannot keep the interpreter from exiting
        # (tests/test_store_faults.py checks).
        self._db = await connect(self.path, timeout=self._busy_timeout_s)
        try:
            await migrate(self._db)
        except BaseException:
            db, self._db = self._db, None
            await stop(db)
            raise
        self._writer = spawn(self._write_forever(), name="request-log-writer")

    def append(self, record: LoggedRequest) -> None:
        """Never blocks and never awaits, so it is safe in `finally` blocks and cancelled code."""
        pending = self._pending
        pending.append(record)
        if len(pending) > self._max_backlog:
            self._drop_oldest()
        elif len(pending) >= self._batch_size and self._failing_since is None:
            self._wake.set()  # while failing, the backoff decides when to try again

    def health(self) -> LogHealth:
        """How the writer is doing, from counters (no I/O)."""
        return LogHealth(
            pending=len(self._pending),
            written=self._written,
            repaired=self._repaired,
            dropped=self._dropped,
            failing=self._failing_since is not None,
            last_error=self._last_error,
            failing_since=self._failing_since,
        )

    async def flush(self) -> None:
        """Try once to write everything appended so far; what the database refuses stays pending
        (see `health()`). Never raises for a store problem."""
        await self._attempt()

    async def close(self, *, timeout_s: float = 3.0) -> int:
        """Stop the writer, write what can be written, close the connection, all within about
        `timeout_s`. Never raises for a store problem; a stuck SQLite call is abandoned.

        Returns:
            How many rows were not written (0 normally), also logged as an error.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s

        def left() -> float:
            return max(0.0, deadline - loop.time())

        # asyncio.wait, not wait_for: wait_for waits for the cancelled call to end, which is
        # what a stuck call does not do.
        try:
            if self._writer is not None:
                self._writer.cancel()
                await asyncio.wait({self._writer}, timeout=left())
                self._writer = None
            if self._db is not None:
                final = spawn(self._attempt(), name="request-log-final-flush")
                await asyncio.wait({final}, timeout=left())
                final.cancel()  # too late: its rows count as unwritten even if SQLite ends it
                db, self._db = self._db, None
                stopped = db.stop()  # closes in the connection's thread, after what is queued
                if stopped is not None:
                    await asyncio.wait({stopped}, timeout=left())
        except Exception:
            log.exception("request log: closing failed")
        unwritten = len(self._pending)
        if unwritten:
            log.error("request log: %d rows could not be written and are lost", unwritten)
        return unwritten

    async def _write_forever(self) -> None:
        while True:
            failing = self._failing_since is not None
            await wait_set(self._wake, self._retry_s if failing else self._flush_interval_s)
            self._wake.clear()
            try:
                await self._attempt()
            except Exception:  # a bug, not the database: the loop and the rows live on
                log.exception("request log: the writer hit an unexpected error")

    async def _attempt(self) -> None:
        """Write what is pending, once; on failure the rows stay at the head, in order."""
        async with self._lock:
            db = self._db
            if db is None or not self._pending:
                return
            self._inflight = len(self._pending)
            try:
                await self._write(db, self._pending[: self._inflight])
            except Exception as exc:  # not CancelledError: cancelled, the rows just stay
                self._failed(exc)
                return
            finally:
                self._inflight = 0
            self._succeeded()

    async def _write(self, db: aiosqlite.Connection, batch: list[LoggedRequest]) -> None:
        """Write `batch`, the head of `_pending`, taking rows off the head as they commit.

        Raises when the database refused; whatever did not commit stays pending.
        """
        requests = [request_row(r) for r in batch]
        attempts = [row for r in batch for row in attempt_rows(r)]
        try:
            await insert_rows(db, requests, attempts)
        except Exception as exc:
            await _rollback(db)
            if not is_data_error(exc):
                raise
        else:
            self._done(len(batch))
            return
        await self._write_repaired(db, batch, requests, attempts)

    async def _write_repaired(
        self,
        db: aiosqlite.Connection,
        batch: list[LoggedRequest],
        requests: list[Row],
        attempts: list[Row],
    ) -> None:
        """After a value in `batch` made the write fail: repair the rows and write them again."""
        fixed = repair_batch(batch, requests, attempts)
        try:
            await insert_rows(
                db, [f.request for f in fixed], [a for f in fixed for a in f.attempts]
            )
        except Exception as exc:
            await _rollback(db)
            if not is_data_error(exc):
                raise
        else:
            self._done(len(batch), repaired=sum(f.changed for f in fixed))
            return
        # Something repair does not cover (say, a string past SQLite's length limit): find it
        # by writing one request at a time, and give up on that one only.
        for one, record in zip(fixed, batch, strict=True):
            try:
                await insert_rows(db, [one.request], list(one.attempts))
            except Exception as exc:
                await _rollback(db)
                if not is_data_error(exc):
                    raise
                log.error("request log: dropped request %r, not storable (%s)", record.id, exc)
                self._done(1, dropped=1)
            else:
                self._done(1, repaired=int(one.changed))

    def _done(self, rows: int, *, repaired: int = 0, dropped: int = 0) -> None:
        """`rows` at the head were dealt with: written (some repaired) or given up on."""
        del self._pending[:rows]
        self._inflight -= rows
        self._written += rows - dropped
        self._dropped += dropped
        if repaired:
            if not self._repaired:
                log.warning(
                    "request log: wrote %d rows with values SQLite cannot store replaced (lone"
                    " surrogates, numbers out of range); health().repaired counts them",
                    repaired,
                )
            self._repaired += repaired

    def _drop_oldest(self) -> None:
        del self._pending[self._inflight]  # the oldest the writer does not hold right now
        self._dropped += 1
        if not self._dropping:
            self._dropping = True
            log.warning(
                "request log: %d rows wait to be written (%s); dropping the oldest",
                self._max_backlog,
                self._last_error or "the database is slow",
            )
            self._notify()

    def _failed(self, exc: Exception) -> None:
        self._last_error = _describe(exc)
        if self._failing_since is None:
            self._failing_since = time.time()
            self._retry_s = self._retry_initial_s
            log.warning(
                "request log: cannot write (%s); keeping %d rows and retrying",
                self._last_error,
                len(self._pending),
                exc_info=not isinstance(exc, sqlite3.Error),
            )
        else:
            self._retry_s = min(self._retry_s * 2, self._retry_max_s)
        self._notify()

    def _succeeded(self) -> None:
        if self._failing_since is not None:
            log.warning(
                "request log: writing again after %.1f s", time.time() - self._failing_since
            )
            self._failing_since = None
        if len(self._pending) <= self._max_backlog // 2:
            self._dropping = False
        self._notify()

    def _notify(self) -> None:
        if self._on_health is None:
            return
        key = (self._failing_since is not None, self._repaired, self._dropped, self._last_error)
        if key == self._notified:
            return
        self._notified = key
        try:
            self._on_health(self.health())
        except Exception:
            log.exception("request log: the on_health callback failed")

    async def analytics(self, range_name: str, *, now: float) -> Analytics:
        """The log's figures over a range (analytics.py), what the writer still holds written
        first (unless writes are failing: then what the file has, at once), read on
        connections of their own so the writer's batches never wait behind them.

        Raises:
            ValueError: an unknown range. sqlite3.Error: the file cannot be read.
        """
        from .analytics import read_analytics  # only when asked: a headless run may never be

        if not self.health().failing:
            await self.flush()
        return await read_analytics(self.path, range_name, now=now)

    async def get(self, request_id: str) -> RequestRecord | None:
        """One logged request with its attempts, or None; one still waiting to be written is
        found too."""
        await self._read_now()
        found = await read_requests(self.db, "WHERE id = ?", (request_id,))
        if found:
            return found[0]
        waiting = next((r for r in reversed(self._pending) if r.id == request_id), None)
        return None if waiting is None else as_record(waiting)

    async def _read_now(self) -> None:
        """Write what is pending first, so a read sees it; while failing, read at once instead
        of waiting on a lock."""
        if self._failing_since is None:
            await self.flush()


async def _rollback(db: aiosqlite.Connection) -> None:
    """End the failed transaction (SQLite may have ended it already); failing here is harmless."""
    try:
        await db.rollback()
    except Exception as exc:
        log.debug("request log: rollback failed: %s", exc)


def _describe(exc: Exception) -> str:
    """A short text for the status line: "database is locked" rather than a traceback."""
    text = str(exc)
    if not isinstance(exc, sqlite3.Error) or not text:
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return clean_text(text)[:200]
