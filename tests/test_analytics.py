"""The analytics over the request log (issue 14), on real SQLite files written by the real writer:
exact figures of a known log, the edges of every range, agreement with a count done by hand."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import closing
from pathlib import Path

import aiosqlite
import pytest

from scripts.bench_stats import NOW as BENCH_NOW
from scripts.bench_stats import build_log, requests
from tui_gateway.domain.errors import CATEGORIES, NOT_UPSTREAM, ErrorKind
from tui_gateway.domain.records import AttemptRecord, RequestRecord
from tui_gateway.store import analytics as analytics_module
from tui_gateway.store.analytics import RANGES, Analytics, Point, analytics, read_analytics
from tui_gateway.store.log import RequestLog

NOW = 1_800_000_000.0
T0 = NOW - 1800  # the known log's requests start here, one a second, all in the last hour

Attempt = tuple[str, str | None] | tuple[str, str | None, int]
"""(model, error kind[, text_from]): one attempt, its provider the model's prefix."""


def request(
    n: int,
    model: str | None,
    *,
    latency: float = 100.0,
    error: str | None = None,
    streamed: bool = False,
    ttfb: float | None = None,
    tokens: tuple[int | None, int | None] = (None, None),
    attempts: Sequence[Attempt] | None = None,
    started: float | None = None,
) -> RequestRecord:
    """A logged request; by default one attempt, on its own model, ending as it did."""
    at = T0 + n if started is None else started
    if attempts is None:
        attempts = [] if model is None else [(model, error)]
    records = tuple(
        AttemptRecord(k, m.split("/")[0], m, at + 0.01 * (k - 1), 10.0, error_kind=kind,
                      text_from=rest[0] if rest else None)
        for k, (m, kind, *rest) in enumerate(attempts, start=1)
    )  # fmt: skip
    return RequestRecord(
        id=f"r{n}-{at}", started=at, session="s", requested_model="auto", streamed=streamed,
        status=200 if error is None else 502, latency_ms=latency,
        provider=None if model is None else model.split("/")[0], model=model, error_kind=error,
        ttfb_ms=ttfb, tokens_in=tokens[0], tokens_out=tokens[1], attempts=records,
    )  # fmt: skip


A, B, C = "p1/a", "p1/b", "p2/c"
A_TTFB = [60.0, 20.5, 30.9, 40.0, 50.0, 60.0]
"""The first six of `A`'s successes stream; the first of those is a burst (100.9 - 60 < 50 ms)."""
A_ATTEMPTS: list[list[Attempt]] = [
    [(C, "rate_limited"), (A, None)],
    [(C, "quota"), (A, None)],
    [(B, "stall"), (A, None, 120)],
    [(B, "5xx"), (C, "key_rejected"), (A, None)],
    [(A, None), (C, "hedged")],
    [(C, "truncated"), (A, None, 300)],
    [(C, "wrapped"), (C, "connection"), (C, "timeout"), (C, "client_error"), (A, None)],
    [(C, "shutdown"), (C, "skipped"), (C, "teapot"), (A, None)],
    [(A, None)],
    [(A, None)],
]


def known_log() -> list[RequestRecord]:
    """18 requests in the hour before `NOW` (14 succeeded), and one two hours before it."""
    rows = [
        request(i, A, latency=100 * (i + 1) + 0.9, streamed=i < 6,
                ttfb=A_TTFB[i] if i < 6 else 100 * (i + 1) + 0.9, tokens=(100, 10),
                attempts=A_ATTEMPTS[i])
        for i in range(10)
    ]  # fmt: skip
    rows += [request(10 + i, A, latency=50.0, error="5xx", tokens=(7, None)) for i in range(2)]
    rows += [
        request(12, B, latency=5000.0, attempts=[(A, "unaligned"), (B, None)]),
        request(13, B, latency=5000.5, attempts=[(A, "client_closed"), (B, None)]),
        request(14, B, latency=7000.2),
        request(15, C, latency=42.5, streamed=True, ttfb=12.3, tokens=(5, 3),
                attempts=[(C, "outrun"), (C, None)]),
        request(16, None, error="invalid_request"),
        request(17, None, error="no_candidate"),
        request(18, C, error="5xx", started=NOW - 7200),
    ]  # fmt: skip
    return rows


async def write_log(path: Path, rows: Iterable[RequestRecord]) -> None:
    """Through the gateway's own writer, on a schema its migrations made."""
    log = RequestLog(path)
    await log.open()
    for row in rows:
        log.append(row)
    assert await log.close() == 0


async def figures(path: Path, range_name: str, now: float = NOW) -> Analytics:
    return await read_analytics(path, range_name, now=now)


A_STREAMING_MS = 100.9 + (200.9 - 20.5) + (300.9 - 30.9) + (400.9 - 40) + (500.9 - 50)
A_STREAMING_MS += (600.9 - 60) + 700.9 + 800.9 + 900.9 + 1000.9
"""`A`'s streaming time: latency minus TTFB when streamed, the whole latency for the burst and
for the replies that were not streamed."""


async def test_a_known_logs_figures_are_exact(tmp_path: Path) -> None:
    await write_log(tmp_path / "log.db", known_log())
    got = await figures(tmp_path / "log.db", "1h")

    assert (got.range, got.since, got.until, got.bucket_s) == ("1h", NOW - 3600, NOW, 60.0)
    assert (got.requests, got.succeeded, got.failed) == (18, 14, 4)
    assert (got.fallbacks, got.continuations) == (11, 2)
    assert len(got.series) == 60 and got.series[0].start == NOW - 3600
    assert [(p.requests, p.succeeded, p.failed) for p in got.series if p.requests] == [(18, 14, 4)]
    assert got.series[30].start == T0 and got.series[30].requests == 18

    a, b, none, c = got.models
    assert (a.provider, a.model, a.requests, a.succeeded) == ("p1", A, 12, 10)
    assert a.success_rate == pytest.approx(10 / 12)
    assert (a.latency_p50_ms, a.latency_p95_ms, a.ttfb_p50_ms) == (500, 1000, 40)
    assert (a.tokens_in, a.tokens_out) == (10 * 100 + 2 * 7, 100)
    assert a.tokens_per_s == pytest.approx(100 * 1000 / A_STREAMING_MS)
    assert (b.model, b.requests, b.succeeded, b.success_rate) == (B, 3, 3, 1.0)
    assert (b.latency_p50_ms, b.latency_p95_ms, b.ttfb_p50_ms) == (5000, 7000, None)
    assert (b.tokens_in, b.tokens_out, b.tokens_per_s) == (0, 0, None)
    assert (none.provider, none.model, none.requests, none.succeeded) == (None, None, 2, 0)
    assert (none.success_rate, none.latency_p50_ms, none.tokens_per_s) == (0.0, None, None)
    assert (c.model, c.requests, c.latency_p50_ms, c.latency_p95_ms, c.ttfb_p50_ms) == (
        C, 1, 42, 42, 12,
    )  # fmt: skip
    assert c.tokens_per_s == pytest.approx(3 * 1000 / 42.5)  # 30.2 ms after the first byte: a burst

    p1, nobody, p2 = got.providers
    assert (p1.provider, p1.model, p1.requests, p1.succeeded) == ("p1", None, 15, 13)
    # 100, 200 ... 1000 from a, then 5000, 5000, 7000 from b: the 7th and the 13th of 13
    assert (p1.latency_p50_ms, p1.latency_p95_ms, p1.ttfb_p50_ms) == (700, 7000, 40)
    assert (p1.tokens_in, p1.tokens_out) == (1014, 100)
    assert p1.tokens_per_s == pytest.approx(a.tokens_per_s)
    assert (nobody.provider, nobody.requests) == (None, 2)
    assert (p2.provider, p2.requests, p2.latency_p50_ms) == ("p2", 1, 42)

    counts = {e.provider: (e.counts, e.total) for e in got.errors}
    zero = dict.fromkeys(CATEGORIES, 0)
    assert [e.provider for e in got.errors] == ["p2", "p1"]
    assert counts["p1"] == ({**zero, "server": 3, "timeout": 1, "cut": 1, "client": 1}, 6)
    assert counts["p2"] == (
        {**zero, "rate_limited": 2, "auth": 1, "timeout": 2, "server": 1, "wrapped": 1,
         "cut": 1, "client": 1},
        9,
    )  # fmt: skip


async def test_a_longer_range_takes_the_older_request_and_its_attempt_too(tmp_path: Path) -> None:
    await write_log(tmp_path / "log.db", known_log())
    day = await figures(tmp_path / "log.db", "24h")
    assert (day.requests, day.failed, day.bucket_s, len(day.series)) == (19, 5, 900.0, 96)
    assert [e.total for e in day.errors if e.provider == "p2"] == [10]
    assert [u.requests for u in day.models if u.model == C] == [2]


@pytest.mark.parametrize("range_name", list(RANGES))
async def test_a_row_at_since_is_in_and_one_at_until_or_a_second_before_since_is_not(
    tmp_path: Path, range_name: str
) -> None:
    since, until = NOW - RANGES[range_name], NOW
    rows = [
        request(1, A, started=since, attempts=[(A, "5xx"), (B, None)]),
        request(2, A, started=since - 1, attempts=[(A, "5xx"), (B, None)]),
        request(3, A, started=until, attempts=[(A, "5xx"), (B, None)]),
        request(4, A, started=until - 0.001),
        # Out by its start; its second attempt, started at `since`, is in (attempts go by theirs).
        request(5, A, started=since - 0.01, attempts=[(A, "wrapped"), (B, None)]),
    ]
    await write_log(tmp_path / "log.db", rows)
    got = await figures(tmp_path / "log.db", range_name)
    assert (got.since, got.until, got.requests) == (since, until, 2)
    assert got.series[0].requests == 1 and got.series[-1].requests == 1
    assert sum(p.requests for p in got.series) == 2
    assert len(got.series) * got.bucket_s == RANGES[range_name]
    assert 24 <= len(got.series) <= 96
    assert got.fallbacks == 2  # request 1's second attempt, and request 5's
    assert [(e.provider, e.counts["server"], e.total) for e in got.errors] == [("p1", 1, 1)]


def nearest_rank(values: Iterable[float], p: int) -> int | None:
    ordered = sorted(math.floor(v) for v in values)
    return ordered[max(1, math.ceil(p * len(ordered) / 100)) - 1] if ordered else None


async def test_the_figures_agree_with_a_count_of_the_rows_on_one_connection_or_three(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The benchmark's log, small: every range, counted again in Python from what was written;
    and the same split in time over three connections (however few the requests)."""
    monkeypatch.setattr(analytics_module, "SPLIT_FROM", 0)
    path = tmp_path / "bench.db"
    build_log(path, 3000)
    rows = list(requests(3000))
    async with aiosqlite.connect(path) as db, aiosqlite.connect(path) as two:
        async with aiosqlite.connect(path) as three:
            for range_name, span in RANGES.items():
                alone = await analytics(db, range_name=range_name, now=BENCH_NOW)
                split = await analytics(db, range_name=range_name, now=BENCH_NOW,
                                        helpers=[two, three])  # fmt: skip
                assert split == alone
                expect_the_figures_of(alone, rows, BENCH_NOW - span)


def test_a_range_is_cut_at_bucket_starts_into_parts_of_about_as_many_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    series = [Point(10.0 * i, n, n, 0) for i, n in enumerate([30, 10, 10, 30, 20])]
    split = analytics_module._split
    assert split(series, 0.0, 50.0, 2) == [(0.0, 50.0)]  # too few requests to be worth a thread
    monkeypatch.setattr(analytics_module, "SPLIT_FROM", 0)
    assert split(series, 0.0, 50.0, 2) == [(0.0, 30.0), (30.0, 50.0)]  # 50 and 50
    assert split(series, 0.0, 50.0, 3) == [(0.0, 20.0), (20.0, 40.0), (40.0, 50.0)]  # 40, 40, 20
    assert split(series, 0.0, 50.0, 1) == [(0.0, 50.0)]


def expect_the_figures_of(got: Analytics, rows: list[RequestRecord], since: float) -> None:
    inside = [r for r in rows if since <= r.started < BENCH_NOW]
    assert (got.requests, got.succeeded) == (len(inside), sum(r.error_kind is None for r in inside))
    for usage in [*got.models, *got.providers]:
        mine = [r for r in inside if r.provider == usage.provider]
        mine = [r for r in mine if usage.model is None or r.model == usage.model]
        ok = [r for r in mine if r.error_kind is None]
        streamed = [r.ttfb_ms for r in ok if r.streamed and r.ttfb_ms is not None]
        assert (usage.requests, usage.succeeded) == (len(mine), len(ok))
        assert usage.latency_p50_ms == nearest_rank((r.latency_ms for r in ok), 50)
        assert usage.latency_p95_ms == nearest_rank((r.latency_ms for r in ok), 95)
        assert usage.ttfb_p50_ms == nearest_rank(streamed, 50)
        assert usage.tokens_in == sum(r.tokens_in or 0 for r in mine)
        assert usage.tokens_out == sum(r.tokens_out or 0 for r in mine)
    assert sum(u.requests for u in got.models) == got.requests
    attempts = [a for r in rows for a in r.attempts if since <= a.started < BENCH_NOW]
    assert got.fallbacks == sum(a.attempt == 2 for a in attempts)
    assert got.continuations == sum(a.text_from is not None for a in attempts)
    category = {str(k): name for name, kinds in CATEGORIES.items() for k in kinds}
    counted: dict[str, dict[str, int]] = {}
    for a in attempts:
        if a.error_kind in category:
            per = counted.setdefault(a.provider, dict.fromkeys(CATEGORIES, 0))
            per[category[a.error_kind]] += 1
    assert {e.provider: e.counts for e in got.errors} == counted


async def test_an_empty_log_has_every_bucket_and_no_rows(tmp_path: Path) -> None:
    await write_log(tmp_path / "log.db", [])
    got = await figures(tmp_path / "log.db", "7d")
    assert (got.requests, got.fallbacks, got.continuations) == (0, 0, 0)
    assert len(got.series) == 84 and not any(p.requests for p in got.series)
    assert (got.models, got.providers, got.errors) == ((), (), ())


async def test_an_unknown_range_is_a_value_error_that_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown range '2d'; expected one of 1h, 24h, 7d, 30d"):
        await read_analytics(tmp_path / "never-opened.db", "2d", now=NOW)
    async with aiosqlite.connect(":memory:") as db:
        with pytest.raises(ValueError, match="expected one of"):
            await analytics(db, range_name="week", now=NOW)


async def test_a_missing_log_is_not_created(tmp_path: Path) -> None:
    with pytest.raises(sqlite3.OperationalError, match="unable to open database file"):
        await read_analytics(tmp_path / "missing.db", "24h", now=NOW)
    assert not (tmp_path / "missing.db").exists()


def test_every_error_kind_is_in_one_category_or_said_to_be_no_upstreams() -> None:
    placed = [k for kinds in CATEGORIES.values() for k in kinds] + list(NOT_UPSTREAM)
    assert sorted(placed) == sorted(ErrorKind)
    assert list(CATEGORIES) == ["rate_limited", "auth", "timeout", "server", "wrapped", "cut",
                                "client"]  # fmt: skip


PARAMS = {"_SERIES": (0.0, 60.0, 60, 3600.0), "_GROUPS": (0.0, 1.0, 50.0),
          "_ERRORS": (0.0, 1.0), "_LATER": (0.0, 1.0)}  # fmt: skip


@pytest.mark.parametrize("query", list(PARAMS))
async def test_no_query_reads_the_tables_or_a_whole_index(tmp_path: Path, query: str) -> None:
    """Each one seeks into an index of migration 10 (or `requests_started`) that holds all it
    reads, so it costs what is in the range, not what is in the log."""
    await write_log(tmp_path / "log.db", known_log())
    with closing(sqlite3.connect(tmp_path / "log.db")) as db:
        sql = getattr(analytics_module, query)
        plan = [row[-1] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", PARAMS[query])]
    reads = [line for line in plan if " requests" in line or " attempts" in line]
    assert reads and all(line.startswith("SEARCH") for line in reads), plan
    assert all("USING COVERING INDEX" in line for line in reads), plan
