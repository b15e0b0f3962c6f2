"""The request log: appended to on the request path, written to SQLite in batches off it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path

import aiosqlite

from ..asyncio_utils import spawn
from ..domain.records import AttemptRecord, RequestRecord
from .schema import migrate

_INSERT_REQUEST = (
    "INSERT OR REPLACE INTO requests (id, started, session, requested_model, streamed, status,"
    " latency_ms, provider, model, error_kind, error, ttfb_ms, tokens_in, tokens_out)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_ATTEMPT = (
    "INSERT OR REPLACE INTO attempts (request_id, attempt, provider, model, started,"
    " latency_ms, status, error_kind, error, ttfb_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


_MAX_PARAMS = 32_000  # SQLite allows 32,766 bound parameters per statement (3.32 and newer)


def _multi_row(
    insert: str, rows: Sequence[tuple[object, ...]]
) -> Iterator[tuple[str, list[object]]]:
    """One `INSERT ... VALUES (...), (...), ...` per chunk of rows instead of one step per row.

    `executemany` steps once per row and gives up and takes back the GIL around every step,
    which under load makes the writer thread and the event loop trade the GIL thousands of
    times a second. One statement per chunk trades it once.
    """
    if not rows:
        return
    width = len(rows[0])
    head = insert.partition(" VALUES ")[0] + " VALUES "
    group = "(" + ", ".join("?" * width) + ")"
    per_chunk = _MAX_PARAMS // width
    for start in range(0, len(rows), per_chunk):
        chunk = rows[start : start + per_chunk]
        yield head + ", ".join([group] * len(chunk)), [v for row in chunk for v in row]


class RequestLog:
    """Batches `RequestRecord`s and writes them every `flush_interval_s` (or when many wait)."""

    def __init__(
        self, path: Path, *, flush_interval_s: float = 0.25, batch_size: int = 500
    ) -> None:
        self.path = path
        self._flush_interval_s = flush_interval_s
        self._batch_size = batch_size
        self._pending: list[RequestRecord] = []
        self._wake = asyncio.Event()
        self._db: aiosqlite.Connection | None = None
        self._writer: asyncio.Task[None] | None = None

    @property
    def db(self) -> aiosqlite.Connection:
        """The open connection, for the other store modules (stats, saved state)."""
        assert self._db is not None, "RequestLog.open() was not awaited"
        return self._db

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path)
        await migrate(self._db)
        self._writer = spawn(self._write_forever(), name="request-log-writer")

    def append(self, record: RequestRecord) -> None:
        """Never blocks and never awaits, so it is safe in `finally` blocks and cancelled code."""
        self._pending.append(record)
        if len(self._pending) >= self._batch_size:
            self._wake.set()

    async def flush(self) -> None:
        """Write everything appended so far."""
        while self._pending:
            batch, self._pending = self._pending, []
            await self._write(batch)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            try:
                await self._writer
            except asyncio.CancelledError:
                pass
            self._writer = None
        if self._db is not None:
            await self.flush()
            await self._db.close()
            self._db = None

    async def _write_forever(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self._flush_interval_s)
            except TimeoutError:
                pass
            self._wake.clear()
            await self.flush()

    async def _write(self, batch: list[RequestRecord]) -> None:
        assert self._db is not None, "RequestLog.open() was not awaited"
        requests = [
            (
                r.id,
                r.started,
                r.session,
                r.requested_model,
                int(r.streamed),
                r.status,
                r.latency_ms,
                r.provider,
                r.model,
                r.error_kind,
                r.error,
                r.ttfb_ms,
                r.tokens_in,
                r.tokens_out,
            )
            for r in batch
        ]
        attempts = [
            (r.id, a.attempt, a.provider, a.model, a.started, a.latency_ms, a.status,
             a.error_kind, a.error, a.ttfb_ms)
            for r in batch
            for a in r.attempts
        ]  # fmt: skip
        for sql, params in _multi_row(_INSERT_REQUEST, requests):
            await self._db.execute(sql, params)
        for sql, params in _multi_row(_INSERT_ATTEMPT, attempts):
            await self._db.execute(sql, params)
        await self._db.commit()

    async def recent(self, limit: int = 100) -> list[RequestRecord]:
        """The newest logged requests with their attempts (flushes first, so nothing is missed)."""
        rows = await self._requests("SELECT * FROM requests ORDER BY started DESC LIMIT ?", limit)
        return [await self._record(row) for row in rows]

    async def get(self, request_id: str) -> RequestRecord | None:
        """One logged request with its attempts, or None (flushes first, so nothing is missed)."""
        rows = await self._requests("SELECT * FROM requests WHERE id = ?", request_id)
        return await self._record(rows[0]) if rows else None

    async def _requests(self, sql: str, *params: object) -> list[aiosqlite.Row]:
        await self.flush()
        assert self._db is not None
        self._db.row_factory = aiosqlite.Row
        async with self._db.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def _record(self, row: aiosqlite.Row) -> RequestRecord:
        assert self._db is not None
        async with self._db.execute(
            "SELECT * FROM attempts WHERE request_id = ? ORDER BY attempt", (row["id"],)
        ) as cursor:
            attempt_rows = await cursor.fetchall()
        attempts = tuple(
            AttemptRecord(**{k: a[k] for k in a.keys() if k != "request_id"}) for a in attempt_rows
        )
        fields = {k: row[k] for k in row.keys()}
        fields["streamed"] = bool(fields["streamed"])
        return RequestRecord(**fields, attempts=attempts)
