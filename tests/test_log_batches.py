"""The request log's batches: every row arrives in order, whatever the batch size, through a
bounded set of statements (each statement text SQLite compiles is cached; one per batch size
grew the gateway by tens of MB under load)."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

from tui_gateway.domain.records import AttemptRecord, RequestRecord
from tui_gateway.store.log import RequestLog
from tui_gateway.store.rows import _INSERT_REQUEST, REQUEST_COLUMNS, multi_row


def record(n: int) -> RequestRecord:
    started = 1_000.0 + n
    return RequestRecord(
        id=f"r{n:05d}", started=started, session="s", requested_model="auto", streamed=False,
        status=200, latency_ms=10.0, provider="sim", model="sim/a",
        attempts=(
            AttemptRecord(1, "sim", "sim/b", started, 4.0, status=500, error_kind="server_error"),
            AttemptRecord(2, "sim", "sim/a", started, 6.0, status=200),
        ),
    )  # fmt: skip


async def test_batches_of_any_size_arrive_whole_and_in_order(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    log = RequestLog(path, flush_interval_s=3600)
    await log.open()
    n = 0
    try:
        for size in (1, 2, 3, 7, 64, 300, 513, 1100):
            for _ in range(size):
                log.append(record(n))
                n += 1
            await log.flush()
            assert log.health().pending == 0
    finally:
        await log.close()
    with closing(sqlite3.connect(path)) as db:
        ids = [row[0] for row in db.execute("SELECT id FROM requests ORDER BY rowid")]
        attempts = db.execute("SELECT COUNT(*), SUM(attempt = 2) FROM attempts").fetchone()
    assert ids == [f"r{i:05d}" for i in range(n)]
    assert attempts == (2 * n, n)


def test_every_batch_size_uses_one_of_a_dozen_statements_and_keeps_every_value() -> None:
    width = len(REQUEST_COLUMNS)
    statements: set[str] = set()
    for size in (*range(1, 300), 511, 512, 513, 1023, 1024, 1025, 2047, 2500):
        rows = [tuple(range(i * width, (i + 1) * width)) for i in range(size)]
        values: list[object] = []
        for sql, params in multi_row(_INSERT_REQUEST, rows):
            assert sql.count("?") == len(params) <= 32_766  # SQLite's limit on parameters
            statements.add(sql)
            values += params
        assert values == list(range(size * width))
    assert len(statements) <= 12


def test_a_batch_past_one_statement_s_parameters_is_split() -> None:
    rows = [(i, i, i) for i in range(12_000)]  # 10,666 rows of 3 fit in one statement
    chunks = [params for _, params in multi_row("INSERT INTO t (a, b, c) VALUES ", rows)]
    assert [v for p in chunks for v in p] == [i for i in range(12_000) for _ in range(3)]
    assert all(len(p) <= 32_000 for p in chunks)


async def test_closing_after_large_batches_ends_at_once_with_every_row_written(
    tmp_path: Path,
) -> None:
    # Each batch past batch_size wakes the writer while flush() writes it; on Python 3.11 the
    # writer's asyncio.wait_for then swallowed close()'s cancel and quitting took the whole
    # close timeout. A generous timeout makes that hang unmistakable rather than a 3 s delay.
    path = tmp_path / "log.db"
    log = RequestLog(path, flush_interval_s=3600, batch_size=500)
    await log.open()
    n = 0
    for size in (513, 1100):
        for _ in range(size):
            log.append(record(n))
            n += 1
        await log.flush()
    unwritten = await asyncio.wait_for(log.close(timeout_s=120), timeout=10)
    assert unwritten == 0
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT COUNT(*) FROM requests").fetchone() == (n,)
