"""Posteriors loaded from the request log: one aggregate query, then `PosteriorBook.load` (issue 3)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from tui_gateway.domain.posteriors import PosteriorBook, weight
from tui_gateway.domain.records import AttemptRecord, RequestRecord
from tui_gateway.store.log import RequestLog
from tui_gateway.store.stats import load_buckets

HOUR = 3600.0
WEEK = 7 * 86400.0
NOW = 486_111 * HOUR  # an hour boundary
A, B = "alpha/one", "beta/two"


def at(hours_ago: int, minutes: float = 30.0) -> float:
    """A time inside the bucket that started `hours_ago` hours before NOW (its midpoint by default)."""
    return NOW - hours_ago * HOUR + minutes * 60


def request(
    n: int, *attempts: AttemptRecord, streamed: bool = True, tokens_out: int | None = None
) -> RequestRecord:
    return RequestRecord(
        id=f"r{n}",
        started=attempts[0].started,
        session="s",
        requested_model="auto",
        streamed=streamed,
        status=200,
        latency_ms=1000.0,
        tokens_out=tokens_out,
        attempts=attempts,
    )


def attempt(
    model: str, started: float, kind: str | None = None, ttfb: float | None = None, n: int = 1
) -> AttemptRecord:
    provider = model.split("/")[0]
    return AttemptRecord(n, provider, model, started, 900.0, error_kind=kind, ttfb_ms=ttfb)


async def write_log(path: Path, records: list[RequestRecord]) -> None:
    log = RequestLog(path)
    await log.open()
    for record in records:
        log.append(record)
    await log.close()  # flushes


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    path = tmp_path / "log.db"
    await write_log(
        path,
        [
            # A, 2 hours ago: two successes (ttfb 200, 400; 45 tokens over 700 ms after the first
            # byte), a 5xx failure with a ttfb, a stall; and a non-streamed success, whose ttfb
            # (its whole answer) is not a time to first byte: 90 tokens over 900 ms
            request(1, attempt(A, at(2, 10), ttfb=200.0), tokens_out=45),
            request(
                2, attempt(A, at(2, 20), "5xx", ttfb=50.0), attempt(A, at(2, 21), ttfb=400.0, n=2)
            ),
            request(11, attempt(A, at(2, 30), ttfb=880.0), streamed=False, tokens_out=90),
            request(3, attempt(A, at(2, 40), "stall")),
            # A, half a week ago: a 429 and a success without ttfb or tokens
            request(4, attempt(A, at(84), "rate_limited"), attempt(A, at(84, 31), n=2)),
            # neither success nor failure
            request(5, attempt(A, at(1), "client_closed")),
            request(6, attempt(A, at(1), "shutdown")),
            request(7, attempt(A, at(1), "invalid_request")),
            request(12, attempt(A, at(1), "rejected"), attempt(A, at(1), "key_rejected", n=2)),
            request(8, attempt(B, at(3), "no_candidate")),
            # B: a wrapped error now, and a success outside the window
            request(9, attempt(B, at(0), "wrapped")),
            request(10, attempt(B, NOW - WEEK - HOUR, ttfb=100.0)),
        ],
    )
    async with aiosqlite.connect(path) as conn:
        yield conn


async def test_buckets_count_successes_failures_and_skip_neutral_endings(
    db: aiosqlite.Connection,
) -> None:
    rows = await load_buckets(db, now=NOW, window_s=WEEK, bucket_s=HOUR)
    got = {(r.model, r.bucket_start): r for r in rows}
    assert set(got) == {(A, NOW - 2 * HOUR), (A, NOW - 84 * HOUR), (B, NOW)}
    recent = got[A, NOW - 2 * HOUR]
    assert (recent.successes, recent.failures) == (3, 2)
    # neither a failure's ttfb nor a non-streamed one's
    assert (recent.ttfb_sum, recent.ttfb_n) == (600.0, 2)
    assert recent.tps_sum == pytest.approx(45 / 0.7 + 90 / 0.9) and recent.tps_n == 2
    older = got[A, NOW - 84 * HOUR]
    assert (older.successes, older.failures, older.ttfb_n) == (1, 1, 0)
    wrapped = got[B, NOW]
    assert (wrapped.successes, wrapped.failures) == (0, 1)


async def test_loaded_book_weighs_buckets_by_age(db: aiosqlite.Connection) -> None:
    rows = await load_buckets(db, now=NOW, window_s=WEEK, bucket_s=HOUR)
    book = PosteriorBook(window_s=WEEK, bucket_s=HOUR)
    book.load(rows, NOW)
    assert book.models() == [A, B]
    w_recent = weight(1.5 * HOUR, WEEK)  # midpoint of the bucket two hours back
    w_older = weight(83.5 * HOUR, WEEK)
    a = book.posterior(A)
    assert (a.successes, a.failures) == (4, 3)
    assert a.weighted_successes == pytest.approx(3 * w_recent + w_older)
    assert a.weighted_failures == pytest.approx(2 * w_recent + w_older)
    assert a.alpha == pytest.approx(2.0 + 3 * w_recent + w_older)
    assert a.ttfb_ms == pytest.approx(300.0)
    assert a.tokens_per_s == pytest.approx((45 / 0.7 + 100.0) / 2)
    b = book.posterior(B)
    assert (b.successes, b.failures, b.weighted_failures, b.beta) == (0, 1, 1.0, 3.0)


async def test_window_and_bucket_size_come_from_the_caller(db: aiosqlite.Connection) -> None:
    rows = await load_buckets(db, now=NOW, window_s=10 * HOUR, bucket_s=86400.0)
    assert {r.model for r in rows} == {A, B}
    assert sum(r.successes for r in rows) == 3  # only the recent bucket's three
    assert all(r.bucket_start % 86400.0 == 0 for r in rows)


async def test_works_whatever_row_factory_the_connection_has(db: aiosqlite.Connection) -> None:
    db.row_factory = aiosqlite.Row  # another user of a shared connection may set one
    rows = await load_buckets(db, now=NOW, window_s=WEEK, bucket_s=HOUR)
    assert len(rows) == 3
    async with db.execute("SELECT COUNT(*) AS n FROM attempts") as cursor:
        row = await cursor.fetchone()
    assert row is not None and row["n"] == 15  # and the connection's own factory is untouched


async def test_an_empty_log_loads_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    await write_log(path, [])
    async with aiosqlite.connect(path) as conn:
        assert await load_buckets(conn, now=NOW, window_s=WEEK, bucket_s=HOUR) == []


@pytest.mark.parametrize("query", ["buckets", "timers"])
async def test_the_start_up_reloads_seek_model_by_model_and_never_scan_the_log(
    db: aiosqlite.Connection, query: str
) -> None:
    # What start-up reads costs what is in the window (or each model's newest), not what the
    # log has gathered over months: every read of `attempts` is a seek into an index.
    from tui_gateway.store import stats, timing

    sql, params = {
        "buckets": (stats._QUERY, (3600.0, NOW - WEEK)),
        "timers": (timing._QUERY.format(since=" AND started >= ?"), (NOW - WEEK, 50)),
    }[query]
    async with db.execute(f"EXPLAIN QUERY PLAN {sql}", params) as cursor:
        plan = [row[-1] for row in await cursor.fetchall()]
    reads = [line for line in plan if " attempts" in line or " a " in line]
    assert reads and all(line.startswith("SEARCH") for line in reads), plan
    assert any("attempts_outcomes" in line for line in reads), plan
