"""A model's routing score: its posterior sample plus weighted, explainable preference terms.

    total = sample                                   Thompson draw from Beta(alpha, beta), in [0, 1]
          + speed        * tps / (tps + 50)          50 tok/s -> 0.5, 150 -> 0.75, 500 -> 0.91
          + latency      * 1 / (1 + ttfb_s)          ttfb 0.2 s -> 0.83, 1 s -> 0.5, 3 s -> 0.25
          + intelligence * rank / 10                 rank 1..10 from the config
          + position     * (n - 1 - i) / (n - 1)     1 at the head of the chain, 0 at its end

Unknown speed or latency (no data yet) counts as a neutral 0.5. Every term is kept, so the state
API and the TUI can say why one model ranked above another.

How big the weights are. The sample is the backbone: the terms together add at most 0.45, while a
model with 20 failures and 2 successes (Beta(4, 22), mean 0.15) trails a healthy one (Beta(22, 4),
mean 0.85) by 0.69 on average, so even with every term in its favour and none in the healthy
model's it wins about 0.2 % of draws (and 0 % at equal terms). Position weighs 0.15 in every pool;
among four equally healthy models the share of first picks from head to tail is about
41/28/19/12 % with one failure and two successes each (Beta(4, 3)), 51/28/14/6 % with about a
dozen outcomes (Beta(10, 4)) and 84/15/1/0 % with about 120 (Beta(102, 22)): the user's order
matters more as the evidence says the models are alike, and exploration never stops while it is
thin (tests/test_scoring.py checks the first two). The pool decides what else leans in:

    pool      speed  latency  intelligence  position   sum
    balanced  0.12   0.12     0.06          0.15       0.45   auto: throughput and first byte
    fast      0.05   0.25     0.00          0.15       0.45   auto-fast: time to first byte
    smart     0.03   0.03     0.24          0.15       0.45   auto-smart: the stronger model

In `smart`, rank 9 against rank 3 is worth 0.144, about the gap between success rates of 0.85 and
0.70 at equal evidence; in `fast`, a 0.3 s against a 2 s first byte is worth 0.11.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import ModelSettings
from .posteriors import Posterior, PosteriorBook


@dataclass(frozen=True, slots=True)
class Weights:
    """What each normalized term (a value in [0, 1]) is multiplied by."""

    speed: float
    latency: float
    intelligence: float
    position: float


MODE_WEIGHTS: dict[str, Weights] = {
    "balanced": Weights(speed=0.12, latency=0.12, intelligence=0.06, position=0.15),
    "fast": Weights(speed=0.05, latency=0.25, intelligence=0.0, position=0.15),
    "smart": Weights(speed=0.03, latency=0.03, intelligence=0.24, position=0.15),
}
"""Weights per pool: `balanced` (auto), `fast` (auto-fast), `smart` (auto-smart)."""

NEUTRAL = 0.5
"""Normalized speed or latency of a model with no data."""

SPEED_HALF_TPS = 50.0
"""Tokens per second at which the speed term is half its weight."""


@dataclass(frozen=True, slots=True)
class ScoreTerms:
    """One model's score for one routing decision, term by term (each already weighted)."""

    sample: float
    speed: float
    latency: float
    intelligence: float
    position: float

    @property
    def total(self) -> float:
        return self.sample + self.speed + self.latency + self.intelligence + self.position

    def as_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "sample": self.sample,
            "speed": self.speed,
            "latency": self.latency,
            "intelligence": self.intelligence,
            "position": self.position,
        }


def score(
    posterior: Posterior,
    *,
    sample: float,
    intelligence: int,
    position: int,
    chain_length: int,
    pool: str,
) -> ScoreTerms:
    """Score one candidate.

    Args:
        posterior: the model's cached posterior (for its ttfb and tokens per second).
        sample: a draw from that posterior, e.g. `PosteriorBook.sample(model, rng)`.
        intelligence: the model's rank from the config, 1 (weak) to 10 (strong).
        position: its index in the user's chain for the pool, 0 at the head.
        chain_length: how many models that chain has.
        pool: `balanced`, `fast` or `smart`: which `MODE_WEIGHTS` apply.

    Raises:
        ValueError: an unknown pool, or a rank or position out of range.
    """
    w = MODE_WEIGHTS.get(pool)
    if w is None:
        raise ValueError(f"unknown pool {pool!r}; expected one of {sorted(MODE_WEIGHTS)}")
    if not 1 <= intelligence <= 10:
        raise ValueError(f"intelligence must be 1..10, got {intelligence}")
    if not 0 <= position < chain_length:
        raise ValueError(f"position {position} is outside a chain of {chain_length}")
    tps = posterior.tokens_per_s
    speed = NEUTRAL if tps is None else max(tps, 0.0) / (max(tps, 0.0) + SPEED_HALF_TPS)
    ttfb = posterior.ttfb_ms
    latency = NEUTRAL if ttfb is None else 1.0 / (1.0 + max(ttfb, 0.0) / 1000.0)
    rest = 1.0 if chain_length == 1 else (chain_length - 1 - position) / (chain_length - 1)
    return ScoreTerms(
        sample,
        w.speed * speed,
        w.latency * latency,
        w.intelligence * intelligence / 10.0,
        w.position * rest,
    )


class ScoreBases:
    """Every model's score terms with the sample left at 0, kept until something they read changes.

    The terms other than the sample depend only on the model's posterior (speed, latency), its
    intelligence rank and its place in the chain, so they are computed once and dropped when an
    outcome is recorded for that model, when the posteriors are refreshed, or when a chain moves.
    """

    def __init__(self) -> None:
        self._bases: dict[str, ScoreTerms] = {}
        self.totals: dict[str, float] = {}
        """Model -> its score without the sample: add a draw and it is the model's score."""
        self._positions: dict[str, dict[str, int]] = {}
        self._dirty: set[str] = set()

    def for_pool(
        self,
        book: PosteriorBook,
        models: Mapping[str, ModelSettings],
        pool: str,
        chain: list[str],
    ) -> dict[str, ScoreTerms]:
        bases = self._bases
        positions = self._positions.get(pool)
        if positions is None:
            positions = self._positions[pool] = {k: i for i, k in enumerate(chain)}
            missing = [k for k in chain if k not in bases]
        else:  # only what was forgotten since: one model after each finished attempt
            missing = [k for k in self._dirty if k in positions]
        if missing:
            self._dirty.difference_update(missing)
            for key in missing:
                bases[key] = score(
                    book.posterior(key),
                    sample=0.0,
                    intelligence=models[key].intelligence,
                    position=positions[key],
                    chain_length=len(chain),
                    pool=pool,
                )
                self.totals[key] = bases[key].total
        return bases

    def forget(self, key: str | None = None) -> None:
        if key is None:
            self._bases.clear()
            self.totals.clear()
            self._positions.clear()
            self._dirty.clear()
        else:
            self._bases.pop(key, None)
            self.totals.pop(key, None)
            self._dirty.add(key)
