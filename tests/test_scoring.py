"""The routing score: each term, the pool weights, and what they do under Thompson sampling (issue 3)."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tui_gateway.domain.posteriors import Outcome, Posterior, PosteriorBook
from tui_gateway.domain.scoring import MODE_WEIGHTS, ScoreTerms, score

NOW = 1_750_000_000.0


def posterior(*, ttfb_ms: float | None = None, tokens_per_s: float | None = None) -> Posterior:
    return Posterior("p/m", 10.0, 4.0, 8.0, 2.0, 8, 2, ttfb_ms, tokens_per_s, True)


def test_each_term_is_its_weight_times_a_normalized_value() -> None:
    w = MODE_WEIGHTS["balanced"]
    terms = score(
        posterior(ttfb_ms=1000.0, tokens_per_s=50.0),
        sample=0.7,
        intelligence=7,
        position=1,
        chain_length=3,
        pool="balanced",
    )
    assert terms.sample == 0.7
    assert terms.speed == pytest.approx(w.speed * 0.5)  # 50 tok/s is the half-way point
    assert terms.latency == pytest.approx(w.latency * 0.5)  # 1 s to first byte
    assert terms.intelligence == pytest.approx(w.intelligence * 0.7)
    assert terms.position == pytest.approx(w.position * 0.5)  # middle of three
    assert terms.total == pytest.approx(
        0.7 + terms.speed + terms.latency + terms.intelligence + terms.position
    )


def test_unknown_speed_and_latency_count_as_neutral() -> None:
    w = MODE_WEIGHTS["fast"]
    terms = score(posterior(), sample=0.5, intelligence=5, position=0, chain_length=4, pool="fast")
    assert (terms.speed, terms.latency) == pytest.approx((w.speed * 0.5, w.latency * 0.5))


def test_position_runs_from_head_to_tail_and_a_lone_model_is_the_head() -> None:
    def position_term(position: int, chain_length: int) -> float:
        return score(
            posterior(),
            sample=0.5,
            intelligence=5,
            position=position,
            chain_length=chain_length,
            pool="smart",
        ).position

    w = MODE_WEIGHTS["smart"].position
    assert [position_term(i, 4) for i in range(4)] == pytest.approx([w, w * 2 / 3, w / 3, 0.0])
    assert position_term(0, 1) == w


def test_pools_lean_where_their_names_say() -> None:
    balanced, fast, smart = MODE_WEIGHTS["balanced"], MODE_WEIGHTS["fast"], MODE_WEIGHTS["smart"]
    assert min(balanced.speed, balanced.latency) > balanced.intelligence
    assert fast.latency == max(fast.speed, fast.latency, fast.intelligence)
    assert smart.intelligence == max(smart.speed, smart.latency, smart.intelligence)
    assert fast.latency > balanced.latency and smart.intelligence > balanced.intelligence
    for w in MODE_WEIGHTS.values():  # the sample stays the backbone (module docstring)
        assert w.speed + w.latency + w.intelligence + w.position <= 0.45 + 1e-12


def test_bad_arguments_are_refused_with_a_reason() -> None:
    p = posterior()
    with pytest.raises(ValueError, match="unknown pool"):
        score(p, sample=0.5, intelligence=5, position=0, chain_length=1, pool="auto")
    with pytest.raises(ValueError, match="intelligence"):
        score(p, sample=0.5, intelligence=11, position=0, chain_length=1, pool="fast")
    with pytest.raises(ValueError, match="outside a chain"):
        score(p, sample=0.5, intelligence=5, position=3, chain_length=3, pool="fast")


def test_as_json_lists_every_term_and_the_total() -> None:
    terms = ScoreTerms(0.5, 0.1, 0.05, 0.02, 0.15)
    data = terms.as_json()
    assert data == {
        "total": pytest.approx(0.82),
        "sample": 0.5,
        "speed": 0.1,
        "latency": 0.05,
        "intelligence": 0.02,
        "position": 0.15,
    }


@given(
    ttfb=st.none() | st.floats(0.0, 1e7),
    tps=st.none() | st.floats(0.0, 1e6),
    intelligence=st.integers(1, 10),
    chain=st.integers(1, 50).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))),
    pool=st.sampled_from(sorted(MODE_WEIGHTS)),
)
def test_every_term_stays_between_zero_and_its_weight(
    ttfb: float | None, tps: float | None, intelligence: int, chain: tuple[int, int], pool: str
) -> None:
    n, position = chain
    terms = score(
        posterior(ttfb_ms=ttfb, tokens_per_s=tps),
        sample=0.5,
        intelligence=intelligence,
        position=position,
        chain_length=n,
        pool=pool,
    )
    w = MODE_WEIGHTS[pool]
    for value, limit in (
        (terms.speed, w.speed),
        (terms.latency, w.latency),
        (terms.intelligence, w.intelligence),
        (terms.position, w.position),
    ):
        assert 0.0 <= value <= limit + 1e-12


# --- under Thompson sampling -------------------------------------------------------------


def book_with(records: dict[str, tuple[int, int]]) -> PosteriorBook:
    book = PosteriorBook()
    book.refresh(NOW)
    for key, (successes, failures) in records.items():
        for i in range(successes + failures):
            book.record(Outcome(key, NOW, i < successes))
    return book


def first_picks(book: PosteriorBook, chain: list[str], draws: int, seed: int) -> Counter[str]:
    rng = random.Random(seed)
    wins: Counter[str] = Counter()
    for _ in range(draws):
        totals = {
            key: score(
                book.posterior(key),
                sample=book.sample(key, rng),
                intelligence=5,
                position=i,
                chain_length=len(chain),
                pool="balanced",
            ).total
            for i, key in enumerate(chain)
        }
        wins[max(totals, key=totals.__getitem__)] += 1
    return wins


@pytest.mark.parametrize("record", [(2, 1), (8, 2)])
def test_moving_a_model_to_the_head_of_an_even_pool_raises_its_share(
    record: tuple[int, int],
) -> None:
    """Four equally healthy models: the head gets the most first picks, the tail still some."""
    book = book_with({k: record for k in ("a/1", "b/2", "c/3", "d/4")})
    before = first_picks(book, ["a/1", "b/2", "c/3", "d/4"], 4000, seed=1)
    after = first_picks(book, ["d/4", "a/1", "b/2", "c/3"], 4000, seed=2)
    assert max(before, key=before.__getitem__) == "a/1"
    assert max(after, key=after.__getitem__) == "d/4"
    assert after["d/4"] > 2.5 * before["d/4"]
    assert before["d/4"] > 0.05 * 4000  # exploration goes on while the evidence is thin


def test_a_clearly_worse_model_at_the_head_still_loses_to_a_healthy_one() -> None:
    book = book_with({"bad/1": (2, 20), "good/2": (20, 2), "good/3": (20, 2), "good/4": (20, 2)})
    two = first_picks(book, ["bad/1", "good/2"], 3000, seed=3)
    assert two["good/2"] > 0.99 * 3000
    four = first_picks(book, ["bad/1", "good/2", "good/3", "good/4"], 3000, seed=4)
    assert four["bad/1"] < 0.01 * 3000
