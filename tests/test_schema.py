"""Schema migrations on real SQLite files: old logs gain their outcomes, a failed step undoes itself."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import aiosqlite
import pytest

from tui_gateway.domain.posteriors import PosteriorBook, attempt_outcome
from tui_gateway.domain.records import AttemptRecord
from tui_gateway.store import schema
from tui_gateway.store.log import RequestLog
from tui_gateway.store.rows import ATTEMPT_COLUMNS, REQUEST_COLUMNS
from tui_gateway.store.schema import MIGRATIONS, migrate, sql_migrations
from tui_gateway.store.stats import load_buckets

HOUR = 3600.0
NOW = 486_111 * HOUR
WEEK = 7 * 86400.0

OldAttempt = tuple[str, float, float, str | None, float | None]
"""(model, started, latency_ms, error_kind, ttfb_ms)"""
OLD_ROWS: list[tuple[str, int, int | None, list[OldAttempt]]] = [
    ("plain", 0, 80, [("sim/a", NOW - HOUR, 2000.0, None, 1990.0)]),
    ("stream", 1, 100, [("sim/a", NOW - HOUR + 5, 1200.0, None, 200.0)]),
    ("fallback", 1, 12, [("sim/a", NOW - 2 * HOUR, 300.0, "5xx", 40.0),
                         ("sim/b", NOW - 2 * HOUR, 500.0, None, 120.0)]),
    ("left", 1, None, [("sim/b", NOW - 3 * HOUR, 50.0, "client_closed", None)]),
    ("odd", 1, None, [("sim/b", NOW - 3 * HOUR, 50.0, "teapot", None)]),
]  # fmt: skip


def version_3_log(path: Path) -> None:
    """A log as the gateway wrote it before migration 4: no outcome columns."""
    with closing(sqlite3.connect(path)) as db:
        for number, script in enumerate(MIGRATIONS[:3], start=1):
            assert isinstance(script, str)
            db.executescript(f"BEGIN; {script} PRAGMA user_version = {number}; COMMIT;")
        for rid, streamed, tokens, attempts in OLD_ROWS:
            db.execute(
                "INSERT INTO requests (id, started, session, requested_model, status, latency_ms,"
                " tokens_out, streamed) VALUES (?, ?, 's', 'auto', 200, 1.0, ?, ?)",
                (rid, attempts[0][1], tokens, streamed),
            )
            for n, (model, started, latency, kind, ttfb) in enumerate(attempts, start=1):
                db.execute(
                    "INSERT INTO attempts (request_id, attempt, provider, model, started,"
                    " latency_ms, error_kind, ttfb_ms) VALUES (?, ?, 'sim', ?, ?, ?, ?, ?)",
                    (rid, n, model, started, latency, kind, ttfb),
                )
        db.commit()


def old_attempts() -> list[tuple[str, bool, int | None, AttemptRecord]]:
    return [
        (rid, bool(streamed), tokens, AttemptRecord(n, "sim", m, t, lat, error_kind=k, ttfb_ms=f))
        for rid, streamed, tokens, attempts in OLD_ROWS
        for n, (m, t, lat, k, f) in enumerate(attempts, start=1)
    ]


def user_version(path: Path) -> int:
    with closing(sqlite3.connect(path)) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


async def test_an_old_log_gains_the_outcomes_the_live_path_would_have_recorded(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    version_3_log(path)
    async with aiosqlite.connect(path) as db:
        await migrate(db)
        async with db.execute(
            "SELECT request_id, attempt, outcome_success, outcome_ttfb_ms, outcome_tokens_per_s"
            " FROM attempts"
        ) as cursor:
            stored = {(r[0], r[1]): r[2:] for r in await cursor.fetchall()}
        rows = await load_buckets(db, now=NOW, window_s=WEEK, bucket_s=HOUR)
    assert user_version(path) == len(MIGRATIONS)
    live = PosteriorBook(window_s=WEEK, bucket_s=HOUR)
    for rid, streamed, tokens, a in old_attempts():
        outcome = attempt_outcome(a, streamed=streamed, tokens_out=tokens)
        if outcome is None:
            assert stored[rid, a.attempt] == (None, None, None)
            continue
        live.record(outcome)
        expected = (int(outcome.success), outcome.ttfb_ms, outcome.tokens_per_s)
        assert stored[rid, a.attempt] == expected
    assert stored["plain", 1] == (1, None, 40.0)  # no ttfb: it was not streamed; 80 in 2 s
    assert stored["odd", 1] == (0, None, None)  # an unknown kind is a failure
    live.refresh(NOW)
    reloaded = PosteriorBook(window_s=WEEK, bucket_s=HOUR)
    reloaded.load(rows, NOW)
    for model in ("sim/a", "sim/b"):
        after, before = reloaded.posterior(model), live.posterior(model)
        assert (after.successes, after.failures) == (before.successes, before.failures)
        numbers = ("alpha", "beta", "ttfb_ms", "tokens_per_s")
        assert [getattr(after, n) for n in numbers] == pytest.approx(
            [getattr(before, n) for n in numbers]
        )
    assert reloaded.posterior("sim/a").ttfb_ms == pytest.approx(200.0)  # not (200 + 1990) / 2


async def test_the_index_no_query_used_is_gone_and_the_rest_stay(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    version_3_log(path)
    log = RequestLog(path)
    await log.open()
    await log.close()
    with closing(sqlite3.connect(path)) as db:
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        plan = db.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM requests ORDER BY started DESC LIMIT 5"
        ).fetchall()
    assert "attempts_model_started" not in indexes
    assert "requests_started" in indexes and "requests_started" in str(plan)


async def test_opening_a_current_log_again_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    for _ in range(2):
        log = RequestLog(path)
        await log.open()
        await log.close()
    assert user_version(path) == len(MIGRATIONS)


async def test_a_python_step_that_fails_leaves_the_database_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.db"
    version_3_log(path)

    async def broken(db: aiosqlite.Connection) -> None:
        await db.execute("ALTER TABLE attempts ADD COLUMN half_done INTEGER")
        await db.execute("UPDATE attempts SET half_done = 1")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(schema, "MIGRATIONS", (*MIGRATIONS[:3], broken))
    async with aiosqlite.connect(path) as db:
        with pytest.raises(RuntimeError, match="disk on fire"):
            await migrate(db)
    assert user_version(path) == 3
    with closing(sqlite3.connect(path)) as check:
        columns = {r[1] for r in check.execute("PRAGMA table_info(attempts)")}
    assert "half_done" not in columns


def test_the_sql_migrations_alone_make_the_tables_rows_py_writes(tmp_path: Path) -> None:
    """What tools building a log with plain sqlite3 use (scripts/bench_routing.py)."""
    with closing(sqlite3.connect(tmp_path / "plain.db")) as db:
        db.executescript(sql_migrations())
        tables = {
            table: [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
            for table in ("requests", "attempts")
        }
    assert sorted(tables["requests"]) == sorted(c.name for c in REQUEST_COLUMNS)
    assert sorted(tables["attempts"]) == sorted(c.name for c in ATTEMPT_COLUMNS)
