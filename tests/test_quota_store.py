"""Quota use and learned limits survive a restart (issue 13): "a restart in the middle of a day
keeps the day's counts".

The domain round trip runs on injected times from T0, a UTC midnight: what `usage_changes` gives
is upserted into a dict, as the table would hold it, and a fresh `Quotas` restored from it must
answer `views`, `allows` and `frees_at` exactly as the one that counted. Then the same through a
real SQLite file (store/quota_usage.py), and through the gateway's app started twice on one log.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import sqlite3
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.factories import API_KEY, FakeClock, make_settings, model, start_gateway
from tui_gateway.config import Settings
from tui_gateway.domain.quota_windows import DailyReset
from tui_gateway.domain.quotas import Limits, QuotaPolicy, Quotas, UsageRow
from tui_gateway.domain.state import GatewayState
from tui_gateway.proxy.app import make_app
from tui_gateway.store.log import RequestLog
from tui_gateway.store.quota_usage import MARGIN_S, QuotaStore
from tui_gateway.store.schema import MIGRATIONS

T0 = dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc).timestamp()
HOUR = 3600.0
DAY = 86_400.0
M = "p/m"
M2 = "p/other"


def quotas(scope: str = "key", reset: str | None = None, **limits: int) -> Quotas:
    policy = QuotaPolicy(
        Limits(**limits),
        provider="p",
        scope=scope,  # type: ignore[arg-type]
        daily_reset=None if reset is None else DailyReset.parse(reset),
    )
    return Quotas({M: policy, M2: policy})


class Table:
    """What `quota_usage` holds: the latest row per (quota, window, bucket), as upserts leave it."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, float], UsageRow] = {}

    def save(self, q: Quotas) -> list[UsageRow]:
        changes = q.usage_changes()
        for row in changes:
            self.rows[row[:3]] = row
        return changes


def restarted(table: Table, now: float, **config: Any) -> Quotas:
    after = quotas(**config)
    after.restore(list(table.rows.values()), now)
    return after


def window(q: Quotas, name: str, now: float, model: str = M, key: str = "k1") -> tuple[int, int]:
    view = q.view(key, model, now)
    assert view is not None
    found = next(w for w in view.windows if w.name == name)
    return found.used, found.limit


def assert_same_answers(
    before: Quotas,
    after: Quotas,
    times: Iterable[float],
    *,
    keys: tuple[str, ...] = ("k1",),
    estimates: tuple[int, ...] = (0, 100, 400),
) -> None:
    for now in times:
        assert after.views(now) == before.views(now), now
        for key in keys:
            for tokens in estimates:
                assert after.allows(key, M, now, tokens) == before.allows(key, M, now, tokens)
                assert after.frees_at(key, M, now, tokens) == before.frees_at(key, M, now, tokens)


# --- the domain: dirty buckets out, the same answers back --------------------------------------


def test_only_the_buckets_changed_since_the_last_save_are_given() -> None:
    q = quotas(rpm=10, tpm=1000)
    handle = q.reserve("k1", M, T0, 5)
    assert q.usage_changes() == [("k1|p/m", "minute", T0, 1, 5), ("k1|p/m", "day", T0, 1, 5)]
    assert q.usage_changes() == []  # nothing moved: nothing to write
    q.settle(handle, 70)  # settled later: the same buckets come again, corrected
    assert q.usage_changes() == [("k1|p/m", "minute", T0, 1, 70), ("k1|p/m", "day", T0, 1, 70)]
    q.allows("k1", M, T0 + 5)
    assert q.usage_changes() == []  # a check counts nothing


def test_the_minute_after_a_restart_answers_as_before() -> None:
    q = quotas(rpm=3, tpm=1000)
    table = Table()
    first = q.reserve("k1", M, T0 + 0.5, 300)  # between buckets: counted until T0 + 61
    table.save(q)
    q.reserve("k1", M, T0 + 10, 200)
    q.settle(first, 450)  # corrects a bucket saved already
    refused = q.reserve("k1", M, T0 + 20, 100)
    q.release(refused)
    q.reserve("k2", M, T0 + 25)
    table.save(q)

    after = restarted(table, T0 + 30, rpm=3, tpm=1000)
    assert window(after, "rpm", T0 + 30) == (2, 3)
    assert window(after, "tpm", T0 + 30) == (650, 1000)
    assert after.frees_at("k1", M, T0 + 30, 400) == T0 + 61  # when the 450 leave
    times = [T0 + 30, T0 + 60.9, T0 + 61, T0 + 70, T0 + 79.99, T0 + 80, T0 + 85, T0 + 200]
    assert_same_answers(q, after, times, keys=("k1", "k2"))


def test_the_rolling_day_after_a_restart_answers_as_before() -> None:
    q = quotas(rpm=100, rpd=3, tpd=10_000)
    table = Table()
    q.reserve("k1", M, T0, 1000)
    q.reserve("k1", M, T0 + HOUR, 2000)
    table.save(q)
    q.reserve("k1", M, T0 + 5 * HOUR + 30, 500)  # mid-minute: leaves at the next minute
    table.save(q)

    after = restarted(table, T0 + 6 * HOUR, rpm=100, rpd=3, tpd=10_000)
    assert window(after, "rpd", T0 + 6 * HOUR) == (3, 3)
    assert not after.allows("k1", M, T0 + 6 * HOUR)
    assert after.frees_at("k1", M, T0 + 6 * HOUR) == T0 + DAY
    times = [T0 + 6 * HOUR, T0 + DAY - 1, T0 + DAY, T0 + DAY + HOUR, T0 + DAY + 5 * HOUR + 30]
    assert_same_answers(q, after, [*times, T0 + DAY + 5 * HOUR + 60, T0 + 2 * DAY])


def test_a_bucket_already_out_of_its_window_is_not_restored() -> None:
    q = quotas(rpm=100, rpd=3)
    table = Table()
    for at in (T0, T0 + HOUR, T0 + 2 * HOUR):
        q.reserve("k1", M, at)
    table.save(q)
    after = restarted(table, T0 + DAY + 1, rpm=100, rpd=3)
    assert window(after, "rpd", T0 + DAY + 1) == (2, 3)
    assert after.footprint() == 2  # the day's two buckets left; every minute bucket is gone
    assert_same_answers(q, after, [T0 + DAY + 1, T0 + DAY + HOUR, T0 + DAY + 2 * HOUR])


@pytest.mark.parametrize("reset", ["00:00 UTC", "09:30 Asia/Kolkata"])
def test_a_daily_reset_keeps_the_days_counts_and_not_the_day_befores(reset: str) -> None:
    q = quotas(reset=reset, rpm=100, rpd=2, tpd=5000)
    table = Table()
    q.reserve("k1", M, T0 + HOUR, 1200)
    q.reserve("k1", M, T0 + 2 * HOUR, 300)
    table.save(q)
    ends = DailyReset.parse(reset).next_after(T0 + 2 * HOUR)

    same_day = restarted(table, T0 + 3 * HOUR, reset=reset, rpm=100, rpd=2, tpd=5000)
    assert window(same_day, "rpd", T0 + 3 * HOUR) == (2, 2)
    assert window(same_day, "tpd", T0 + 3 * HOUR) == (1500, 5000)
    assert same_day.frees_at("k1", M, T0 + 3 * HOUR) == ends  # at the reset, not in 24 h
    assert_same_answers(q, same_day, [T0 + 3 * HOUR, ends - 1, ends, ends + HOUR])

    next_day = restarted(table, ends + 60, reset=reset, rpm=100, rpd=2, tpd=5000)
    assert window(next_day, "rpd", ends + 60) == (0, 2)
    assert next_day.allows("k1", M, ends + 60)


def test_a_quota_shared_by_the_provider_comes_back_whole() -> None:
    q = quotas(scope="provider", rpm=3)
    table = Table()
    q.reserve("k1", M, T0)
    q.reserve("k1", M2, T0 + 1)
    assert {row[0] for row in table.save(q)} == {"k1|*p"}
    after = restarted(table, T0 + 2, scope="provider", rpm=3)
    assert window(after, "rpm", T0 + 2, model=M2) == (2, 3)
    assert_same_answers(q, after, [T0 + 2, T0 + 60, T0 + 61])


def test_rows_of_a_quota_the_config_no_longer_has_are_dropped() -> None:
    q = quotas(rpm=5, rpd=10)
    table = Table()
    q.reserve("k1", M, T0)
    q.reserve("k1", M2, T0)
    table.save(q)
    # M2 is gone; M's day now empties at a fixed time: rolling-day rows are not that day's
    policy = QuotaPolicy(Limits(rpm=5, rpd=10), provider="p", daily_reset=DailyReset.parse("00:00 UTC"))  # fmt: skip
    after = Quotas({M: policy})
    after.restore(list(table.rows.values()), T0 + 10)
    assert [v.model for v in after.views(T0 + 10)] == [M]
    assert window(after, "rpm", T0 + 10) == (1, 5)
    assert window(after, "rpd", T0 + 10) == (0, 10)
    # the same model, now counted per provider: its per-model rows are not the shared quota's
    shared = restarted(table, T0 + 10, scope="provider", rpm=5, rpd=10)
    assert shared.views(T0 + 10) == []
    per_key = quotas(rpm=5)
    per_key.restore([("k1|*p", "minute", T0, 3, 0)], T0 + 10)  # and a shared row, per model
    assert per_key.views(T0 + 10) == []


def test_lowered_limits_come_back_after_a_restart() -> None:
    q = quotas(rpm=10, rpd=1000)
    for _ in range(4):
        q.reserve("k1", M, T0)
    refused = q.reserve("k1", M, T0 + 1)
    assert q.rate_limited("k1", M, T0 + 1, refused=refused) == "rpm"
    saved = json.loads(json.dumps(q.learned()))  # as the saved_state row holds it
    assert saved == {"k1|p/m": {"rpm": 4}}
    after = quotas(rpm=10, rpd=1000)
    after.restore_learned(saved)
    view = after.view("k1", M, T0 + 120)
    assert view is not None
    assert (view.windows[0].limit, view.windows[0].lowered) == (4, True)
    for _ in range(10):  # and it recovers from there as before
        after.succeeded("k1", M, T0 + 120)
    assert window(after, "rpm", T0 + 120) == (0, 5)


def test_a_lowered_limit_the_config_has_outgrown_is_dropped() -> None:
    saved = {
        "k1|p/m": {"rpm": 4, "tpm": 50, "rpd": "x"},  # rpm now 3; tpm and rpd not limited
        "k1|p/gone": {"rpm": 1},
        "k2|p/m": [1, 2],
    }
    after = quotas(rpm=3, tpd=100)
    after.restore_learned(saved)
    assert after.learned() == {}
    assert window(after, "rpm", T0) == (0, 3)
    for _ in range(20):
        after.succeeded("k1", M, T0)  # nothing lowered to recover (a stale tpm would crash it)
    assert window(after, "rpm", T0) == (0, 3)


# --- the store: a real SQLite file -----------------------------------------------------------


async def open_log(path: Path) -> RequestLog:
    log = RequestLog(path)
    await log.open()
    return log


def table_rows(path: Path) -> set[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as db:
        return set(db.execute("SELECT slot, window, bucket, requests, tokens FROM quota_usage"))


async def test_the_store_round_trips_the_use_through_a_sqlite_file(tmp_path: Path) -> None:
    path, clock = tmp_path / "log.db", FakeClock(T0 + 100)
    q = quotas(rpm=5, rpd=50, tpm=10_000)
    log = await open_log(path)
    store = QuotaStore(log.db, q, lock=log.write_lock, clock=clock)
    assert await store.restore() == 0
    first = q.reserve("k1", M, clock(), 300)
    clock.advance(1.5)
    q.reserve("k2", M, clock(), 100)
    q.settle(first, 250)
    await store.flush()
    clock.advance(10)
    q.reserve("k1", M, clock())  # counted after the last tick: written by close
    await store.close()
    await log.close()
    assert table_rows(path) == {
        ("k1|p/m", "minute", T0 + 100, 1, 250), ("k1|p/m", "minute", T0 + 112, 1, 0),
        ("k1|p/m", "day", T0 + 120, 2, 250),
        ("k2|p/m", "minute", T0 + 102, 1, 100), ("k2|p/m", "day", T0 + 120, 1, 100),
    }  # fmt: skip

    clock.advance(5)
    log = await open_log(path)
    after = quotas(rpm=5, rpd=50, tpm=10_000)
    store = QuotaStore(log.db, after, lock=log.write_lock, clock=clock)
    assert await store.restore() == 5
    assert window(after, "rpm", clock()) == (2, 5)
    assert window(after, "tpm", clock(), key="k2") == (100, 10_000)
    assert_same_answers(q, after, [clock(), T0 + 160, T0 + 172, T0 + DAY + 120], keys=("k1", "k2"))
    await store.close()
    await log.close()


async def test_old_rows_are_pruned_at_start_and_as_it_writes(tmp_path: Path) -> None:
    path, now = tmp_path / "log.db", T0 + 2 * DAY
    old = [
        ("k1|p/m", "minute", now - 60 - MARGIN_S - 1, 1, 0),
        ("k1|p/m", "day", now - DAY - MARGIN_S - 1, 1, 0),
        ("k1|p/m", "daily", now - MARGIN_S - 1, 1, 0),  # a day that ended over an hour ago
    ]
    kept = [
        ("k1|p/m", "minute", now - 30, 1, 0),
        ("k1|p/m", "day", now - DAY + 60, 1, 0),
        ("k1|p/m", "daily", now + HOUR, 1, 0),
    ]
    log = await open_log(path)
    await log.db.executemany("INSERT INTO quota_usage VALUES (?, ?, ?, ?, ?)", old + kept)
    await log.db.commit()
    clock, q = FakeClock(now), quotas(rpm=5)
    store = QuotaStore(log.db, q, lock=log.write_lock, clock=clock)
    assert await store.restore() == 3
    assert table_rows(path) == set(kept)

    aging = ("k2|p/m", "minute", now - 60 - MARGIN_S + 30, 1, 0)  # stale from now + 30 s
    await log.db.execute("INSERT INTO quota_usage VALUES (?, ?, ?, ?, ?)", aging)
    await log.db.commit()
    clock.advance(59)
    q.reserve("k1", M, clock())
    await store.flush()
    assert aging in table_rows(path)  # the last prune was under `prune_every_s` ago
    clock.advance(2)
    q.reserve("k1", M, clock())
    await store.flush()  # past `prune_every_s`: this write prunes too
    rows = table_rows(path)
    assert aging not in rows and set(kept) <= rows
    assert ("k1|p/m", "minute", clock(), 1, 0) in rows
    await store.close()
    await log.close()


async def test_an_idle_tick_makes_no_query_and_a_busy_one_waits_for_the_log(
    tmp_path: Path,
) -> None:
    log = await open_log(tmp_path / "log.db")
    clock = FakeClock(T0)
    q = quotas(rpm=5)
    store = QuotaStore(log.db, q, lock=log.write_lock, clock=clock)
    await store.restore()
    async with log.write_lock:  # the request log is writing
        await asyncio.wait_for(store.flush(), 1.0)  # nothing changed: it does not even wait
        q.reserve("k1", M, clock())
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(store.flush(), 0.2)  # something to write: it takes the lock
    await store.flush()  # the rows given up on are still pending, and written now
    assert table_rows(tmp_path / "log.db") == {
        ("k1|p/m", "minute", T0, 1, 0),
        ("k1|p/m", "day", T0, 1, 0),
    }
    await store.close()
    await log.close()


async def test_a_write_the_database_refuses_is_retried_with_its_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "log.db"
    log = await open_log(path)
    clock = FakeClock(T0)
    q = quotas(rpm=5)
    store = QuotaStore(log.db, q, lock=log.write_lock, clock=clock)
    await store.restore()
    await log.db.execute("DROP TABLE quota_usage")
    await log.db.commit()
    q.reserve("k1", M, clock())
    with caplog.at_level(logging.WARNING, logger="tui_gateway.store"):
        await store.flush()
    assert "quota use: cannot save" in caplog.text
    migration = MIGRATIONS[8]
    assert isinstance(migration, str)
    await log.db.executescript(migration)  # the table is back
    clock.advance(1)
    q.reserve("k1", M, clock())
    await store.flush()
    assert table_rows(path) == {
        ("k1|p/m", "minute", T0, 1, 0),  # from the refused write
        ("k1|p/m", "day", T0, 1, 0),
        ("k1|p/m", "minute", T0 + 1, 1, 0),
        ("k1|p/m", "day", T0 + 60, 1, 0),
    }
    await store.close()
    await log.close()


async def test_the_store_saves_and_restores_the_lowered_limits(tmp_path: Path) -> None:
    path, clock = tmp_path / "log.db", FakeClock(T0)
    q = quotas(rpm=10)
    log = await open_log(path)
    store = QuotaStore(log.db, q, lock=log.write_lock, clock=clock)
    await store.restore()
    for _ in range(3):
        q.reserve("k1", M, clock())
    assert q.rate_limited("k1", M, clock()) == "rpm"
    await store.close()
    await log.close()

    log = await open_log(path)
    after = quotas(rpm=10)
    store = QuotaStore(log.db, after, lock=log.write_lock, clock=clock)
    await store.restore(key_ids={"k1"})
    assert after.learned() == {"k1|p/m": {"rpm": 3}}
    assert window(after, "rpm", clock()) == (3, 3)
    await store.close()
    await log.close()

    log = await open_log(path)
    gone = quotas(rpm=10)
    store = QuotaStore(log.db, gone, lock=log.write_lock, clock=clock)
    await store.restore(key_ids={"k2"})  # k1 is no longer configured: nothing of it returns
    assert gone.learned() == {} and gone.views(clock()) == []
    await store.close()
    await log.close()


# --- the gateway started twice on one log ------------------------------------------------------


def sim_settings(**limits: int) -> Settings:
    provider: dict[str, Any] = {"name": "sim", "kind": "simulated"}
    if limits:
        provider["limits"] = limits
    return make_settings(providers=[provider], models=[model("sim", "a")])


async def started(path: Path, settings: Settings, clock: FakeClock) -> tuple[GatewayState, web.AppRunner]:  # fmt: skip
    """A gateway's app started on the log, as a real start does it (its cleanup context)."""
    state = GatewayState(settings, clock=clock)
    runner = web.AppRunner(make_app(state, settings, RequestLog(path), api_key=API_KEY))
    await runner.setup()
    return state, runner


async def test_the_quota_counts_survive_a_restart_of_the_gateway(tmp_path: Path) -> None:
    path, clock = tmp_path / "log.db", FakeClock(T0 + 10 * HOUR)
    settings = sim_settings(rpm=5, rpd=100)
    state, runner = await started(path, settings, clock)
    try:
        for _ in range(4):
            state.quotas.reserve("sim#1", "sim/a", clock(), 50)
        refused = state.quotas.reserve("sim#1", "sim/a", clock())
        assert state.quotas.rate_limited("sim#1", "sim/a", clock(), refused=refused) == "rpm"
        before = state.quotas.view("sim#1", "sim/a", clock())
    finally:
        await runner.cleanup()  # the final write: nothing waits for the next tick

    clock.advance(10)
    state, runner = await started(path, settings, clock)
    try:
        view = state.quotas.view("sim#1", "sim/a", clock())
        assert view is not None and before is not None
        rpm, rpd = view.windows
        assert (rpm.used, rpm.limit, rpm.lowered) == (4, 4, True)  # the count and the lowering
        assert (rpd.used, rpd.limit) == (4, 100)
        assert view.blocked and rpm.frees_in_s == 50.0
        assert state.quotas.frees_at("sim#1", "sim/a", clock()) == T0 + 10 * HOUR + 60
    finally:
        await runner.cleanup()


async def test_without_limits_the_gateway_starts_no_quota_writer(tmp_path: Path) -> None:
    path, clock = tmp_path / "log.db", FakeClock(T0)
    state, runner = await started(path, sim_settings(), clock)
    try:
        assert not state.quotas
        names = {task.get_name() for task in asyncio.all_tasks()}
        assert "quota-usage-writer" not in names
    finally:
        await runner.cleanup()
    assert table_rows(path) == set()

    state, runner = await started(path, sim_settings(rpm=5), clock)
    try:  # the same check sees the writer when a model has limits
        assert "quota-usage-writer" in {task.get_name() for task in asyncio.all_tasks()}
    finally:
        await runner.cleanup()


async def test_requests_counted_before_a_restart_still_count_after_it(tmp_path: Path) -> None:
    """Through the HTTP API on a real clock: the free tier's minute is not reset by a restart."""
    quick = {"first_token_ms": 0, "tokens_per_s": 5000, "reply_tokens": 5}
    settings = make_settings(
        providers=[{"name": "sim", "kind": "simulated", "limits": {"rpm": 3, "rpd": 100}}],
        models=[model("sim", "a", simulate=quick)],
        routing={"max_quota_wait_s": 0},
    )
    path = tmp_path / "log.db"
    body = {"model": "sim/a", "messages": [{"role": "user", "content": "hi"}]}

    async def send(base_url: str, stream: bool) -> int:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as http:
            async with http.post(f"{base_url}/chat/completions", json={**body, "stream": stream}) as r:  # fmt: skip
                await r.read()
                return r.status

    first = await start_gateway(settings, path)
    try:
        assert [await send(first.base_url, s) for s in (False, True, False)] == [200, 200, 200]
    finally:
        await first.stop()
    second = await start_gateway(settings, path)
    try:
        view = second.state.quotas.view("sim#1", "sim/a", second.state.clock())
        assert view is not None and [w.used for w in view.windows] == [3, 3]
        assert await send(second.base_url, False) == 429  # the minute's three are still counted
    finally:
        await second.stop()
