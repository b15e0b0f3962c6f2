"""What the analytics over the request log cost (issue 14): `analytics()` per range, and the writes.

    python scripts/bench_stats.py [--requests N] [--runs N] [--db PATH] [--writes N] [--compare]

1. Build a throwaway log of `--requests` (1,000,000) requests over the last 30 days with plain
   sqlite3 and the schema's own script (`sql_migrations()`), with their attempts (about 1.12
   each: a tenth fall back, some of those continue a broken answer), 24 models on 6 providers of
   uneven popularity, 5% failures of every kind. `--db PATH` keeps it there and reuses it.
2. Time `analytics()` for each range, `--runs` times (after one warm-up run), on two read-only
   aiosqlite connections (as `read_analytics`, so `tui-gateway stats` and `GET /gateway/stats`,
   read), then on one, while a ticker on the same event loop sleeps 5 ms at a time and keeps its
   longest gap: median and max of the runs. Target, on two: each range well under a second, the
   loop never blocked for more than 50 ms. `--compare` then times each range once more with
   migration 10's indexes dropped (slow: minutes), and puts them back.
   Then what start-up reads from the log (`load_buckets`, `load_timer_history`), `--runs`
   times: each under half a second (before migration 11 the timers' read scanned the log).
3. `--writes N` (200,000; 0 skips it): the cost per request of writing the log as the writer
   does (WAL, 500 requests and their attempts per transaction, one multi-row INSERT each), over
   all N and over the last tenth: with the schema's indexes, with migration 10's (the
   analytics') dropped, and with the random request ids used before 2026-12-03.

Prints markdown tables; exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tui_gateway.asyncio_utils import spawn
from tui_gateway.domain.flows import request_id
from tui_gateway.domain.posteriors import PosteriorBook
from tui_gateway.domain.records import AttemptRecord, RequestRecord
from tui_gateway.domain.timers import LearnedTimers
from tui_gateway.store.analytics import RANGES, analytics, connect_read_only
from tui_gateway.store.rows import (
    ATTEMPT_COLUMNS,
    REQUEST_COLUMNS,
    Row,
    attempt_row,
    multi_row,
    names,
    request_row,
)
from tui_gateway.store.schema import MIGRATIONS, sql_migrations
from tui_gateway.store.stats import load_buckets
from tui_gateway.store.timing import load_timer_history

NOW = 1_750_000_000.0
DAYS = 30
PROVIDERS = ("groq", "cerebras", "openrouter", "gemini", "cohere", "cloudflare")
MODELS = [(p, f"{p}/model-{i}") for p in PROVIDERS for i in range(4)]
FAILURES = (
    ["5xx"] * 30 + ["connection"] * 8 + ["timeout"] * 8 + ["stall"] * 6 + ["truncated"] * 3
    + ["wrapped"] * 5 + ["rate_limited"] * 25 + ["quota"] * 4 + ["key_rejected"] * 2
    + ["client_error"] * 3 + ["outrun"] * 2 + ["hedged"] * 2 + ["client_closed"] * 2
)  # fmt: skip
RELOAD_TARGET_S = 0.5
"""Each start-up read, on the million-request log: start-up should not wait on the log's age."""
ANALYTICS_INDEXES = ("requests_by_model", "requests_failed", "attempts_errors", "attempts_later")
"""Migration 10's indexes, dropped for the comparisons."""
_MIGRATION_10 = MIGRATIONS[9]
assert isinstance(_MIGRATION_10, str)
ANALYTICS_MIGRATION: str = _MIGRATION_10
assert all(index in ANALYTICS_MIGRATION for index in ANALYTICS_INDEXES)
_INSERT_REQUESTS = f"INSERT INTO requests ({names(REQUEST_COLUMNS)}) VALUES "
_INSERT_ATTEMPTS = f"INSERT INTO attempts ({names(ATTEMPT_COLUMNS)}) VALUES "


def requests(n: int, seed: int = 7, *, random_ids: bool = False) -> Iterator[RequestRecord]:
    """`n` requests over the last `DAYS` days, oldest first, as the log holds them: with ids as
    the gateway makes them (`request_id`, in time order), or 48 random bits as before 2026-12-03.
    """
    rng, id_bits = random.Random(seed), random.Random(seed + 1)
    span = DAYS * 86400.0
    starts = sorted(NOW - span + rng.random() * span for _ in range(n))
    for i, started in enumerate(starts):
        rid = f"{id_bits.getrandbits(48):012x}" if random_ids else request_id(started, i)
        if rng.random() < 0.003:  # refused before routing: no model, no attempt
            yield RequestRecord(rid, started, "", "", False, 400, 0.0,
                                error_kind="invalid_request", error="bad request")  # fmt: skip
            continue
        draw = rng.random()
        count = 1 if draw < 0.9 else 2 if draw < 0.98 else 3
        ok, streamed = rng.random() < 0.95, rng.random() < 0.8
        continued = count > 1 and rng.random() < 0.15
        attempts, at, kind = [], started, None
        for number in range(1, count + 1):
            provider, model = MODELS[min(int(rng.expovariate(0.12)), len(MODELS) - 1)]
            latency = round(rng.lognormvariate(7.3, 0.7), 2)
            kind = None if number == count and ok else rng.choice(FAILURES)
            ttfb = round(latency * rng.uniform(0.1, 0.4), 2) if kind is None else None
            text_from = rng.randrange(10, 4000) if continued and number > 1 else None
            attempts.append(
                AttemptRecord(
                    number,
                    provider,
                    model,
                    at,
                    latency,
                    200 if kind is None else 502,
                    kind,
                    None if kind is None else "boom",
                    ttfb,
                    text_from=text_from,
                )  # fmt: skip
            )
            at += latency / 1000
        latency = round((at - started) * 1000, 2)
        yield RequestRecord(
            rid, started, f"s{i % 5000}", "auto", streamed, 200 if ok else 502, latency,
            provider, model, kind, None if ok else "boom",
            round(latency * rng.uniform(0.1, 0.4), 2) if ok else None,
            rng.randrange(200, 20000), rng.randrange(10, 2000) if ok else None, tuple(attempts),
        )  # fmt: skip


def rows(records: list[RequestRecord]) -> tuple[list[Row], list[Row]]:
    attempts = [attempt_row(r.id, a, streamed=r.streamed, tokens_out=r.tokens_out)
                for r in records for a in r.attempts]  # fmt: skip
    return [request_row(r) for r in records], attempts


def build_log(path: Path, n: int) -> float:
    """The throwaway log at `path`; seconds it took."""
    start = time.perf_counter()
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(sql_migrations())
        batch: list[RequestRecord] = []
        for record in requests(n):
            batch.append(record)
            if len(batch) == 50_000:
                _insert(db, batch)
                batch = []
        _insert(db, batch)
    return time.perf_counter() - start


def _insert(db: sqlite3.Connection, batch: list[RequestRecord]) -> None:
    request_rows, attempt_rows = rows(batch)
    db.execute("BEGIN")
    for sql, params in multi_row(_INSERT_REQUESTS, request_rows):
        db.execute(sql, params)
    for sql, params in multi_row(_INSERT_ATTEMPTS, attempt_rows):
        db.execute(sql, params)
    db.execute("COMMIT")


async def time_ranges(
    path: Path, runs: int, helpers: int, *, warm: bool = True
) -> list[tuple[str, int, list[float], float]]:
    """Per range: (name, requests in it, seconds per run, longest loop gap in seconds), on one
    read-only connection and `helpers` more."""
    results = []
    async with contextlib.AsyncExitStack() as stack:
        db, *more = [await connect_read_only(path) for _ in range(1 + helpers)]
        for connection in (db, *more):
            stack.push_async_callback(connection.close)
        for name in RANGES:
            if warm:  # the OS page cache
                await analytics(db, range_name=name, now=NOW, helpers=more)
            times: list[float] = []
            gaps: list[float] = []
            found = 0
            for _ in range(runs):
                stop = asyncio.Event()
                ticker = spawn(_ticker(stop, gaps), name="bench-ticker")
                await asyncio.sleep(0.01)
                t0 = time.perf_counter()
                result = await analytics(db, range_name=name, now=NOW, helpers=more)
                times.append(time.perf_counter() - t0)
                stop.set()
                await ticker
                found = result.requests
            results.append((name, found, times, max(gaps)))
    return results


async def _ticker(stop: asyncio.Event, gaps: list[float]) -> None:
    last = time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(0.005)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now


async def time_reloads(path: Path, runs: int) -> list[tuple[str, list[float]]]:
    """Seconds per run of what start-up reads from the log (`proxy/app.py`): the posteriors'
    week (`load_buckets`) and each model's newest streamed successes (`load_timer_history`)."""
    book = PosteriorBook()
    db = await connect_read_only(path)
    try:
        out: list[tuple[str, list[float]]] = [("posteriors' week", []), ("timers' history", [])]
        for _ in range(runs + 1):  # the first warms the OS page cache
            start = time.perf_counter()
            await load_buckets(db, now=NOW, window_s=book.window_s, bucket_s=book.bucket_s)
            middle = time.perf_counter()
            await load_timer_history(db, LearnedTimers())
            end = time.perf_counter()
            out[0][1].append(middle - start)
            out[1][1].append(end - middle)
        return [(name, times[1:]) for name, times in out]
    finally:
        await db.close()


def without_indexes(path: Path) -> list[tuple[str, float]]:
    """One run per range with migration 10's indexes dropped; they are made again after."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        for index in ANALYTICS_INDEXES:
            db.execute(f"DROP INDEX {index}")
    try:
        timed = asyncio.run(time_ranges(path, 1, 0, warm=False))
        return [(name, times[0]) for name, _, times, _ in timed]
    finally:
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.executescript(ANALYTICS_MIGRATION)


def time_writes(n: int) -> list[tuple[str, float, float]]:
    """Microseconds per request written as the log writer does, over all `n` and over the last
    tenth (the cost once the log holds that many): with the schema, without migration 10, and
    with the random ids of before."""
    results = []
    shapes = (
        ("the schema", (), False),
        ("without migration 10", ANALYTICS_INDEXES, False),
        ("random ids (before 2026-12-03)", (), True),
    )
    for label, dropped, random_ids in shapes:
        records = list(requests(n, seed=11, random_ids=random_ids))
        with tempfile.TemporaryDirectory() as tmp:
            with contextlib.closing(sqlite3.connect(Path(tmp) / "w.db")) as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript(sql_migrations())
                for index in dropped:
                    db.execute(f"DROP INDEX {index}")
                spent = []
                for i in range(0, len(records), 500):
                    start = time.perf_counter()
                    _insert(db, records[i : i + 500])
                    spent.append(time.perf_counter() - start)
                tail = spent[-max(1, len(spent) // 10) :]
                results.append((label, sum(spent) / n * 1e6, sum(tail) / (len(tail) * 500) * 1e6))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--db", type=Path, help="keep the log here (reused if it exists)")
    parser.add_argument("--writes", type=int, default=200_000)
    parser.add_argument("--compare", action="store_true", help="also without migration 10")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "bench.db"
        if not path.exists():
            built = build_log(path, args.requests)
            size = path.stat().st_size >> 20
            print(f"built {args.requests:,} requests in {built:.0f} s ({size} MB)")
        ok = True
        for helpers, label in ((1, "two connections, as `read_analytics` reads (the target)"),
                               (0, "one connection: `analytics(db)` alone")):  # fmt: skip
            print(f"\n{label}:\n")
            print("| range | requests in it | median | max | longest loop gap | target |")
            print("|---|---:|---:|---:|---:|---|")
            for name, found, times, gap in asyncio.run(time_ranges(path, args.runs, helpers)):
                passed = max(times) < 1.0 and gap < 0.05
                ok = ok and (passed or not helpers)
                verdict = ("pass" if passed else "FAIL") if helpers else "-"
                median, worst = statistics.median(times) * 1e3, max(times) * 1e3
                print(f"| {name} | {found:,} | {median:.0f} ms | {worst:.0f} ms"
                      f" | {gap * 1e3:.1f} ms | {verdict} |")  # fmt: skip
        print("\nwhat start-up reads from it (one connection):\n")
        print("| read | median | max | target |\n|---|---:|---:|---|")
        for name, times in asyncio.run(time_reloads(path, args.runs)):
            passed = max(times) < RELOAD_TARGET_S
            ok = ok and passed
            verdict = f"{'pass' if passed else 'FAIL'} (< {RELOAD_TARGET_S * 1e3:.0f} ms)"
            median, worst = statistics.median(times) * 1e3, max(times) * 1e3
            print(f"| {name} | {median:.0f} ms | {worst:.0f} ms | {verdict} |")
        if args.compare:
            print("\nwithout migration 10's indexes, one connection, one run:\n")
            print("| range | time |\n|---|---:|")
            for name, seconds in without_indexes(path):
                print(f"| {name} | {seconds * 1e3:,.0f} ms |")
    if args.writes:
        print(f"\n| writing {args.writes:,} requests | µs per request | the last tenth |")
        print("|---|---:|---:|")
        for label, us, last in time_writes(args.writes):
            print(f"| {label} | {us:.1f} | {last:.1f} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
