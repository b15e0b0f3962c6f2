"""The request log under real SQLite faults: bad values, locks, a full or read-only database,
a stuck connection thread (issue 8). Every test uses a real database file in tmp_path."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.logged import logged
from tui_gateway.asyncio_utils import spawn
from tui_gateway.domain.records import AttemptRecord, LogHealth, RequestRecord
from tui_gateway.domain.text import clean_text
from tui_gateway.store.analytics import read_analytics
from tui_gateway.store.log import RequestLog
from tui_gateway.store.repair import INT64_MAX, repair_value
from tui_gateway.store.rows import Column
from tui_gateway.store.saved import Saver, load_saved
from tui_gateway.store.schema import prepare

REPO = Path(__file__).resolve().parents[1]


def record(n: int, **changes: Any) -> RequestRecord:
    started = 1_000.0 + n
    base = RequestRecord(
        id=f"r{n:03d}", started=started, session="s", requested_model="auto", streamed=False,
        status=200, latency_ms=10.0, provider="sim", model="sim/a",
        attempts=(AttemptRecord(1, "sim", "sim/a", started, 10.0, status=200),),
    )  # fmt: skip
    return msgspec.structs.replace(base, **changes)


def ids(*numbers: int) -> list[str]:
    return [f"r{n:03d}" for n in numbers]


def stored_ids(path: Path) -> list[str]:
    """What another connection sees committed, oldest first."""
    with closing(sqlite3.connect(path)) as db:
        return [row[0] for row in db.execute("SELECT id FROM requests ORDER BY started")]


def stored_attempts(path: Path) -> int:
    with closing(sqlite3.connect(path)) as db:
        return int(db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0])


@contextmanager
def write_locked(path: Path) -> Iterator[None]:
    """Another connection holds the write lock (WAL: readers still read, writers wait)."""
    with closing(sqlite3.connect(path, isolation_level=None)) as holder:
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")


async def eventually(condition: Callable[[], bool], *, timeout_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def opened(path: Path, **options: Any) -> RequestLog:
    # No timer-driven writes unless a test asks: the test decides when to flush.
    options.setdefault("flush_interval_s", 3600.0)
    options.setdefault("retry_initial_s", 3600.0)
    log = RequestLog(path, **options)
    await log.open()
    return log


async def test_a_row_sqlite_cannot_encode_is_written_repaired_and_the_writer_goes_on(
    tmp_path: Path,
) -> None:
    """Issue 8: one lone surrogate used to kill the writer, and no row was written again."""
    path = tmp_path / "log.db"
    seen: list[LogHealth] = []
    log = await opened(path, flush_interval_s=0.01, on_health=seen.append)
    escaped = b"bad \xff".decode("utf-8", "surrogateescape")  # a header that was not UTF-8
    bad = record(
        1,
        requested_model=json.loads('"gpt\\udfff"'),
        session="s\ud800x",
        error=escaped,
        tokens_in=2**70,
        latency_ms=math.nan,
        attempts=(AttemptRecord(1, "sim", "sim/a", 1_001.0, 10.0, error="boom \udfff"),),
    )
    try:
        log.append(bad)
        log.append(record(2))  # clean, in the same batch: written, not counted as repaired
        await eventually(lambda: log.health().written == 2)
        log.append(record(3))  # the writer is still alive: no flush() from here on
        await eventually(lambda: log.health().written == 3)

        health = log.health()
        assert (health.repaired, health.dropped, health.failing, health.pending) == (1, 0, False, 0)
        assert [h.repaired for h in seen] == [1]
        back = await log.get("r001")
        assert back is not None
        assert (back.requested_model, back.session, back.error) == (
            "gpt\ufffd",
            "s\ufffdx",
            "bad \ufffd",
        )
        assert (back.tokens_in, back.latency_ms) == (None, 0.0)
        assert back.attempts[0].error == "boom \ufffd"
        assert await log.get("r002") == record(2)
        assert stored_ids(path) == ids(1, 2, 3)
    finally:
        await log.close()


async def limit_length(log: RequestLog, limit: int) -> None:
    """Lower SQLite's string length limit on the log's own connection. aiosqlite has no
    setlimit, and a sqlite3 connection may be used only from its own thread."""
    db = log.db

    def set_limit() -> int:
        return db._conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, limit)

    await db._execute(set_limit)  # type: ignore[no-untyped-call]


async def test_a_value_repair_cannot_fix_drops_only_its_own_request(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    log = await opened(path)
    try:
        await limit_length(log, 10_000)
        log.append(record(1))
        log.append(record(2, error="x" * 20_000, session="\udfff"))
        log.append(record(3))
        await log.flush()
        health = log.health()
        assert (health.written, health.dropped, health.pending, health.failing) == (2, 1, 0, False)
        assert stored_ids(path) == ids(1, 3)
    finally:
        await log.close()


async def test_rows_wait_while_another_connection_holds_the_lock_then_arrive_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log.db"
    seen: list[LogHealth] = []
    log = await opened(path, busy_timeout_s=0.05, on_health=seen.append)
    try:
        with write_locked(path):
            for n in range(5):
                log.append(record(n))
            await log.flush()
            health = log.health()
            assert (health.pending, health.written, health.failing) == (5, 0, True)
            assert health.last_error == "database is locked"
            assert health.failing_since is not None and health.behind
            assert await logged(log) == []  # reads go on while writes wait
            assert await log.get("r003") == record(3)  # from memory, still waiting
        log.append(record(5))  # newer than the batch that failed: written after it
        await log.flush()

        health = log.health()
        assert (health.pending, health.written, health.failing, health.dropped) == (0, 6, False, 0)
        assert health.failing_since is None and not health.behind
        assert stored_ids(path) == ids(0, 1, 2, 3, 4, 5)
        assert stored_attempts(path) == 6
        assert [h.failing for h in seen] == [True, False]
    finally:
        await log.close()


async def test_rows_wait_while_the_database_is_read_only_then_arrive(tmp_path: Path) -> None:
    """Read-only emulated with `PRAGMA query_only` on the log's connection: tests run as root,
    for whom a chmod'ed file stays writable. SQLite fails the same way (SQLITE_READONLY)."""
    path = tmp_path / "log.db"
    log = await opened(path)
    try:
        await log.db.execute("PRAGMA query_only = ON")
        for n in range(3):
            log.append(record(n))
        await log.flush()
        health = log.health()
        assert (health.pending, health.failing) == (3, True)
        assert health.last_error == "attempt to write a readonly database"

        await log.db.execute("PRAGMA query_only = OFF")
        await log.flush()
        assert stored_ids(path) == ids(0, 1, 2)
        assert (log.health().pending, log.health().failing) == (0, False)
    finally:
        await log.close()


async def test_rows_wait_while_the_database_is_full_then_arrive(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    log = await opened(path)
    try:
        async with log.db.execute("PRAGMA page_count") as cursor:
            row = await cursor.fetchone()
        assert row is not None
        await log.db.execute(f"PRAGMA max_page_count = {row[0]}")  # not one page more
        for n in range(200):
            log.append(record(n, error="e" * 2_000))
        await log.flush()
        health = log.health()
        assert (health.pending, health.failing) == (200, True)
        assert health.last_error == "database or disk is full"
        assert stored_ids(path) == []

        await log.db.execute("PRAGMA max_page_count = 1000000")
        await log.flush()
        assert stored_ids(path) == ids(*range(200))
        assert stored_attempts(path) == 200
    finally:
        await log.close()


async def test_past_the_backlog_bound_the_oldest_rows_are_dropped_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tui_gateway.store")
    path = tmp_path / "log.db"
    seen: list[LogHealth] = []
    log = await opened(path, max_backlog=10, on_health=seen.append)
    try:
        await log.db.execute("PRAGMA query_only = ON")
        for n in range(4):
            log.append(record(n))
        await log.flush()
        assert log.health().failing
        for n in range(4, 15):
            log.append(record(n))
        health = log.health()
        assert (health.pending, health.dropped) == (10, 5)
        assert seen[-1].dropped == 1  # told at the first drop; the rest with the next attempt

        await log.db.execute("PRAGMA query_only = OFF")
        await log.flush()
        assert stored_ids(path) == ids(*range(5, 15))
        health = log.health()
        assert (health.pending, health.written, health.dropped, health.failing) == (0, 10, 5, False)
        assert (seen[-1].dropped, seen[-1].failing) == (5, False)
        drops = [r for r in caplog.records if "dropping the oldest" in r.getMessage()]
        assert len(drops) == 1
    finally:
        await log.close()


async def test_rows_appended_during_a_slow_write_are_kept_and_drops_spare_that_write(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log.db"
    log = await opened(path, max_backlog=5, busy_timeout_s=30.0)
    try:
        with write_locked(path):
            for n in range(3):
                log.append(record(n))
            flushing = spawn(log.flush(), name="test-flush")
            await asyncio.sleep(0)  # its first step takes r0..r2 and waits in SQLite's busy wait
            for n in range(3, 10):
                log.append(record(n))
            # r0..r2 are being written, so the oldest others went: r3..r7.
            assert (log.health().pending, log.health().dropped) == (5, 5)
        await flushing
        assert stored_ids(path) == ids(0, 1, 2)
        await log.flush()
        assert stored_ids(path) == ids(0, 1, 2, 8, 9)
        assert (log.health().written, log.health().pending) == (5, 0)
    finally:
        await log.close()


async def test_the_writer_retries_on_its_own_until_the_database_takes_the_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log.db"
    log = await opened(path, flush_interval_s=0.01, retry_initial_s=0.01, retry_max_s=0.05)
    try:
        await log.db.execute("PRAGMA query_only = ON")
        for n in range(3):
            log.append(record(n))
        await eventually(lambda: log.health().failing)
        await log.db.execute("PRAGMA query_only = OFF")
        log.append(record(3))
        await eventually(lambda: log.health().written == 4)
        assert not log.health().failing
        assert stored_ids(path) == ids(0, 1, 2, 3)
    finally:
        await log.close()


async def test_close_with_a_failing_database_returns_promptly_with_the_unwritten_count(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "log.db"
    log = await opened(path)
    await log.db.execute("PRAGMA query_only = ON")
    for n in range(7):
        log.append(record(n))
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await log.close(timeout_s=1.0) == 7
    assert loop.time() - started < 1.0 + 2.0
    assert stored_ids(path) == []
    assert any("7 rows could not be written" in r.getMessage() for r in caplog.records)


async def test_close_returns_within_its_bound_while_the_database_thread_is_stuck(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log.db"
    before = set(threading.enumerate())
    log = await opened(path, busy_timeout_s=60.0)  # the write blocks far longer than the bound
    [thread] = set(threading.enumerate()) - before
    loop = asyncio.get_running_loop()
    with write_locked(path):
        for n in range(3):
            log.append(record(n))
        started = loop.time()
        assert await log.close(timeout_s=0.5) == 3
        assert loop.time() - started < 0.5 + 2.0
        assert thread.is_alive()  # still in SQLite's busy wait, abandoned
    await eventually(lambda: not thread.is_alive())  # once the lock goes, it ends by itself
    assert stored_ids(path) == []  # as reported: the abandoned write did not commit


async def test_the_connection_thread_is_a_daemon(tmp_path: Path) -> None:
    """So a SQLite call that never returns cannot keep the process from exiting (issue 8).
    Fails if an aiosqlite upgrade changes how its thread is made."""
    before = set(threading.enumerate())
    log = await opened(tmp_path / "log.db")
    try:
        new = set(threading.enumerate()) - before
        assert new and all(t.daemon for t in new)
    finally:
        await log.close()


def _open_the_log(path: Path) -> Any:
    return RequestLog(path).open()


@pytest.mark.parametrize(
    "open_it",
    [prepare, _open_the_log, lambda path: read_analytics(path / "x.db", "24h", now=0.0)],
    ids=["prepare", "log", "analytics"],
)
async def test_a_log_that_cannot_be_opened_fails_with_its_thread_already_over(
    tmp_path: Path, open_it: Callable[[Path], Any]
) -> None:
    """`--db` naming a folder: the command prints one line and exits. A connection thread still
    running as the loop closed printed a traceback of its own ("Event loop is closed"), in
    about a third of runs, and in a test run failed a later test."""
    before = set(threading.enumerate())
    with pytest.raises(sqlite3.OperationalError, match="unable to open database file"):
        await open_it(tmp_path)  # a folder, or a file in it that is missing (read-only)
    assert [t for t in set(threading.enumerate()) - before if t.is_alive()] == []


_EXIT_WHILE_STUCK = """
import asyncio, sqlite3, sys
from pathlib import Path
from tests.test_store_faults import record
from tui_gateway.store.log import RequestLog

held = []  # the lock outlives asyncio.run, as another process's would

async def main(path):
    log = RequestLog(path, busy_timeout_s=3600.0)
    await log.open()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    held.append(holder)
    log.append(record(1))
    print(await log.close(timeout_s=0.2))

asyncio.run(main(Path(sys.argv[1])))
"""


def test_the_process_exits_after_close_while_the_database_thread_is_stuck(
    tmp_path: Path,
) -> None:
    """Issue 8: the first SIGTERM hung, waiting on the connection's thread forever."""
    done = subprocess.run(
        [sys.executable, "-c", _EXIT_WHILE_STUCK, str(tmp_path / "log.db")],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (done.returncode, done.stdout.strip()) == (0, "1"), done.stderr


async def test_saver_keeps_the_latest_picture_when_a_write_fails_and_writes_it_at_close(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = await opened(tmp_path / "log.db")
    picture = {"bans": ["a"]}
    saver = Saver(log.db, lambda: dict(picture), lock=log.write_lock)
    try:
        await log.db.execute("PRAGMA query_only = ON")
        saver.changed()
        await eventually(lambda: any("could not save" in r.getMessage() for r in caplog.records))
        await log.db.execute("PRAGMA query_only = OFF")
        picture = {"bans": ["a", "b"]}
        await saver.close()
        assert await load_saved(log.db) == {"bans": ["a", "b"]}
    finally:
        await log.close()


async def test_saver_close_returns_within_its_bound_while_the_database_is_locked(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log.db"
    log = await opened(path, busy_timeout_s=60.0)
    saver = Saver(log.db, lambda: {"bans": []}, lock=log.write_lock)
    loop = asyncio.get_running_loop()
    with write_locked(path):
        saver.changed()
        started = loop.time()
        await saver.close(timeout_s=0.3)
        assert loop.time() - started < 0.3 + 2.0
    assert await log.close() == 0


def test_clean_text_recovers_escaped_bytes_and_replaces_lone_surrogates() -> None:
    split = b"\xc3".decode("utf-8", "surrogateescape") + b"\xa9".decode("utf-8", "surrogateescape")
    assert clean_text("caf" + split) == "café"  # a UTF-8 sequence decoded in two pieces
    assert clean_text(b"x\xffy".decode("utf-8", "surrogateescape")) == "x\ufffdy"
    assert clean_text("a\ud800b\udfff") == "a\ufffdb\ufffd"
    assert clean_text("\ud83d\ude00") == "😀"  # a pair left as two code points: one character
    text = "naïve, not broken"
    assert clean_text(text) is text


@pytest.mark.parametrize(
    ("column", "value", "stored"),
    [
        (Column("tokens_in", "int", True), 2**70, None),
        (Column("status", "int"), 2**70, INT64_MAX),
        (Column("status", "int"), -(2**70), -(2**63)),
        (Column("latency_ms", "real"), math.inf, 0.0),
        (Column("latency_ms", "real"), math.nan, 0.0),
        (Column("ttfb_ms", "real", True), math.nan, None),
        (Column("latency_ms", "real"), 2**70, float(2**70)),
        (Column("session", "text"), None, ""),
        (Column("error", "text", True), b"\xff", "\ufffd"),
    ],
)
def test_repair_value_makes_each_value_storable(
    column: Column, value: object, stored: object
) -> None:
    assert repair_value(column, value) == stored


def test_repair_value_keeps_good_values_as_they_are() -> None:
    for column, value in [
        (Column("a", "int"), True),
        (Column("a", "real"), 3),
        (Column("a", "text"), "é"),
    ]:
        assert repair_value(column, value) is value
