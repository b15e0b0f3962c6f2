"""Which models to try for one request, in which order.

The order is: the model the client named, then the conversation's sticky model, then the rest of
the pool's chain. Left out: disabled and banned models, providers banned globally or for this
conversation, and models cooling down. With `strategy = "thompson"` the rest of the chain is
ranked by score (a posterior sample plus speed, latency, intelligence and chain-position terms);
with `"ordered"` it keeps the user's order. The chain position is a term of the score, so moving
a model to the head of a pool raises its share of traffic without starving the others.

Never zero candidates: when everything usable is cooling down, the model whose cooldown ends
first is tried rather than failing at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .catalog import Target
from .scoring import ScoreTerms, score
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
    catalog = state.catalog
    banned_here = state.sessions.banned_providers(session.key, now) if session else set()

    def allowed(key: str) -> bool:
        return state.is_usable(key) and catalog.models[key].provider not in banned_here

    def cooling(key: str) -> bool:
        model = catalog.models[key]
        keys = state.key_ids(model.provider)
        return state.cooldowns.available_at(key, keys, now) > now

    plan: list[Candidate] = []
    taken: set[str] = set()
    sticky = session.model if session else None
    for key, reason in ((target.preferred, "named"), (sticky, "sticky")):
        if key is not None and key not in taken and allowed(key) and not cooling(key):
            plan.append(Candidate(key, catalog.models[key].provider, reason))
            taken.add(key)

    chain = state.chain(target.pool)
    rest = [k for k in chain if k not in taken and allowed(k) and not cooling(k)]
    if state.routing.strategy == "thompson":
        ranked = _rank(state, target.pool, chain, rest, rng)
    else:
        ranked = [(k, None) for k in rest]
    if session is not None and session.turns == 0 and state.routing.concurrency_guard:
        ranked = _guard_busy_providers(state, session.key, ranked)
    plan += [Candidate(k, catalog.models[k].provider, "pool", terms) for k, terms in ranked]

    if not plan:
        fallback = _ends_first(state, [k for k in chain if allowed(k)], now)
        if fallback is not None:
            plan.append(Candidate(fallback, catalog.models[fallback].provider, "cooling"))
    return plan[:max_attempts]


def _rank(
    state: GatewayState, pool: str, chain: list[str], keys: list[str], rng: random.Random
) -> list[tuple[str, ScoreTerms | None]]:
    scored = []
    for key in keys:
        posterior = state.book.posterior(key)
        terms = score(
            posterior,
            sample=state.book.sample(key, rng),
            intelligence=state.catalog.models[key].intelligence,
            position=chain.index(key),
            chain_length=len(chain),
            pool=pool,
        )
        scored.append((key, terms))
    scored.sort(key=lambda item: item[1].total, reverse=True)
    return scored  # type: ignore[return-value]


def _guard_busy_providers(
    state: GatewayState, session: str, ranked: list[tuple[str, ScoreTerms | None]]
) -> list[tuple[str, ScoreTerms | None]]:
    """A new conversation steps around `provider-ban` providers busy with another one.

    Such a provider bans itself from a whole conversation on one failure; spreading new
    conversations elsewhere keeps one bad moment from costing several. Busy ones go last, so
    they are still tried when nothing else is left.
    """
    protection = state.controls.protection

    def busy(key: str) -> bool:
        provider = state.catalog.models[key].provider
        return protection[provider] == "provider-ban" and state.provider_busy_elsewhere(
            provider, session
        )

    free = [item for item in ranked if not busy(item[0])]
    return free + [item for item in ranked if busy(item[0])] if free else ranked


def _ends_first(state: GatewayState, keys: list[str], now: float) -> str | None:
    if not keys:
        return None
    catalog = state.catalog

    def available_at(key: str) -> float:
        return state.cooldowns.available_at(key, state.key_ids(catalog.models[key].provider), now)

    return min(keys, key=available_at)
