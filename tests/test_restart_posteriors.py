"""A restart changes no posterior: live outcomes and the log's reload come from one function.

Regression tests for issue 10: a non-streamed success fed no time to first byte live, but the
reload summed the one its log row kept, and the reload knew no speed at all; so the latency and
speed terms moved at every restart.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import pytest
from aiohttp import web

from tests.factories import API_KEY, FakeClock, make_settings, model
from tui_gateway.config import Settings
from tui_gateway.domain.errors import ErrorKind
from tui_gateway.domain.posteriors import Posterior, PosteriorBook, attempt_outcome
from tui_gateway.domain.records import AttemptRecord, RequestRecord
from tui_gateway.domain.state import GatewayState
from tui_gateway.proxy.app import make_app
from tui_gateway.store.log import RequestLog

HOUR = 3600.0
DAY = 86400.0
NOW = 486_111 * HOUR + 20 * 60  # 20 min into an hour: the window's edge splits a bucket
EDGE = NOW - 7 * DAY
MODELS = ("sim/a", "sim/b", "sim/c")
SIM = [{"name": "sim", "kind": "simulated"}]


def settings() -> Settings:
    return make_settings(providers=SIM, models=[model("sim", m.split("/")[1]) for m in MODELS])


def attempt(
    model: str,
    started: float,
    kind: str | None = None,
    *,
    n: int = 1,
    latency: float = 900.0,
    ttfb: float | None = 150.0,
) -> AttemptRecord:
    return AttemptRecord(n, "sim", model, started, latency, error_kind=kind, ttfb_ms=ttfb)


def request(
    rid: str, *attempts: AttemptRecord, streamed: bool, tokens_out: int | None = None
) -> RequestRecord:
    last = attempts[-1]
    return RequestRecord(
        id=rid, started=attempts[0].started, session="s", requested_model="auto",
        streamed=streamed, status=200 if last.error_kind is None else 502, latency_ms=1000.0,
        provider="sim", model=last.model, error_kind=last.error_kind, tokens_out=tokens_out,
        attempts=attempts,
    )  # fmt: skip


def named_cases() -> list[RequestRecord]:
    """One of each: what the reload used to get wrong, and what it must keep getting right."""
    a, b = MODELS[0], MODELS[1]
    t = NOW - 2 * HOUR
    return [
        # a non-streamed success: its ttfb is the whole answer's, not a time to first byte
        request("plain", attempt(a, t, latency=2000.0, ttfb=1990.0), streamed=False, tokens_out=80),
        # a streamed success: ttfb and speed after the first byte
        request(
            "stream", attempt(a, t + 60, latency=1200.0, ttfb=200.0), streamed=True, tokens_out=100
        ),
        # a burst: speed over the whole call
        request(
            "burst", attempt(b, t + 90, latency=500.0, ttfb=480.0), streamed=True, tokens_out=30
        ),
        # failures (with a ttfb that must not count), then a success on another model
        request(
            "fallback",
            attempt(a, t + 120, "5xx", ttfb=40.0),
            attempt(b, t + 121, "stall", n=2),
            attempt(b, t + 125, n=3),
            streamed=True,
            tokens_out=12,
        ),
        # broke off mid-answer and continued elsewhere
        request(
            "continued",
            attempt(a, t + 200, "truncated"),
            attempt(b, t + 210, n=2),
            streamed=True,
            tokens_out=40,
        ),
        # neutral endings: nothing counts, whatever their ttfb
        request(
            "neutral",
            *(
                attempt(b, t + 300 + i, k.value, n=i + 1)
                for i, k in enumerate(k for k in ErrorKind if k.neutral)
            ),
            streamed=True,
        ),
        # no tokens reported: a success without speed
        request("tokenless", attempt(b, t + 400), streamed=True),
        # the bucket the window's edge splits: both halves are in the live book
        request("edge-older", attempt(a, EDGE - 5 * 60), streamed=True, tokens_out=10),
        request("edge-newer", attempt(a, EDGE + 5 * 60), streamed=False, tokens_out=10),
        # outside the window, and in the future (clock drift)
        request("old", attempt(b, EDGE - 2 * HOUR), streamed=True, tokens_out=10),
        request("future", attempt(b, NOW + 600), streamed=True, tokens_out=10),
    ]


def random_cases(rng: random.Random, n: int) -> Iterator[RequestRecord]:
    kinds: list[str | None] = [None] * 8 + [k.value for k in ErrorKind]
    for i in range(n):
        started = NOW - rng.uniform(-HOUR, 8 * DAY)
        attempts = []
        for j in range(rng.randint(1, 3)):
            latency = round(rng.uniform(10.0, 5000.0), 2)
            ttfb = None if rng.random() < 0.2 else round(rng.uniform(0.0, latency), 2)
            kind = rng.choice(kinds) if j < 2 else None
            attempts.append(
                attempt(rng.choice(MODELS), started + j, kind, n=j + 1, latency=latency, ttfb=ttfb)
            )
            if kind is None:
                break
        tokens = rng.choice([None, 0, rng.randint(1, 4000)])
        yield request(f"r{i}", *attempts, streamed=rng.random() < 0.7, tokens_out=tokens)


def live_book(state: GatewayState, records: list[RequestRecord]) -> PosteriorBook:
    """What a running gateway learned: every attempt's outcome as it ended, then a refresh."""
    book = state.book
    for record in records:
        for a in record.attempts:
            tokens = record.tokens_out if a.error_kind is None else None  # as the relay knows it
            outcome = attempt_outcome(a, streamed=record.streamed, tokens_out=tokens)
            if outcome is not None:
                book.record(outcome)
    book.refresh(NOW)
    return book


async def write(path: Path, records: list[RequestRecord]) -> None:
    log = RequestLog(path)
    await log.open()
    for record in records:
        log.append(record)
    assert await log.close() == 0


async def restarted(path: Path) -> PosteriorBook:
    """The book of a gateway started on the log: the app's own startup (cleanup context)."""
    state = GatewayState(settings(), clock=FakeClock(NOW))
    runner = web.AppRunner(make_app(state, settings(), RequestLog(path), api_key=API_KEY))
    await runner.setup()  # opens the log and loads the posteriors, as a real start does
    try:
        return state.book
    finally:
        await runner.cleanup()


def assert_same(after: Posterior, before: Posterior) -> None:
    for field in fields(Posterior):
        got, expected = getattr(after, field.name), getattr(before, field.name)
        if isinstance(expected, float):
            assert got == pytest.approx(expected, rel=1e-9, abs=1e-12), field.name
        else:
            assert got == expected, field.name
    assert after.mean == pytest.approx(before.mean, rel=1e-9)


@pytest.mark.parametrize("seed", [None, 1, 2])
async def test_posteriors_after_a_restart_equal_those_before_it(
    tmp_path: Path, seed: int | None
) -> None:
    records = named_cases() if seed is None else list(random_cases(random.Random(seed), 400))
    before = live_book(GatewayState(settings(), clock=FakeClock(NOW)), records)
    await write(tmp_path / "log.db", records)
    after = await restarted(tmp_path / "log.db")
    assert after.models() == before.models()
    for m in MODELS:
        assert_same(after.posterior(m), before.posterior(m))


async def test_the_named_cases_exercise_what_used_to_differ(tmp_path: Path) -> None:
    """The named cases are not trivially equal: they carry speeds, and a non-streamed ttfb that
    a reload counting logged ttfbs would add to the latency term."""
    records = named_cases()
    before = live_book(GatewayState(settings(), clock=FakeClock(NOW)), records)
    a = before.posterior(MODELS[0])
    # 200 (and the edge's 150, which weighs almost nothing), never the non-streamed 1990
    assert a.ttfb_ms == pytest.approx(200.0, rel=0.001)
    assert a.tokens_per_s is not None and before.posterior(MODELS[1]).tokens_per_s is not None
    assert (a.successes, a.failures) == (4, 2)  # plain, stream, both edge halves; 5xx, truncated
    await write(tmp_path / "log.db", records)
    after = await restarted(tmp_path / "log.db")
    assert after.posterior(MODELS[0]).ttfb_ms == pytest.approx(a.ttfb_ms)
    assert (after.posterior(MODELS[0]).successes, after.posterior(MODELS[0]).failures) == (4, 2)
