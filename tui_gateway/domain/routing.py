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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
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
    """The whole plan at once (the state API, tests, the routing benchmark)."""
    head, rest = plan_lazily(
        state, target, session=session, now=now, rng=rng, max_attempts=max_attempts
    )
    return (head + rest())[:max_attempts]


def plan_lazily(
    state: GatewayState,
    target: Target,
    *,
    session: SessionEntry | None,
    now: float,
    rng: random.Random,
    max_attempts: int,
) -> tuple[list[Candidate], Callable[[], list[Candidate]]]:
    """The named and sticky models now; the ranked rest of the pool only when it is needed.

    Most requests are answered by their first candidate (a conversation's sticky model, or the
    model the client named), so ranking the pool for them would be wasted work on the hot path.
    The rest is ranked when the head runs out, with what routing knows by then.
    """
    provider_of = state.catalog.provider_names
    usable = state.usable_models()
    banned_here = (
        state.sessions.banned_providers(session.key, now) if session and session.banned else set()
    )
    cooling_now = state.cooling_models(now)

    def allowed(key: str) -> bool:
        return key in usable and provider_of[key] not in banned_here

    def cooling(key: str) -> bool:
        return key in cooling_now and state.available_at(key, now) > now

    head: list[Candidate] = []
    sticky = session.model if session else None
    for key, reason in ((target.preferred, "named"), (sticky, "sticky")):
        taken = key is not None and head and head[0].model == key
        if key is not None and not taken and allowed(key) and not cooling(key):
            head.append(Candidate(key, provider_of[key], reason))

    def rest() -> list[Candidate]:
        room = max_attempts - len(head)
        if room <= 0:
            return []
        ranked = _rank_pool(state, target.pool, head, session, rng, room, allowed, cooling)
        if not ranked and not head:
            chain = state.chain(target.pool)
            fallback = _ends_first(state, [k for k in chain if allowed(k)], now)
            if fallback is not None:
                return [Candidate(fallback, provider_of[fallback], "cooling")]
        return ranked

    return head, rest if head else _computed(rest())


def _computed(candidates: list[Candidate]) -> Callable[[], list[Candidate]]:
    return lambda: candidates


def _rank_pool(
    state: GatewayState,
    pool: str,
    head: list[Candidate],
    session: SessionEntry | None,
    rng: random.Random,
    room: int,
    allowed: Callable[[str], bool],
    cooling: Callable[[str], bool],
) -> list[Candidate]:
    """The pool's chain minus the head and whatever is not allowed or cooling, in order."""
    provider_of = state.catalog.provider_names
    taken = {c.model for c in head}
    rest = [k for k in state.usable_chain(pool) if k not in taken and allowed(k)]
    rest = [k for k in rest if not cooling(k)]
    guard = (
        session is not None
        and session.turns == 0
        and state.routing.concurrency_guard
        and state.any_guarded_provider_busy()
    )
    if state.routing.strategy == "thompson":
        # With the concurrency guard about to reorder, rank everything; else only the best few.
        chain = state.chain(pool)
        ranked = _rank(state, pool, chain, rest, rng, keep=None if guard else room)
    else:
        ranked = [(k, None) for k in rest]
    if guard:
        assert session is not None
        ranked = _guard_busy_providers(state, session.key, ranked)
    return [Candidate(k, provider_of[k], "pool", terms) for k, terms in ranked[:room]]


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
    terms: list[tuple[str, ScoreTerms | None]] = []
    for i in best:
        base = bases[keys[i]]  # a new ScoreTerms with this draw (the constructor beats replace())
        terms.append(
            (
                keys[i],
                ScoreTerms(samples[i], base.speed, base.latency, base.intelligence, base.position),
            )
        )
    return terms


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
