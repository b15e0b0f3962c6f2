"""Timers that know the model: learned from its recent successes, clamped to the configured ones."""

from __future__ import annotations

import math
import sqlite3
from contextlib import closing
from pathlib import Path

import aiosqlite
import msgspec
import pytest

from tui_gateway.domain.timers import LearnedTimers, TimerPolicy, TimerView, quantile
from tui_gateway.store.schema import MIGRATIONS, migrate, sql_migrations
from tui_gateway.store.timing import load_timer_history

FAST, SLOW, NEW = "sim/fast", "sim/thinker", "sim/new"
FIRST_BYTE_CEILING, STALL_CEILING = 10.0, 20.0


def timers_with(
    model: str, first_byte: list[float], gap: list[float] | None = None, **policy: float
) -> LearnedTimers:
    timers = LearnedTimers(TimerPolicy(**policy))  # type: ignore[arg-type]
    gaps = gap if gap is not None else first_byte
    for fb, g in zip(first_byte, gaps, strict=True):
        timers.observe(model, first_byte_s=fb, max_gap_s=g)
    return timers


# --- quantile -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([float(v) for v in range(1, 101)], 0.95, 95.0),  # rank ceil(95) = 95
        ([float(v) for v in range(1, 51)], 0.95, 48.0),  # rank ceil(47.5): the two slowest out
        ([float(v) for v in range(1, 21)], 0.95, 19.0),  # 0.95 x 20 is 19 in floating point too
        ([float(v) for v in range(1, 9)], 0.95, 8.0),  # 8 values: the largest
        ([float(v) for v in range(1, 11)], 0.5, 5.0),
        ([float(v) for v in range(1, 11)], 1.0, 10.0),
        ([float(v) for v in range(1, 11)], 0.01, 1.0),  # rank at least 1
        ([3.0, 0.5, 9.0, 1.5, 7.0], 0.6, 3.0),  # unsorted input: sorted 0.5 1.5 3 7 9, rank 3
        ([0.4], 0.95, 0.4),
    ],
)
def test_quantile_is_the_nearest_rank(values: list[float], q: float, expected: float) -> None:
    assert quantile(values, q) == expected


@pytest.mark.parametrize(("values", "q"), [([], 0.5), ([1.0], 0.0), ([1.0], 1.5)])
def test_quantile_refuses_no_values_or_a_q_outside_0_1(values: list[float], q: float) -> None:
    with pytest.raises(ValueError):
        quantile(values, q)


@pytest.mark.parametrize(
    "policy",
    [
        {"quantile": 0.0},
        {"quantile": 1.01},
        {"multiple": 0.0},
        {"min_samples": 0},
        {"min_samples": 60, "window": 50},
        {"first_byte_floor_s": -1.0},
        {"stall_floor_s": math.nan},
    ],
)
def test_a_policy_that_cannot_work_is_refused(policy: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TimerPolicy(**policy)  # type: ignore[arg-type]


# --- timeouts -------------------------------------------------------------------------------


def test_a_model_with_too_little_history_keeps_the_configured_timeouts() -> None:
    timers = timers_with(FAST, [0.3] * 7)
    assert timers.usual_first_byte(FAST) is None and timers.usual_gap(FAST) is None
    assert timers.first_byte_timeout(FAST, FIRST_BYTE_CEILING) == FIRST_BYTE_CEILING
    assert timers.stall_timeout(FAST, STALL_CEILING) == STALL_CEILING
    assert timers.first_byte_timeout(NEW, FIRST_BYTE_CEILING) == FIRST_BYTE_CEILING  # never seen
    assert timers.usual_gap(NEW) is None
    timers.observe(FAST, first_byte_s=0.3, max_gap_s=0.3)  # the 8th: now the history counts
    assert timers.usual_first_byte(FAST) == 0.3
    assert timers.first_byte_timeout(FAST, FIRST_BYTE_CEILING) == 2.0


def test_a_fast_model_gets_short_timeouts_clamped_at_the_floors() -> None:
    timers = timers_with(FAST, [0.2, 0.3, 0.25, 0.3, 0.28] * 4, gap=[0.05, 0.1, 0.4, 0.08, 0.1] * 4)
    assert timers.usual_first_byte(FAST) == 0.3
    assert timers.usual_gap(FAST) == 0.4
    assert timers.first_byte_timeout(FAST, FIRST_BYTE_CEILING) == 2.0  # 3 x 0.3 is below the floor
    assert timers.stall_timeout(FAST, STALL_CEILING) == 2.0


def test_a_slow_model_is_clamped_at_the_configured_ceiling() -> None:
    timers = timers_with(SLOW, [30.0, 28.0, 35.0, 31.0] * 5, gap=[8.0, 9.0, 7.5, 8.5] * 5)
    assert timers.usual_first_byte(SLOW) == 35.0
    assert timers.first_byte_timeout(SLOW, FIRST_BYTE_CEILING) == FIRST_BYTE_CEILING
    assert timers.stall_timeout(SLOW, STALL_CEILING) == STALL_CEILING  # 3 x 9 s is past 20 s
    assert timers.first_byte_timeout(SLOW, 120.0) == 105.0  # a generous ceiling lets it think


def test_between_floor_and_ceiling_the_timeout_is_the_multiple_of_the_quantile() -> None:
    first_byte = [v / 10 for v in range(1, 21)]  # 0.1 .. 2.0 s, p95 (19th of 20) = 1.9 s
    timers = timers_with(FAST, first_byte, gap=[0.5] * 19 + [6.0])
    assert timers.first_byte_timeout(FAST, FIRST_BYTE_CEILING) == pytest.approx(5.7)
    assert timers.usual_gap(FAST) == 0.5  # one long pause in 20 is left out
    assert timers.stall_timeout(FAST, STALL_CEILING) == pytest.approx(2.0)
    policy = LearnedTimers(TimerPolicy(multiple=5.0, quantile=0.5))
    for v in first_byte:
        policy.observe(FAST, first_byte_s=v, max_gap_s=None)
    assert policy.first_byte_timeout(FAST, FIRST_BYTE_CEILING) == pytest.approx(5.0)  # 5 x 1.0


def test_a_floor_above_the_ceiling_gives_way_to_the_ceiling() -> None:
    timers = timers_with(FAST, [0.3] * 10, first_byte_floor_s=5.0, stall_floor_s=5.0)
    assert timers.first_byte_timeout(FAST, 3.0) == 3.0
    assert timers.stall_timeout(FAST, 4.0) == 4.0
    assert timers.first_byte_timeout(FAST, 8.0) == 5.0


# --- the window -----------------------------------------------------------------------------


def test_the_window_keeps_only_the_most_recent_observations() -> None:
    timers = LearnedTimers(TimerPolicy(window=10, min_samples=5))
    for _ in range(40):
        timers.observe(SLOW, first_byte_s=30.0, max_gap_s=5.0)
    assert timers.usual_first_byte(SLOW) == 30.0
    for _ in range(10):  # the model got faster: ten new answers push out every old one
        timers.observe(SLOW, first_byte_s=1.0, max_gap_s=0.2)
    assert timers.samples(SLOW) == (10, 10)
    assert timers.usual_first_byte(SLOW) == 1.0 and timers.usual_gap(SLOW) == 0.2
    assert timers.first_byte_timeout(SLOW, FIRST_BYTE_CEILING) == 3.0


def test_each_observation_refreshes_the_cached_quantile() -> None:
    timers = timers_with(FAST, [1.0] * 8)
    assert timers.usual_first_byte(FAST) == 1.0
    timers.observe(FAST, first_byte_s=4.0, max_gap_s=None)
    assert timers.usual_first_byte(FAST) == 4.0  # 9 values: p95 is the largest
    assert timers.usual_gap(FAST) == 1.0  # untouched


def test_a_missing_or_impossible_value_is_not_observed() -> None:
    timers = LearnedTimers()
    timers.observe(FAST, first_byte_s=None, max_gap_s=None)
    assert timers.models() == [] and timers.samples(FAST) == (0, 0)
    timers.observe(FAST, first_byte_s=0.5, max_gap_s=None)  # an old row: no gap was logged
    timers.observe(FAST, first_byte_s=-1.0, max_gap_s=math.nan)
    timers.observe(FAST, first_byte_s=math.inf, max_gap_s=0.1)
    assert timers.samples(FAST) == (1, 1)
    assert timers.models() == [FAST]


# --- the view -------------------------------------------------------------------------------


def test_describe_shows_what_was_learned_and_encodes_as_json() -> None:
    timers = timers_with(FAST, [0.3] * 12, gap=[0.4] * 12)
    timers.observe(SLOW, first_byte_s=20.0, max_gap_s=None)
    view = timers.describe(FAST, first_byte_ceiling_s=10.0, stall_ceiling_s=20.0)
    assert view == TimerView(
        model=FAST, usual_first_byte_s=0.3, usual_gap_s=0.4, first_byte_timeout_s=2.0,
        stall_timeout_s=2.0, first_byte_samples=12, gap_samples=12,
    )  # fmt: skip
    assert timers.describe(NEW, first_byte_ceiling_s=10.0, stall_ceiling_s=20.0) is None
    views = timers.views(first_byte_ceiling_s=10.0, stall_ceiling_s=20.0)
    assert [v.model for v in views] == [FAST, SLOW]
    assert views[1].usual_first_byte_s is None and views[1].first_byte_timeout_s == 10.0
    only = timers.views(first_byte_ceiling_s=10.0, stall_ceiling_s=20.0, models=[NEW, SLOW])
    assert [v.model for v in only] == [SLOW]
    encoded = msgspec.json.encode(views)
    assert msgspec.json.decode(encoded, type=tuple[TimerView, ...]) == views
    assert b'"usual_gap_s":0.4' in encoded


# --- history at start -----------------------------------------------------------------------

Attempt = tuple[str, float, str | None, int, float | None, float | None]
"""(model, started, error_kind, streamed, ttfb_ms, max_gap_ms)"""


def insert(db: sqlite3.Connection, rows: list[Attempt], *, with_gap: bool = True) -> None:
    """Requests and attempts as the log writes them, outcome columns included (rows.py)."""
    for n, (model, started, kind, streamed, ttfb, gap) in enumerate(rows):
        rid = f"r{n}"
        db.execute(
            "INSERT INTO requests (id, started, session, requested_model, status, latency_ms,"
            " streamed) VALUES (?, ?, 's', 'auto', 200, 1000.0, ?)",
            (rid, started, streamed),
        )
        success = kind is None
        columns = "request_id, attempt, provider, model, started, latency_ms, error_kind,"
        columns += " ttfb_ms, outcome_success, outcome_ttfb_ms"
        values: tuple[object, ...] = (rid, 1, "sim", model, started, 1000.0, kind, ttfb,
                                      int(success), ttfb if success and streamed else None)  # fmt: skip
        if with_gap:
            columns += ", max_gap_ms"
            values += (gap,)
        db.execute(
            f"INSERT INTO attempts ({columns}) VALUES ({', '.join('?' * len(values))})", values
        )
    db.commit()


class Recorder(LearnedTimers):
    def __init__(self, policy: TimerPolicy | None = None) -> None:
        super().__init__(policy)
        self.seen: list[tuple[str, float | None, float | None]] = []

    def observe(self, model: str, *, first_byte_s: float | None, max_gap_s: float | None) -> None:
        self.seen.append((model, first_byte_s, max_gap_s))
        super().observe(model, first_byte_s=first_byte_s, max_gap_s=max_gap_s)


async def test_the_history_loads_each_models_newest_streamed_successes_oldest_first(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log.db"
    async with aiosqlite.connect(path) as db:
        await migrate(db)
    rows: list[Attempt] = []
    # 60 streamed successes of FAST, written out of time order: the newest 50 are wanted
    for i in reversed(range(60)):
        rows.append((FAST, 1000.0 + i, None, 1, 100.0 + i, 10.0 + i))
    rows += [
        (FAST, 2000.0, "stalled", 1, 9000.0, 9000.0),  # a failure: it would teach waiting
        (FAST, 2001.0, None, 0, 4000.0, None),  # not streamed: its first byte is the answer
        (SLOW, 1500.0, None, 1, 30000.0, 5000.0),
        (SLOW, 1400.0, None, 1, 28000.0, None),  # an old row: no gap logged
    ]
    with closing(sqlite3.connect(path)) as plain:
        insert(plain, rows)
    timers = Recorder()
    async with aiosqlite.connect(path) as db:
        count = await load_timer_history(db, timers)
    assert count == 52
    fast = [s for s in timers.seen if s[0] == FAST]
    assert fast == [(FAST, (100.0 + i) / 1000, (10.0 + i) / 1000) for i in range(10, 60)]
    assert [s for s in timers.seen if s[0] == SLOW] == [(SLOW, 28.0, None), (SLOW, 30.0, 5.0)]
    assert timers.samples(FAST) == (50, 50) and timers.samples(SLOW) == (2, 1)
    assert timers.usual_first_byte(FAST) == pytest.approx(0.157)  # 48th of 0.110 .. 0.159

    small = Recorder(TimerPolicy(window=10, min_samples=5))
    async with aiosqlite.connect(path) as db:
        assert await load_timer_history(db, small, per_model=3, since=1055.0) == 5
    assert [s[1] for s in small.seen if s[0] == FAST] == [0.157, 0.158, 0.159]
    assert [s[1] for s in small.seen if s[0] == SLOW] == [28.0, 30.0]


async def test_a_log_from_before_the_gap_column_migrates_and_teaches_first_bytes_only(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as db:
        for number, script in enumerate(MIGRATIONS[:5], start=1):
            assert isinstance(script, str)
            db.executescript(f"BEGIN; {script} PRAGMA user_version = {number}; COMMIT;")
        insert(db, [(FAST, 1000.0 + i, None, 1, 300.0, None) for i in range(10)], with_gap=False)
    timers = LearnedTimers()
    async with aiosqlite.connect(path) as db:
        await migrate(db)
        async with db.execute("PRAGMA user_version") as cursor:
            assert (await cursor.fetchone()) == (len(MIGRATIONS),)
        assert await load_timer_history(db, timers) == 10
    assert timers.samples(FAST) == (10, 0)
    assert timers.usual_first_byte(FAST) == 0.3 and timers.usual_gap(FAST) is None
    assert timers.first_byte_timeout(FAST, FIRST_BYTE_CEILING) == 2.0
    assert timers.stall_timeout(FAST, STALL_CEILING) == STALL_CEILING


def test_the_schema_scripts_give_attempts_a_gap_column(tmp_path: Path) -> None:
    with closing(sqlite3.connect(tmp_path / "plain.db")) as db:
        db.executescript(sql_migrations())
        columns = {r[1]: r[2] for r in db.execute("PRAGMA table_info(attempts)")}
    assert columns["max_gap_ms"] == "REAL"


async def test_an_empty_log_teaches_nothing(tmp_path: Path) -> None:
    timers = LearnedTimers()
    async with aiosqlite.connect(tmp_path / "log.db") as db:
        await migrate(db)
        assert await load_timer_history(db, timers) == 0
        with pytest.raises(ValueError):
            await load_timer_history(db, timers, per_model=0)
    assert timers.models() == []
