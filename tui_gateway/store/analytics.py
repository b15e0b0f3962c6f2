"""What the request log says about a recent range of time (issue 14): traffic, models, providers.

- A request is in a range by its `started`: `since <= started < until` (`until` is `now`). It
  *succeeded* if its `error_kind` is NULL, else it *failed* (refused before routing too). One with
  no model (refused, or no candidate left) counts in the totals and the series, and as a row of
  its own in `models` and `providers`, `provider` and `model` None: the rows add up to the totals.
- Rows go by the request's final model and provider (the one that answered, or the last tried).
  Latency and TTFB percentiles are over its succeeded requests, TTFB over the streamed ones (a
  reply not streamed has its first byte at its end): nearest rank, over the values floored to
  whole milliseconds, i.e. the smallest `v` with at least `ceil(p/100 * n)` of the `n` values
  `<= v`. Tokens are summed over all its requests. `tokens_per_s`: the output tokens of its
  succeeded requests that report them, over their streaming time, which is latency minus TTFB
  when streamed (unless under `MIN_GENERATING_MS`, a burst), else latency, as posteriors.py has it.
- Figures from `attempts` place an attempt by its own `started`. `errors`: failed attempts per
  provider and `CATEGORIES`; `continuations`: attempts that carried on a broken answer
  (`text_from` NOT NULL); `fallbacks`: requests that moved on to a second attempt (attempt 2: a
  fallback, a continuation or a hedge), in the range when that attempt started.

How: a few aggregate queries, in aiosqlite's thread (sqlite3 releases the GIL while a statement
steps), each over an index of migration 10 that holds what it reads in the order it reads it: no
query reads the table or sorts more than one model's rows. The cost is the per-millisecond
histograms: a sort per model. The loop gets a row per model and per bucket, the histograms as
JSON arrays the row factory decodes in the same thread; a provider's percentiles bisect its
models' histograms, with no second pass. Histograms of parts of a range merge exactly, so the
per-model query can be split in time over more connections (`helpers`) that run in parallel.
Costs and choices: docs/BENCHMARKS.md, "Analytics (issue 14)".
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import msgspec

from ..domain.errors import CATEGORIES as CATEGORIES  # the screen reads it from here
from ..domain.posteriors import MIN_GENERATING_MS
from .connection import connect

RANGES: dict[str, float] = {"1h": 3600.0, "24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0}
"""The ranges `analytics` knows, by name, in seconds."""
_BUCKETS_S = {"1h": 60.0, "24h": 900.0, "7d": 7200.0, "30d": 28800.0}
"""Each range's series step: 60 one-minute, 96 quarter-hour, 84 two-hour or 90 eight-hour points."""
SPLIT_FROM = 100_000
"""Requests in the range from which the per-model query is split over the `helpers`."""

_CATEGORY_OF = {str(kind): name for name, kinds in CATEGORIES.items() for kind in kinds}
"""Each attempt ending `errors` counts (`CATEGORIES`, domain/errors.py), to its category."""


class Point(msgspec.Struct, frozen=True):
    """One bucket of the series: the requests that started in `[start, start + bucket_s)`."""

    start: float
    requests: int
    succeeded: int
    failed: int


class Usage(msgspec.Struct, frozen=True):
    """One model's or one provider's figures over the range (see the module docstring)."""

    provider: str | None
    model: str | None
    """None in a provider's row (all its models), and in the row of requests with no model."""
    requests: int
    succeeded: int
    success_rate: float
    """`succeeded / requests`, from 0 to 1."""
    latency_p50_ms: int | None
    """None when no request succeeded (and so for the other percentiles)."""
    latency_p95_ms: int | None
    ttfb_p50_ms: int | None
    """None also when no succeeded request was streamed."""
    tokens_in: int
    tokens_out: int
    tokens_per_s: float | None
    """None when no succeeded request reported its output tokens."""


class ProviderErrors(msgspec.Struct, frozen=True):
    """One provider's failed attempts, per category of `CATEGORIES` (all of them, zeros too)."""

    provider: str
    counts: dict[str, int]
    total: int


class Analytics(msgspec.Struct, frozen=True):
    """What `analytics` returns; `msgspec.json.encode` makes it the `GET /gateway/stats` JSON."""

    range: str
    since: float
    until: float
    bucket_s: float
    requests: int
    succeeded: int
    failed: int
    fallbacks: int
    continuations: int
    series: tuple[Point, ...]
    """Every bucket of the range, oldest first, empty ones too."""
    models: tuple[Usage, ...]
    """Most requests first."""
    providers: tuple[Usage, ...]
    errors: tuple[ProviderErrors, ...]
    """The providers with at least one counted error, most errors first."""


async def analytics(
    db: aiosqlite.Connection,
    *,
    range_name: str,
    now: float,
    helpers: Sequence[aiosqlite.Connection] = (),
) -> Analytics:
    """The log's figures for the range `range_name` (a key of `RANGES`) that ends at `now`.

    Args:
        helpers: More connections to the same log: the per-model query is split in time over
            `db` and these, in parts of about as many requests that run in parallel (a core each).

    Raises:
        ValueError: `range_name` is not one of `RANGES`.
    """
    _check(range_name)
    span, step = RANGES[range_name], _BUCKETS_S[range_name]
    since, until = now - span, now
    series = await _fetch(db, _SERIES, (since, step, round(span / step), until), _point)
    connections = [db, *helpers]
    parts = _split(series, since, until, len(connections))
    *slices, errors, later = await asyncio.gather(
        *(_fetch(c, _GROUPS, (a, b, MIN_GENERATING_MS), _group) for c, (a, b) in zip(
            connections, parts, strict=False)),
        _fetch(db, _ERRORS, (since, until), None),
        _fetch(db, _LATER, (since, until), None),
    )  # fmt: skip
    by_model: dict[tuple[str | None, str | None], list[_Group]] = {}
    by_provider: dict[str | None, list[_Group]] = {}
    for group in itertools.chain.from_iterable(slices):
        if group.requests:  # not a model idle in this part
            by_model.setdefault((group.provider, group.model), []).append(group)
            by_provider.setdefault(group.provider, []).append(group)
    requests, failed = sum(p.requests for p in series), sum(p.failed for p in series)
    fallbacks, continuations = later[0]
    return Analytics(
        range=range_name, since=since, until=until, bucket_s=step, requests=requests,
        succeeded=requests - failed, failed=failed, fallbacks=fallbacks or 0,
        continuations=continuations, series=tuple(series),
        models=_busiest(_usage(p, m, gs) for (p, m), gs in by_model.items()),
        providers=_busiest(_usage(p, None, gs) for p, gs in by_provider.items()),
        errors=_errors(errors),
    )  # fmt: skip


async def read_analytics(path: Path, range_name: str, *, now: float, helpers: int = 1) -> Analytics:
    """`analytics` on connections of its own to the log at `path`, opened read-only: a month's
    aggregation never holds up the log writer's batches on the gateway's connection.

    Args:
        helpers: Connections besides the first: with one, a long range runs on two cores (one
            under `SPLIT_FROM` requests keeps to one).

    Raises:
        ValueError: `range_name` is not one of `RANGES` (before anything is opened).
        sqlite3.Error: The file is missing or not a log this version can read.
    """
    _check(range_name)
    async with contextlib.AsyncExitStack() as stack:
        db, *more = [await _opened(stack, path) for _ in range(1 + helpers)]
        return await analytics(db, range_name=range_name, now=now, helpers=more)


def _check(range_name: str) -> None:
    if range_name not in RANGES:
        raise ValueError(f"unknown range {range_name!r}; expected one of {', '.join(RANGES)}")


async def connect_read_only(path: Path) -> aiosqlite.Connection:
    """The log at `path`, opened read-only: never created, never migrated. A missing file is
    `sqlite3.OperationalError` ("unable to open database file")."""
    return await connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


async def _opened(stack: contextlib.AsyncExitStack, path: Path) -> aiosqlite.Connection:
    db = await connect_read_only(path)
    stack.push_async_callback(db.close)
    return db


# --- the queries ----------------------------------------------------------------------------


def _skip_scan(name: str, table: str, first: str, second: str, where: str = "1") -> str:
    """A CTE `name(first, second)` of every distinct non-NULL pair of an index on
    `(first, second, ...)`: each next pair is one index seek, however many rows each has."""
    return f"""
{name}_first({first}) AS (
    SELECT (SELECT MIN({first}) FROM {table} WHERE {where})
    UNION ALL
    SELECT (SELECT MIN({first}) FROM {table} t WHERE {where} AND t.{first} > f.{first})
    FROM {name}_first f WHERE f.{first} IS NOT NULL
),
{name}({first}, {second}) AS (
    SELECT {first}, (SELECT MIN({second}) FROM {table} t WHERE {where} AND t.{first} = f.{first})
    FROM {name}_first f WHERE f.{first} IS NOT NULL
    UNION ALL
    SELECT {first}, (SELECT MIN({second}) FROM {table} t
                     WHERE {where} AND t.{first} = n.{first} AND t.{second} > n.{second})
    FROM {name} n WHERE n.{second} IS NOT NULL
)"""


_SERIES = """
WITH RECURSIVE bucket(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM bucket WHERE i + 1 < ?3)
SELECT ?1 + i * ?2,
       (SELECT COUNT(*) FROM requests
        WHERE started >= ?1 + i * ?2 AND started < MIN(?1 + (i + 1) * ?2, ?4)),
       (SELECT COUNT(*) FROM requests WHERE error_kind IS NOT NULL
        AND started >= ?1 + i * ?2 AND started < MIN(?1 + (i + 1) * ?2, ?4))
FROM bucket
"""
"""Per bucket, two counts that read only an index in time order (`requests_started`, and
`requests_failed` for the few that failed). The last bucket ends at `until` exactly."""

_IN_GROUP = "provider IS g.provider AND model IS g.model AND started >= ?1 AND started < ?2"
_HISTOGRAM = f"""(
    SELECT json_array(json_group_array(ms), json_group_array(n)) FROM (
        SELECT CAST({{value}} AS INTEGER) AS ms, COUNT(*) AS n FROM requests
        WHERE {_IN_GROUP} AND error_kind IS NULL{{where}}
        GROUP BY ms ORDER BY ms))"""
_GROUPS = f"""
WITH RECURSIVE {_skip_scan("models", "requests", "provider", "model")},
g(provider, model) AS (SELECT * FROM models WHERE model IS NOT NULL UNION ALL SELECT NULL, NULL)
SELECT provider, model,
    (SELECT json_array(COUNT(*), TOTAL(tokens_in), TOTAL(tokens_out),
            TOTAL(CASE WHEN error_kind IS NULL THEN tokens_out END),
            TOTAL(CASE WHEN error_kind IS NULL AND tokens_out IS NOT NULL THEN ROUND(1000 *
                CASE WHEN streamed AND latency_ms - ttfb_ms >= ?3 THEN latency_ms - ttfb_ms
                ELSE latency_ms END) END))
     FROM requests WHERE {_IN_GROUP}),
    {_HISTOGRAM.format(value="latency_ms", where="")},
    {_HISTOGRAM.format(value="ttfb_ms", where=" AND streamed AND ttfb_ms IS NOT NULL")}
FROM g
"""
"""One row per (provider, model) ever logged, and one for the requests with neither: its sums and
its latency and TTFB histograms over `[?1, ?2)`, each read by a seek into `requests_by_model`,
which holds the columns they use in time order per model. A model idle in the range costs seeks."""

_ERRORS = f"""
WITH RECURSIVE {_skip_scan("kinds", "attempts", "provider", "error_kind", "error_kind IS NOT NULL")}
SELECT provider, error_kind,
       (SELECT COUNT(*) FROM attempts a WHERE a.provider = k.provider
        AND a.error_kind = k.error_kind AND a.started >= ?1 AND a.started < ?2)
FROM kinds k WHERE error_kind IS NOT NULL
"""
"""Failed attempts per provider and kind, counted in `attempts_errors`, which holds them alone."""

_LATER = """
SELECT SUM(attempt = 2), COUNT(text_from) FROM attempts
WHERE attempt > 1 AND started >= ?1 AND started < ?2
"""
"""Fallbacks and continuations, from `attempts_later`: a continuation is never a first attempt."""


# --- rows to figures ------------------------------------------------------------------------


class _Histogram:
    """Counts per whole millisecond, ascending, with their running totals."""

    __slots__ = ("values", "running")

    def __init__(self, values: list[int], counts: list[int]) -> None:
        if values != sorted(values):  # SQL gives them in order; this is a guard, O(n) if so
            pairs = sorted(zip(values, counts, strict=True))
            values, counts = [v for v, _ in pairs], [n for _, n in pairs]
        self.values = values
        self.running = list(itertools.accumulate(counts))

    @property
    def total(self) -> int:
        return self.running[-1] if self.running else 0

    def at_most(self, value: int) -> int:
        """How many values are `<= value`."""
        i = bisect.bisect_right(self.values, value)
        return self.running[i - 1] if i else 0


def _percentile(histograms: Sequence[_Histogram], p: int) -> int | None:
    """The nearest-rank `p`th percentile of the histograms together (None if they are empty): a
    bisection for the smallest value with at least `ceil(p/100 * n)` values at or below it."""
    filled = [h for h in histograms if h.total]
    if not filled:
        return None
    rank = max(1, -(-sum(h.total for h in filled) * p // 100))
    low, high = min(h.values[0] for h in filled), max(h.values[-1] for h in filled)
    while low < high:
        middle = (low + high) // 2
        if sum(h.at_most(middle) for h in filled) >= rank:
            high = middle
        else:
            low = middle + 1
    return low


@dataclass(frozen=True, slots=True)
class _Group:
    """One (provider, model)'s sums and histograms over a part of the range."""

    provider: str | None
    model: str | None
    requests: int
    tokens_in: float
    tokens_out: float
    timed_tokens: float  # output tokens of the succeeded requests that report them,
    timed_us: float  # and the time they streamed in: whole µs, so sums of parts are exact
    latency: _Histogram
    ttfb: _Histogram


_SUMS = msgspec.json.Decoder(tuple[int, float, float, float, float])
_ARRAYS = msgspec.json.Decoder(tuple[list[int], list[int]])


def _group(_cursor: object, row: tuple[Any, ...]) -> _Group:
    """A cursor row factory: it runs in aiosqlite's thread, where the JSON is decoded too."""
    provider, model, sums, latency, ttfb = row
    return _Group(
        provider, model, *_SUMS.decode(sums),
        latency=_Histogram(*_ARRAYS.decode(latency)), ttfb=_Histogram(*_ARRAYS.decode(ttfb)),
    )  # fmt: skip


def _point(_cursor: object, row: tuple[Any, ...]) -> Point:
    start, requests, failed = row
    return Point(start, requests, requests - failed, failed)


def _split(
    series: Sequence[Point], since: float, until: float, n: int
) -> list[tuple[float, float]]:
    """`[since, until)` in at most `n` parts of about as many requests, cut at bucket starts;
    in one below `SPLIT_FROM` requests, where another thread costs more than it saves."""
    total = sum(p.requests for p in series)
    n = n if total >= SPLIT_FROM else 1
    cuts, seen = [since], 0
    for point in series:
        if len(cuts) < n and point.start > cuts[-1] and seen * n >= total * len(cuts):
            cuts.append(point.start)
        seen += point.requests
    return list(itertools.pairwise([*cuts, until]))


def _usage(provider: str | None, model: str | None, groups: Sequence[_Group]) -> Usage:
    requests, latency = sum(g.requests for g in groups), [g.latency for g in groups]
    succeeded, timed_us = sum(h.total for h in latency), sum(g.timed_us for g in groups)
    speed = sum(g.timed_tokens for g in groups) * 1e6 / timed_us if timed_us > 0 else None
    return Usage(
        provider=provider, model=model, requests=requests, succeeded=succeeded,
        success_rate=succeeded / requests, latency_p50_ms=_percentile(latency, 50),
        latency_p95_ms=_percentile(latency, 95),
        ttfb_p50_ms=_percentile([g.ttfb for g in groups], 50),
        tokens_in=round(sum(g.tokens_in for g in groups)),
        tokens_out=round(sum(g.tokens_out for g in groups)), tokens_per_s=speed,
    )  # fmt: skip


def _busiest(rows: Iterable[Usage]) -> tuple[Usage, ...]:
    return tuple(sorted(rows, key=lambda u: (-u.requests, u.provider or "", u.model or "")))


def _errors(rows: Iterable[Any]) -> tuple[ProviderErrors, ...]:
    """Per provider, the `_ERRORS` counts summed by category."""
    counts: dict[str, dict[str, int]] = {}
    for provider, kind, n in rows:
        category = _CATEGORY_OF.get(kind)
        if category is not None and n:
            counts.setdefault(provider, dict.fromkeys(CATEGORIES, 0))[category] += n
    found = [ProviderErrors(p, c, sum(c.values())) for p, c in counts.items()]
    return tuple(sorted(found, key=lambda e: (-e.total, e.provider)))


async def _fetch(
    db: aiosqlite.Connection, sql: str, params: Sequence[object], factory: Any
) -> list[Any]:
    async with db.execute(sql, params) as cursor:
        cursor.row_factory = factory  # built in aiosqlite's thread; the connection's is left
        return list(await cursor.fetchall())
