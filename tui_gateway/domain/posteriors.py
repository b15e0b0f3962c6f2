"""Recency-weighted Beta posteriors of each model's success rate, kept in time buckets.

An outcome of age `a` seconds weighs `w(a) = max(0, min(1, 1 - a / window_s))`: linear decay over
the window (7 days by default); the clamp makes a future timestamp (clock drift) weigh 1. A model's
posterior is `Beta(max(floor, prior + Σw·success), max(floor, prior + Σw·failure))`.

Outcomes. `attempt_outcome` is the one rule for what a finished attempt teaches: the live path
records its result, and the request log stores the same result in the attempt's row for the
startup reload, so a restart leaves every posterior as it was (up to the bucketing below, which
`refresh` applies to live outcomes too).

Bucketing error. Outcomes are summed per model into buckets of `bucket_s` seconds, and `load` and
`refresh` weigh a whole bucket by the age of its midpoint. Inside the window `w` is linear with
slope `1 / window_s`, so each outcome's weight is off by at most `bucket_s / (2 * window_s)`
(1 h buckets over 7 days: 0.30 %), and by less where the clamp flattens `w` (the newest bucket,
whose midpoint may lie in the future, weighs 1 like its outcomes). A bucket is dropped once its
midpoint leaves the window, together with outcomes up to `bucket_s / 2` younger than the window's
edge, whose weights were below that same 0.30 %. `record` adds an outcome with its own exact weight
as of the last `refresh`; between refreshes nothing decays, so cached weights run high by at most
`(now - last_refresh) / window_s` (a refresh every 60 s: 0.01 %).

Sampling. `sample` draws from `Beta(alpha, beta)` with Cheng's (1978) exact rejection algorithm BB,
whose constants are computed once per cached posterior: about 0.5 µs a draw against about 1.1 µs for
`random.betavariate` (two gamma draws), which matters when a pool of 300 models is ranked per
request. It uses only `rng.random()`, so a seeded `rng` reproduces it; when `min(alpha, beta) <= 1`
(BB's domain ends there; only reachable with `prior < 1`) it falls back to `rng.betavariate`.

Shared between gateways (changes.py): each outcome recorded here is reported as a one-outcome
`BucketRow` (the shared store sums them into the same hourly buckets), `apply` adds a row
counted elsewhere, and `rows` gives every bucket to seed a fresh store.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from .beta import central_interval, cheng_draw, cheng_setup
from .changes import Change, Reporting
from .errors import ErrorKind
from .records import AttemptRecord

MIN_GENERATING_MS = 50.0
"""A success whose tokens took less than this to arrive after the first byte counts its speed over
the whole latency: the tokens came in one burst, and dividing by a few ms would be noise."""


def weight(age_s: float, window_s: float) -> float:
    """Weight of an outcome `age_s` seconds old: 1 when fresh (or future), 0 past the window."""
    return max(0.0, min(1.0, 1.0 - age_s / window_s))


class Outcome(msgspec.Struct, frozen=True):
    model: str
    """Model key, `provider/id`."""
    at: float
    """Epoch seconds when the attempt started."""
    success: bool
    ttfb_ms: float | None = None
    tokens_per_s: float | None = None
    """Output tokens per second, when known."""


def attempt_outcome(
    attempt: AttemptRecord, *, streamed: bool, tokens_out: int | None
) -> Outcome | None:
    """What one finished attempt teaches about its model: the one rule, live and after a restart.

    The state records this outcome as the attempt ends; the request log stores the same outcome
    in the attempt's row, and the startup reload sums those. So the posteriors after a restart are
    the ones before it.

    Args:
        attempt: The attempt as logged (its `started`, `latency_ms`, `ttfb_ms`, `error_kind`).
        streamed: Whether the request streamed. Only a streamed success's `ttfb_ms` feeds the
            latency term: a non-streamed reply's first byte is its whole answer.
        tokens_out: Output tokens of the request; only its success (the last attempt) uses them.

    Returns:
        A success (with time to first byte and tokens per second when known), a failure, or None
        when the ending says nothing about the model (`kind.charges` is false: neutral, or a spent
        quota). A kind this version does
        not know counts as a failure.
    """
    if attempt.error_kind is not None:
        kind = ErrorKind.parse(attempt.error_kind)
        if kind is not None and not kind.charges:
            return None
        return Outcome(attempt.model, attempt.started, False)
    latency = attempt.latency_ms
    # Speed: output tokens over the time they took to arrive after the first byte; a reply that
    # came at once (not streamed, or a burst) over the whole call.
    generating = latency - (attempt.ttfb_ms or 0.0)
    if not streamed or generating < MIN_GENERATING_MS:
        generating = latency
    speed = tokens_out * 1000 / generating if tokens_out and generating > 0 else None
    ttfb = attempt.ttfb_ms if streamed else None
    return Outcome(attempt.model, attempt.started, True, ttfb_ms=ttfb, tokens_per_s=speed)


@dataclass(frozen=True, slots=True)
class Posterior:
    model: str
    alpha: float
    """max(floor, prior + weighted_successes)"""
    beta: float
    """max(floor, prior + weighted_failures)"""
    weighted_successes: float
    weighted_failures: float
    successes: int
    """Raw count inside the window, for display."""
    failures: int
    ttfb_ms: float | None
    """Recency-weighted mean time to first byte of successes; None without data."""
    tokens_per_s: float | None
    seen: bool
    """Any outcome inside the window; False means the `unseen_prior` applies."""

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    def interval(self, mass: float = 0.9) -> tuple[float, float]:
        """Central interval holding `mass` of Beta(alpha, beta); 0.9 spans percentiles 5 to 95."""
        if not 0.0 < mass < 1.0:
            raise ValueError(f"mass must be strictly between 0 and 1, got {mass}")
        return central_interval(self.alpha, self.beta, mass)

    def as_json(self) -> dict[str, Any]:
        low, high = self.interval()
        return {
            "model": self.model,
            "alpha": self.alpha,
            "beta": self.beta,
            "mean": self.mean,
            "interval": [low, high],
            "weighted_successes": self.weighted_successes,
            "weighted_failures": self.weighted_failures,
            "successes": self.successes,
            "failures": self.failures,
            "ttfb_ms": self.ttfb_ms,
            "tokens_per_s": self.tokens_per_s,
            "seen": self.seen,
        }


@dataclass(frozen=True, slots=True)
class BucketRow:
    """One aggregate row from SQLite: a model's outcomes in one time bucket."""

    model: str
    bucket_start: float
    successes: int
    failures: int
    ttfb_sum: float
    """Sum of the successes' ttfb_ms, over `ttfb_n` of them."""
    ttfb_n: int
    tps_sum: float
    tps_n: int


class _Sums:
    """Mutable counts: one bucket's raw ones, or a model's weighted ones."""

    __slots__ = ("s", "f", "ws", "wf", "ttfb", "ttfb_w", "tps", "tps_w")

    def __init__(self) -> None:
        self.s = self.f = 0
        self.ws = self.wf = self.ttfb = self.ttfb_w = self.tps = self.tps_w = 0.0

    def add_outcome(self, o: Outcome, w: float) -> None:
        if o.success:
            self.s += 1
            self.ws += w
            if o.ttfb_ms is not None:
                self.ttfb, self.ttfb_w = self.ttfb + w * o.ttfb_ms, self.ttfb_w + w
            if o.tokens_per_s is not None:
                self.tps, self.tps_w = self.tps + w * o.tokens_per_s, self.tps_w + w
        else:
            self.f += 1
            self.wf += w

    def add_row(self, row: BucketRow) -> None:
        """Add a row's raw counts to this bucket."""
        self.s, self.f = self.s + row.successes, self.f + row.failures
        self.ttfb, self.ttfb_w = self.ttfb + row.ttfb_sum, self.ttfb_w + row.ttfb_n
        self.tps, self.tps_w = self.tps + row.tps_sum, self.tps_w + row.tps_n

    def add_bucket(self, b: _Sums, w: float) -> None:
        """Add a bucket's raw counts (`ttfb_w`/`tps_w` there are counts) with weight `w`."""
        self.s, self.f = self.s + b.s, self.f + b.f
        self.ws, self.wf = self.ws + w * b.s, self.wf + w * b.f
        self.ttfb, self.ttfb_w = self.ttfb + w * b.ttfb, self.ttfb_w + w * b.ttfb_w
        self.tps, self.tps_w = self.tps + w * b.tps, self.tps_w + w * b.tps_w


_Entry = tuple[Posterior, tuple[float, ...] | None]


class PosteriorBook(Reporting):
    """Every model's posterior, cached so `posterior` and `sample` cost one dict lookup."""

    PART = "outcome"

    def __init__(
        self,
        *,
        window_s: float = 7 * 86400,
        prior: float = 2.0,
        floor: float = 0.1,
        bucket_s: float = 3600.0,
        unseen_prior: tuple[float, float] = (3.0, 2.0),
    ) -> None:
        if window_s <= 0 or bucket_s <= 0 or floor <= 0 or prior < 0 or min(unseen_prior) <= 0:
            raise ValueError("window_s, bucket_s, floor and unseen_prior must be > 0, prior >= 0")
        self.window_s, self.prior, self.floor, self.bucket_s = window_s, prior, floor, bucket_s
        self._unseen_ab = (max(floor, unseen_prior[0]), max(floor, unseen_prior[1]))
        self._unseen_bb = cheng_setup(*self._unseen_ab)
        self._buckets: dict[str, dict[int, _Sums]] = {}
        self._sums: dict[str, _Sums] = {}
        self._cache: dict[str, _Entry] = {}
        self._draws: dict[str, tuple[float, ...] | None] = {}
        self._stale: set[str] = set()
        """Model -> Cheng constants of its posterior (a copy of `_cache[m][1]` for the hot loop)."""
        self._now: float | None = None
        """Time of the last load/refresh; None before, when every outcome weighs 1."""

    def load(self, rows: Iterable[BucketRow], now: float) -> None:
        """Replace everything with these aggregate rows, weighed as of `now`."""
        self._buckets = {}
        for row in rows:
            k = math.floor(row.bucket_start / self.bucket_s + 1e-9)
            self._buckets.setdefault(row.model, {}).setdefault(k, _Sums()).add_row(row)
        self.refresh(now)

    def record(self, outcome: Outcome) -> None:
        """Count one outcome now, with its weight as of the last refresh (1 when fresh)."""
        w = 1.0 if self._now is None else weight(self._now - outcome.at, self.window_s)
        if w <= 0.0:
            return
        k = math.floor(outcome.at / self.bucket_s)
        self._buckets.setdefault(outcome.model, {}).setdefault(k, _Sums()).add_outcome(outcome, 1.0)
        self._sums.setdefault(outcome.model, _Sums()).add_outcome(outcome, w)
        # Re-derived when next read: under load many outcomes land between two decisions.
        self._stale.add(outcome.model)
        if self.listener is not None:
            self._report(outcome.model, _one_row(outcome, k * self.bucket_s))

    def apply(self, change: Change) -> None:
        """Outcomes counted on another gateway (a row to add), weighed by their bucket's age."""
        row = BucketRow(**change.value)
        k = math.floor(row.bucket_start / self.bucket_s + 1e-9)
        mid = (k + 0.5) * self.bucket_s
        w = 1.0 if self._now is None else weight(self._now - mid, self.window_s)
        if w <= 0.0:
            return
        self._buckets.setdefault(row.model, {}).setdefault(k, _Sums()).add_row(row)
        added = _Sums()
        added.add_row(row)
        self._sums.setdefault(row.model, _Sums()).add_bucket(added, w)
        self._stale.add(row.model)

    def rows(self) -> list[BucketRow]:
        """Every bucket's raw counts, as the log's reload would give them."""
        return [
            _row(model, k * self.bucket_s, bucket)
            for model, buckets in self._buckets.items()
            for k, bucket in buckets.items()
        ]

    def _settle(self) -> None:
        for model in self._stale:
            entry = self._cache[model] = self._entry(model, self._sums[model])
            self._draws[model] = entry[1]
        self._stale.clear()

    def refresh(self, now: float) -> None:
        """Re-weigh every bucket as of `now` and drop those that left the window."""
        self._now = now
        self._sums, self._cache, self._draws = {}, {}, {}
        self._stale.clear()
        for model, buckets in list(self._buckets.items()):
            sums = _Sums()
            for k, bucket in list(buckets.items()):
                w = weight(now - (k + 0.5) * self.bucket_s, self.window_s)
                if w <= 0.0:
                    del buckets[k]
                else:
                    sums.add_bucket(bucket, w)
            if sums.s + sums.f == 0:
                del self._buckets[model]
                continue
            self._sums[model] = sums
            entry = self._cache[model] = self._entry(model, sums)
            self._draws[model] = entry[1]

    def posterior(self, model: str) -> Posterior:
        if self._stale:
            self._settle()
        entry = self._cache.get(model)
        if entry is not None:
            return entry[0]
        a, b = self._unseen_ab
        return Posterior(model, a, b, 0.0, 0.0, 0, 0, None, None, False)

    def sample(self, model: str, rng: random.Random) -> float:
        """One draw from the model's cached Beta posterior."""
        if self._stale:
            self._settle()
        entry = self._cache.get(model)
        bb = self._unseen_bb if entry is None else entry[1]
        if bb is None:
            p = self.posterior(model)
            return rng.betavariate(p.alpha, p.beta)
        return cheng_draw(bb, rng.random)

    def sample_many(self, models: Iterable[str], rng: random.Random) -> list[float]:
        """`[self.sample(m, rng) for m in models]`, the same draws, with less overhead per model."""
        # `cheng_draw` inlined: on a 300-model pool the call overhead alone is a quarter of a
        # routing decision. Same uniforms in the same order, so the same draws.
        if self._stale:
            self._settle()
        draws, unseen, uniform = self._draws.get, self._unseen_bb, rng.random
        log, exp = math.log, math.exp
        out: list[float] = []
        append = out.append
        for model in models:
            bb = draws(model, unseen)
            if bb is None:
                append(self.sample(model, rng))
                continue
            a, b, total, scale, gamma, swap = bb
            while True:
                u1 = uniform()
                u2 = uniform()
                if u1 == 0.0:
                    continue
                v = scale * log(u1 / (1.0 - u1))
                w = a * exp(v)
                z = u1 * u1 * u2
                r = gamma * v - 1.3862943611198906
                s = a + r - w
                if s + 2.6094379124341003 >= 5.0 * z:
                    break
                t = log(z) if z > 0.0 else -math.inf
                if s > t or r + total * log(total / (b + w)) >= t:
                    break
            append(b / (b + w) if swap else w / (b + w))
        return out

    def models(self) -> list[str]:
        """Models seen inside the window, sorted."""
        if self._stale:
            self._settle()
        return sorted(self._cache)

    def _entry(self, model: str, s: _Sums) -> _Entry:
        alpha = max(self.floor, self.prior + s.ws)
        beta = max(self.floor, self.prior + s.wf)
        ttfb = s.ttfb / s.ttfb_w if s.ttfb_w > 0 else None
        tps = s.tps / s.tps_w if s.tps_w > 0 else None
        posterior = Posterior(model, alpha, beta, s.ws, s.wf, s.s, s.f, ttfb, tps, True)
        return posterior, cheng_setup(alpha, beta)


def _row(model: str, bucket_start: float, b: _Sums) -> BucketRow:
    # In a bucket `ttfb_w` and `tps_w` are counts (see `_Sums.add_bucket`).
    return BucketRow(model, bucket_start, b.s, b.f, b.ttfb, int(b.ttfb_w), b.tps, int(b.tps_w))


def _one_row(o: Outcome, bucket_start: float) -> dict[str, Any]:
    """One outcome as a `BucketRow`'s fields (by hand: `asdict` costs several times more)."""
    ttfb, tps = o.ttfb_ms if o.success else None, o.tokens_per_s if o.success else None
    return {
        "model": o.model, "bucket_start": bucket_start, "successes": int(o.success),
        "failures": int(not o.success), "ttfb_sum": ttfb or 0.0, "ttfb_n": int(ttfb is not None),
        "tps_sum": tps or 0.0, "tps_n": int(tps is not None),
    }  # fmt: skip
