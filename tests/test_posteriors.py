"""Recency-weighted Beta posteriors: weights, buckets, decay, sampling and the Beta math (issue 3)."""

from __future__ import annotations

import json
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tui_gateway.domain.beta import beta_cdf, beta_ppf
from tui_gateway.domain.posteriors import (
    BucketRow,
    Outcome,
    Posterior,
    PosteriorBook,
    attempt_outcome,
    weight,
)
from tui_gateway.domain.records import AttemptRecord

HOUR = 3600.0
WEEK = 7 * 86400.0
NOW = 486_111 * HOUR  # on an hour boundary, so bucket midpoints are round numbers
M = "p/m"


def mid(hours_ago: int) -> float:
    """The midpoint of the bucket that started `hours_ago` hours before NOW."""
    return NOW - hours_ago * HOUR + HOUR / 2


def posterior(alpha: float, beta: float) -> Posterior:
    return Posterior(M, alpha, beta, 0.0, 0.0, 0, 0, None, None, True)


# --- weights -----------------------------------------------------------------------------


def test_weight_is_linear_over_the_window_and_clamped() -> None:
    assert weight(0.0, WEEK) == 1.0
    assert weight(WEEK / 2, WEEK) == 0.5
    assert weight(WEEK, WEEK) == 0.0
    assert weight(2 * WEEK, WEEK) == 0.0
    assert weight(-3600.0, WEEK) == 1.0  # a future timestamp (clock drift) weighs 1


@given(age=st.floats(-1e9, 1e9), window=st.floats(1.0, 1e8))
def test_weight_is_always_between_0_and_1(age: float, window: float) -> None:
    assert 0.0 <= weight(age, window) <= 1.0


# --- the book ----------------------------------------------------------------------------


def test_unseen_model_gets_the_optimistic_prior() -> None:
    book = PosteriorBook()
    p = book.posterior("never/seen")
    assert (p.alpha, p.beta, p.seen, p.successes, p.ttfb_ms) == (3.0, 2.0, False, 0, None)
    assert p.mean == pytest.approx(0.6)
    assert book.models() == []


def test_record_changes_the_cached_posterior_at_once_with_weight_one_when_fresh() -> None:
    book = PosteriorBook()
    book.refresh(NOW)
    book.record(Outcome(M, NOW, True, ttfb_ms=300.0))
    book.record(Outcome(M, NOW + 5, False, ttfb_ms=9000.0))  # a failure's ttfb is ignored
    p = book.posterior(M)
    assert (p.alpha, p.beta, p.successes, p.failures, p.seen) == (3.0, 3.0, 1, 1, True)
    assert p.ttfb_ms == 300.0
    assert book.models() == [M]


def test_record_weighs_an_outcome_as_of_the_last_refresh() -> None:
    book = PosteriorBook()
    book.refresh(NOW)
    book.record(Outcome(M, NOW - WEEK / 2, True))
    assert book.posterior(M).weighted_successes == pytest.approx(0.5)


def test_record_ignores_an_outcome_older_than_the_window() -> None:
    book = PosteriorBook()
    book.refresh(NOW)
    book.record(Outcome(M, NOW - WEEK - 1, False))
    assert not book.posterior(M).seen
    assert book.models() == []


def test_refresh_decays_by_bucket_midpoint_and_drops_what_left_the_window() -> None:
    book = PosteriorBook()
    book.refresh(NOW)
    book.record(Outcome(M, NOW + HOUR / 2, True))  # midpoint of the bucket starting at NOW
    book.refresh(NOW + HOUR / 2 + WEEK / 4)
    p = book.posterior(M)
    assert p.weighted_successes == pytest.approx(0.75)
    assert p.alpha == pytest.approx(2.75)
    book.refresh(NOW + HOUR / 2 + WEEK)
    assert not book.posterior(M).seen
    assert book.models() == []


def test_weighted_means_of_ttfb_and_tokens_per_second() -> None:
    book = PosteriorBook()
    book.load([], NOW)
    book.record(Outcome(M, NOW, True, ttfb_ms=100.0, tokens_per_s=80.0))  # weight 1
    book.record(Outcome(M, NOW - WEEK / 2, True, ttfb_ms=400.0))  # weight 0.5, no tps
    p = book.posterior(M)
    assert p.ttfb_ms == pytest.approx((100 + 0.5 * 400) / 1.5)
    assert p.tokens_per_s == 80.0


def test_load_replaces_everything_and_merges_rows_of_one_bucket() -> None:
    book = PosteriorBook()
    book.record(Outcome("old/model", NOW, True))
    start = NOW - 10 * HOUR
    book.load(
        [
            BucketRow(M, start, 3, 1, 600.0, 3, 0.0, 0),
            BucketRow(M, start + HOUR / 2, 1, 0, 100.0, 1, 50.0, 1),  # finer row, same bucket
            BucketRow("x/gone", NOW - WEEK - HOUR, 5, 0, 0.0, 0, 0.0, 0),  # outside the window
        ],
        NOW,
    )
    assert book.models() == [M]
    p = book.posterior(M)
    w = weight(NOW - (start + HOUR / 2), WEEK)
    assert (p.successes, p.failures) == (4, 1)
    assert p.weighted_successes == pytest.approx(4 * w)
    assert p.weighted_failures == pytest.approx(w)
    assert p.ttfb_ms == pytest.approx(700.0 / 4)
    assert p.tokens_per_s == pytest.approx(50.0)


def test_recorded_outcomes_and_loaded_rows_give_the_same_posterior() -> None:
    rng = random.Random(7)
    outcomes = [
        Outcome(M, NOW - rng.uniform(0, WEEK - HOUR), rng.random() < 0.8, ttfb_ms=500.0)
        for _ in range(300)
    ]
    live = PosteriorBook()
    for o in outcomes:
        live.record(o)
    live.refresh(NOW)
    buckets: dict[int, list[Outcome]] = {}
    for o in outcomes:
        buckets.setdefault(math.floor(o.at / HOUR), []).append(o)
    rows = []
    for k, group in buckets.items():
        ok = [o for o in group if o.success]
        rows.append(BucketRow(M, k * HOUR, len(ok), len(group) - len(ok), 500.0 * len(ok),
                              len(ok), 0.0, 0))  # fmt: skip
    loaded = PosteriorBook()
    loaded.load(rows, NOW)
    a, b = live.posterior(M), loaded.posterior(M)
    assert (a.successes, a.failures) == (b.successes, b.failures)
    assert a.alpha == pytest.approx(b.alpha)
    assert a.beta == pytest.approx(b.beta)
    assert a.ttfb_ms == pytest.approx(500.0)


@given(age=st.floats(0.0, WEEK - HOUR))
def test_bucketing_error_is_at_most_half_a_bucket_of_decay(age: float) -> None:
    book = PosteriorBook()
    book.record(Outcome(M, NOW - age, True))
    book.refresh(NOW)
    exact = weight(age, WEEK)
    assert abs(book.posterior(M).weighted_successes - exact) <= HOUR / (2 * WEEK) + 1e-12


def test_prior_below_the_floor_is_raised_to_the_floor() -> None:
    book = PosteriorBook(prior=0.0, floor=0.1)
    book.record(Outcome(M, NOW, True))
    p = book.posterior(M)
    assert (p.alpha, p.beta) == (1.0, 0.1)


def test_invalid_options_are_refused() -> None:
    with pytest.raises(ValueError):
        PosteriorBook(window_s=0)
    with pytest.raises(ValueError):
        PosteriorBook(unseen_prior=(0.0, 1.0))


outcomes_strategy = st.lists(st.tuples(st.floats(-WEEK / 10, 2 * WEEK), st.booleans()), max_size=40)


@given(outcomes=outcomes_strategy, floor=st.floats(0.01, 1.0), prior=st.floats(0.0, 5.0))
def test_alpha_and_beta_never_fall_below_the_floor(
    outcomes: list[tuple[float, bool]], floor: float, prior: float
) -> None:
    book = PosteriorBook(floor=floor, prior=prior)
    book.refresh(NOW)
    for age, success in outcomes:
        book.record(Outcome(M, NOW - age, success))
    for p in (book.posterior(M), book.posterior("unseen/x")):
        assert p.alpha >= floor and p.beta >= floor
    book.refresh(NOW + WEEK / 3)
    assert book.posterior(M).alpha >= floor and book.posterior(M).beta >= floor


@given(outcomes=outcomes_strategy, age=st.floats(-WEEK, 2 * WEEK), success=st.booleans())
def test_a_failure_never_raises_the_mean_and_a_success_never_lowers_it(
    outcomes: list[tuple[float, bool]], age: float, success: bool
) -> None:
    book = PosteriorBook()
    book.refresh(NOW)
    for a, s in outcomes:
        book.record(Outcome(M, NOW - a, s))
    if not book.posterior(M).seen:  # the unseen prior is not a seen model's starting point
        book.record(Outcome(M, NOW, True))
    before = book.posterior(M).mean
    book.record(Outcome(M, NOW - age, success))
    after = book.posterior(M).mean
    assert after >= before - 1e-12 if success else after <= before + 1e-12


def logged(
    kind: str | None = None, *, latency: float = 900.0, ttfb: float | None = 120.0
) -> AttemptRecord:
    return AttemptRecord(1, "p", M, NOW, latency, error_kind=kind, ttfb_ms=ttfb)


@pytest.mark.parametrize("streamed", [False, True])
def test_an_attempt_that_is_not_the_models_fault_teaches_nothing(streamed: bool) -> None:
    for kind in ("client_closed", "shutdown", "invalid_request", "no_candidate", "rejected",
                 "key_rejected"):  # fmt: skip
        assert attempt_outcome(logged(kind), streamed=streamed, tokens_out=50) is None


@pytest.mark.parametrize("kind", ["stall", "5xx", "wrapped", "rate_limited", "teapot"])
def test_a_failure_counts_without_latency_or_speed(kind: str) -> None:
    """Unknown kinds (a newer version's, in an old log) count as failures too."""
    outcome = attempt_outcome(logged(kind), streamed=True, tokens_out=50)
    assert outcome == Outcome(M, NOW, False)


def test_a_streamed_success_counts_its_ttfb_and_its_speed_after_the_first_byte() -> None:
    outcome = attempt_outcome(logged(latency=1120.0, ttfb=120.0), streamed=True, tokens_out=50)
    assert outcome == Outcome(M, NOW, True, ttfb_ms=120.0, tokens_per_s=50.0)  # 50 in 1 s


def test_a_non_streamed_success_counts_no_ttfb_and_its_speed_over_the_whole_call() -> None:
    """Issue 10: the reload used to count this ttfb (the whole answer's) while the live path did
    not, so the latency term moved at every restart."""
    outcome = attempt_outcome(logged(latency=2000.0, ttfb=1990.0), streamed=False, tokens_out=100)
    assert outcome == Outcome(M, NOW, True, ttfb_ms=None, tokens_per_s=50.0)


def test_a_burst_after_the_first_byte_counts_its_speed_over_the_whole_call() -> None:
    outcome = attempt_outcome(logged(latency=1000.0, ttfb=960.0), streamed=True, tokens_out=100)
    assert outcome is not None and outcome.tokens_per_s == 100.0  # not 100 / 40 ms
    outcome = attempt_outcome(logged(latency=1000.0, ttfb=950.0), streamed=True, tokens_out=100)
    assert outcome is not None and outcome.tokens_per_s == 2000.0  # 50 ms: a real stream


@pytest.mark.parametrize("tokens", [None, 0])
def test_a_success_without_tokens_or_time_has_no_speed(tokens: int | None) -> None:
    outcome = attempt_outcome(logged(), streamed=True, tokens_out=tokens)
    assert outcome == Outcome(M, NOW, True, ttfb_ms=120.0)
    zero = attempt_outcome(logged(latency=0.0, ttfb=None), streamed=False, tokens_out=10)
    assert zero == Outcome(M, NOW, True)


# --- sampling ----------------------------------------------------------------------------


def ks_distance(draws: list[float], a: float, b: float) -> float:
    draws = sorted(draws)
    n = len(draws)
    return max(
        max(abs((i + 1) / n - beta_cdf(x, a, b)), abs(i / n - beta_cdf(x, a, b)))
        for i, x in enumerate(draws)
    )


@pytest.mark.parametrize(("successes", "failures"), [(0, 0), (3, 40), (40, 3), (500, 20)])
def test_samples_follow_the_posterior_beta(successes: int, failures: int) -> None:
    book = PosteriorBook()
    for i in range(successes + failures):
        book.record(Outcome(M, NOW, i < successes))
    p = book.posterior(M)
    rng = random.Random(11)
    draws = [book.sample(M, rng) for _ in range(20_000)]
    assert ks_distance(draws, p.alpha, p.beta) < 1.63 / math.sqrt(len(draws))  # 1 % level
    assert sum(draws) / len(draws) == pytest.approx(p.mean, abs=0.005)


def test_samples_fall_back_to_betavariate_when_a_parameter_is_below_one() -> None:
    book = PosteriorBook(prior=0.3, floor=0.1)
    book.record(Outcome(M, NOW, True))  # Beta(1.3, 0.3): outside Cheng's BB
    rng = random.Random(5)
    draws = [book.sample(M, rng) for _ in range(20_000)]
    assert ks_distance(draws, 1.3, 0.3) < 1.63 / math.sqrt(len(draws))


def test_sampling_is_reproducible_and_sample_many_draws_the_same() -> None:
    book = PosteriorBook(prior=0.5)
    book.record(Outcome("a/1", NOW, True))  # Beta(1.5, 0.5): the fallback path
    for _ in range(5):
        book.record(Outcome("b/2", NOW, True))
    keys = ["a/1", "b/2", "unseen/3"] * 50
    one_by_one = [book.sample(k, random.Random(3)) for k in keys[:3]]
    assert one_by_one == [book.sample(k, random.Random(3)) for k in keys[:3]]
    rng = random.Random(9)
    expected = [book.sample(k, rng) for k in keys]
    assert book.sample_many(keys, random.Random(9)) == expected
    assert all(0.0 <= x <= 1.0 for x in expected)


# --- Beta math ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "x"), [(1, 1, 0.3), (3, 4, 0.3), (10, 2, 0.8), (50, 60, 0.45), (200, 30, 0.9)]
)
def test_beta_cdf_matches_the_binomial_tail_identity(a: int, b: int, x: float) -> None:
    n = a + b - 1  # I_x(a, b) = P(Binomial(a + b - 1, x) >= a) for whole a, b
    exact = sum(math.comb(n, j) * x**j * (1 - x) ** (n - j) for j in range(a, n + 1))
    assert beta_cdf(x, a, b) == pytest.approx(exact, rel=1e-11, abs=1e-15)


@pytest.mark.parametrize("q", [1e-6, 0.05, 0.3, 0.5, 0.95, 1 - 1e-6])
def test_beta_ppf_matches_closed_forms(q: float) -> None:
    assert beta_ppf(q, 3.0, 1.0) == pytest.approx(q ** (1 / 3), rel=1e-12)
    assert beta_ppf(q, 1.0, 2.5) == pytest.approx(1 - (1 - q) ** (1 / 2.5), rel=1e-10)
    arcsine = math.sin(math.pi * q / 2) ** 2  # Beta(1/2, 1/2)
    assert beta_ppf(q, 0.5, 0.5) == pytest.approx(arcsine, rel=1e-10)


@settings(max_examples=200)
@given(
    # The range the gateway uses: parameters start at the prior (2) and intervals are central.
    q=st.floats(1e-4, 1 - 1e-4),
    a=st.floats(0.5, 5000.0),
    b=st.floats(0.5, 5000.0),
)
def test_beta_ppf_inverts_beta_cdf(q: float, a: float, b: float) -> None:
    x = beta_ppf(q, a, b)
    assert 0.0 <= x <= 1.0
    if beta_cdf(x, a, b) != pytest.approx(q, rel=1e-8, abs=1e-12):
        # Where the CDF is steep next to 0 or 1, the answer can only be the right float:
        # q lies between the CDF two floats either side of it.
        below, above = x, x
        for _ in range(2):
            below, above = math.nextafter(below, 0.0), math.nextafter(above, 1.0)
        assert beta_cdf(below, a, b) <= q * (1 + 1e-12) <= beta_cdf(above, a, b) * (1 + 2e-12)


def test_interval_is_central_and_checked() -> None:
    assert posterior(1.0, 1.0).interval() == pytest.approx((0.05, 0.95))
    low, high = posterior(7.0, 7.0).interval(0.5)
    assert low + high == pytest.approx(1.0)
    low, high = posterior(22.0, 4.0).interval()
    assert beta_cdf(low, 22, 4) == pytest.approx(0.05)
    assert beta_cdf(high, 22, 4) == pytest.approx(0.95)
    assert low < posterior(22.0, 4.0).mean < high
    with pytest.raises(ValueError):
        posterior(2.0, 2.0).interval(1.0)


def test_as_json_explains_the_posterior() -> None:
    book = PosteriorBook()
    book.record(Outcome(M, NOW, True, ttfb_ms=250.0))
    data = book.posterior(M).as_json()
    json.dumps(data)
    assert data["alpha"] == 3.0 and data["beta"] == 2.0 and data["mean"] == pytest.approx(0.6)
    assert data["successes"] == 1 and data["weighted_successes"] == 1.0 and data["seen"] is True
    assert len(data["interval"]) == 2 and data["ttfb_ms"] == 250.0
    assert data["tokens_per_s"] is None
