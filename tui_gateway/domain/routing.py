"""Which models to try for one request, in which order.

The order is: the model the client named, then the conversation's sticky model, then the rest of
the pool's chain. Left out: disabled and banned models, providers banned globally or for this
conversation, and models cooling down. With `strategy = "thompson"` the rest of the chain is
ranked by score (a posterior sample plus speed, latency, intelligence and chain-position terms,
see `scoring.py`); with `"ordered"` it keeps the user's order. The chain position is a term of
the score, so moving a model to the head of a pool raises its share of traffic without starving
the others.

Never zero candidates: when everything usable is cooling down, the model whose cooldown ends
first is tried rather than failing at once.

Cost: one decision is a draw per model plus a cached score base (see `ScoreBases`), and only the
candidates kept get a `ScoreTerms`; `scripts/bench_routing.py` times it on a 300-model pool.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, replace
from operator import add

from .catalog import Target
from .scoring import ScoreTerms
from .state import GatewayState
from .sticky import SessionEntry


@dataclass(frozen=True, slots=True)
class Candidate:
    model: str
    provider: str
    reason: str
    """named | sticky | pool | cooling (tried although cooling: nothing else was left)."""
    terms: ScoreTerms | None = None

    @property
    def preferred(self) -> bool:
        """Named by the client or sticky: worth a short wait or one retry before switching."""
        return self.reason in ("named", "sticky")


def plan_candidates(
    state: GatewayState,
    target: Target,
    *,
    session: SessionEntry | None,
    now: float,
    rng: random.Random,
    max_attempts: int,
) -> list[Candidate]:
    provider_of = state.catalog.provider_names
    usable = state.usable_models()
    banned_here = state.sessions.banned_providers(session.key, now) if session else set()
    cooling_now = state.cooling_models(now)

    def allowed(key: str) -> bool:
        return key in usable and provider_of[key] not in banned_here

    def cooling(key: str) -> bool:
        return key in cooling_now and state.available_at(key, now) > now

    plan: list[Candidate] = []
    sticky = session.model if session else None
    for key, reason in ((target.preferred, "named"), (sticky, "sticky")):
        if key is not None and allowed(key) and not cooling(key) and key not in _models(plan):
            plan.append(Candidate(key, provider_of[key], reason))

    taken = _models(plan)
    chain = state.chain(target.pool)
    rest = state.usable_chain(target.pool)
    if taken:
        rest = [k for k in rest if k not in taken]
    if banned_here:
        rest = [k for k in rest if provider_of[k] not in banned_here]
    if cooling_now:
        rest = [k for k in rest if not cooling(k)]
    room = max_attempts - len(plan)
    guard = (
        session is not None
        and session.turns == 0
        and state.routing.concurrency_guard
        and state.any_guarded_provider_busy()
    )
    if state.routing.strategy == "thompson":
        # With the concurrency guard about to reorder, rank everything; else only the best few.
        ranked = _rank(state, target.pool, chain, rest, rng, keep=None if guard else room)
    else:
        ranked = [(k, None) for k in rest]
    if guard:
        assert session is not None
        ranked = _guard_busy_providers(state, session.key, ranked)
    plan += [Candidate(k, provider_of[k], "pool", terms) for k, terms in ranked[: max(room, 0)]]

    if not plan:
        fallback = _ends_first(state, [k for k in chain if allowed(k)], now)
        if fallback is not None:
            plan.append(Candidate(fallback, provider_of[fallback], "cooling"))
    return plan[:max_attempts]


def _models(plan: list[Candidate]) -> set[str]:
    return {c.model for c in plan}


def _rank(
    state: GatewayState,
    pool: str,
    chain: list[str],
    keys: list[str],
    rng: random.Random,
    *,
    keep: int | None,
) -> list[tuple[str, ScoreTerms | None]]:
    """Keys by sampled score, best first; `keep` cuts the list (and the work) to the best few."""
    bases = state.score_bases.for_pool(state.book, state.catalog.models, pool, chain)
    base_totals = state.score_bases.totals
    samples = state.book.sample_many(keys, rng)
    totals = list(map(add, map(base_totals.__getitem__, keys), samples))
    indices: Iterable[int] = range(len(keys))
    if keep is not None and keep < len(keys):
        # The k-th best total by one C-level sort, then one pass: cheaper than a heap here.
        threshold = sorted(totals, reverse=True)[keep - 1] if keep > 0 else float("inf")
        indices = [i for i in indices if totals[i] >= threshold]
    best = sorted(indices, key=totals.__getitem__, reverse=True)[:keep]
    return [(keys[i], replace(bases[keys[i]], sample=samples[i])) for i in best]


def _guard_busy_providers(
    state: GatewayState, session: str, ranked: list[tuple[str, ScoreTerms | None]]
) -> list[tuple[str, ScoreTerms | None]]:
    """A new conversation steps around `provider-ban` providers busy with another one.

    Such a provider bans itself from a whole conversation on one failure; spreading new
    conversations elsewhere keeps one bad moment from costing several. Busy ones go last, so
    they are still tried when nothing else is left.
    """
    provider_of = state.catalog.provider_names
    protection = state.controls.protection

    def busy(key: str) -> bool:
        provider = provider_of[key]
        return protection[provider] == "provider-ban" and state.provider_busy_elsewhere(
            provider, session
        )

    free = [item for item in ranked if not busy(item[0])]
    return free + [item for item in ranked if busy(item[0])] if free else ranked


def _ends_first(state: GatewayState, keys: list[str], now: float) -> str | None:
    return min(keys, key=lambda key: state.available_at(key, now)) if keys else None
