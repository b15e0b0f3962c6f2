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

from ..config import RoutingSettings
from .catalog import Catalog, Target
from .controls import Controls
from .cooldowns import Cooldowns
from .flows import Flows
from .keys import KeyRing
from .posteriors import PosteriorBook
from .scoring import ScoreBases, ScoreTerms
from .sticky import SessionEntry, StickySessions

Plan = tuple[list["Candidate"], Callable[[], list["Candidate"]]]
"""The head of a request's candidates and the function that ranks the rest (see `Router.plan`)."""
_Filters = tuple[Callable[[str], bool], Callable[[str], bool], float]
"""What may be tried, what is cooling, and when that was decided (see `_filters`)."""


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


class Router:
    """What routing may use right now, and the plans it makes from that.

    Reads the controls, the keys, the cooldowns, the sessions' bans, the posteriors and who is
    busy; changes none of them. What it derives from the user's controls (the usable models, each
    pool's usable chain) is cached until `invalidate()`.
    """

    def __init__(
        self,
        *,
        routing: RoutingSettings,
        catalog: Catalog,
        controls: Controls,
        keys: KeyRing,
        cooldowns: Cooldowns,
        sessions: StickySessions,
        book: PosteriorBook,
        flows: Flows,
        clock: Callable[[], float],
    ) -> None:
        self.routing = routing
        self.catalog = catalog
        self.controls = controls
        self.keys = keys
        self.cooldowns = cooldowns
        self.sessions = sessions
        self.book = book
        self.flows = flows
        self.clock = clock
        self.score_bases = ScoreBases()
        self._usable: frozenset[str] | None = None
        self._usable_chains: dict[str, list[str]] = {}

    def invalidate(self) -> None:
        """The controls or the keys changed: what was derived from them is stale."""
        self._usable = None
        self.score_bases.forget()

    def chain(self, pool: str) -> list[str]:
        return self.controls.pools.chain(pool)

    def is_usable(self, key: str) -> bool:
        """Enabled, not banned, and its provider has a key to send and is not banned."""
        model = self.catalog.models[key]
        return (
            key not in self.controls.pools.disabled
            and key not in self.controls.banned_models
            and model.provider not in self.controls.banned_providers
            and self.catalog.providers[model.provider].usable
            and not self.keys.all_invalid(model.provider)
        )

    def usable_models(self) -> frozenset[str]:
        """Every model `is_usable` says yes to; cached until `invalidate()`."""
        if self._usable is None:
            self._usable = frozenset(k for k in self.catalog.models if self.is_usable(k))
            self._usable_chains.clear()
        return self._usable

    def usable_chain(self, pool: str) -> list[str]:
        """The pool's chain without unusable models (cached like `usable_models`; do not mutate)."""
        usable = self.usable_models()
        chain = self._usable_chains.get(pool)
        if chain is None:
            chain = self._usable_chains[pool] = [k for k in self.chain(pool) if k in usable]
        return chain

    def cooling_models(self, now: float) -> set[str]:
        """Models with any cooldown running (on the model, or on one of its keys)."""
        if not self.cooldowns:
            return set()
        return {entry.model for entry in self.cooldowns.entries(now)}

    def available_at(self, key: str, now: float) -> float:
        """When the model can next be used: `now`, or when its cooldown ends."""
        ids = self.keys.valid_ids(self.catalog.provider_names[key])
        return self.cooldowns.available_at(key, ids, now)

    def any_guarded_provider_busy(self) -> bool:
        """Some `provider-ban` provider has a request in flight (cheap pre-check for routing)."""
        protection = self.controls.protection
        return any(protection[p] == "provider-ban" for p in self.flows.busy_providers())

    def plan(self, target: Target, *, session: SessionEntry | None, rng: random.Random) -> Plan:
        """The named and sticky models now; the ranked rest of the pool only when needed."""
        return plan_lazily(
            self, target, session=session, rng=rng, max_attempts=self.routing.max_attempts
        )


def plan_candidates(
    router: Router,
    target: Target,
    *,
    session: SessionEntry | None,
    rng: random.Random,
    max_attempts: int,
) -> list[Candidate]:
    """The whole plan at once (the state API, tests, the routing benchmark)."""
    head, rest = plan_lazily(router, target, session=session, rng=rng, max_attempts=max_attempts)
    return (head + rest())[:max_attempts]


def plan_lazily(
    router: Router,
    target: Target,
    *,
    session: SessionEntry | None,
    rng: random.Random,
    max_attempts: int,
) -> Plan:
    """The named and sticky models now; the ranked rest of the pool only when it is needed.

    Most requests are answered by their first candidate (a conversation's sticky model, or the
    model the client named), so ranking the pool for them would be wasted work on the hot path.
    The rest is ranked when the head runs out, with what routing knows by then: a model banned,
    disabled or cooling down since the plan was made is left out of it.
    """
    provider_of = router.catalog.provider_names
    allowed, cooling, now = _filters(router, session)
    head: list[Candidate] = []
    sticky = session.model if session else None
    for key, reason in ((target.preferred, "named"), (sticky, "sticky")):
        taken = key is not None and head and head[0].model == key
        if key is not None and not taken and allowed(key) and not cooling(key):
            head.append(Candidate(key, provider_of[key], reason))

    def rest(filters: _Filters | None = None) -> list[Candidate]:
        room = max_attempts - len(head)
        if room <= 0:
            return []
        allowed, cooling, now = filters or _filters(router, session)
        ranked = _rank_pool(router, target.pool, head, session, rng, room, allowed, cooling)
        if not ranked and not head:
            chain = router.chain(target.pool)
            fallback = _ends_first(router, [k for k in chain if allowed(k)], now)
            if fallback is not None:
                return [Candidate(fallback, provider_of[fallback], "cooling")]
        return ranked

    return head, rest if head else _computed(rest((allowed, cooling, now)))


def _filters(router: Router, session: SessionEntry | None) -> _Filters:
    """What may be tried and what is cooling, as of now: (allowed, cooling, now)."""
    now = router.clock()
    provider_of = router.catalog.provider_names
    usable = router.usable_models()
    banned_here = (
        router.sessions.banned_providers(session.key, now) if session and session.banned else set()
    )
    cooling_now = router.cooling_models(now)

    def allowed(key: str) -> bool:
        return key in usable and provider_of[key] not in banned_here

    def cooling(key: str) -> bool:
        return key in cooling_now and router.available_at(key, now) > now

    return allowed, cooling, now


def _computed(candidates: list[Candidate]) -> Callable[[], list[Candidate]]:
    return lambda: candidates


def _rank_pool(
    router: Router,
    pool: str,
    head: list[Candidate],
    session: SessionEntry | None,
    rng: random.Random,
    room: int,
    allowed: Callable[[str], bool],
    cooling: Callable[[str], bool],
) -> list[Candidate]:
    """The pool's chain minus the head and whatever is not allowed or cooling, in order."""
    provider_of = router.catalog.provider_names
    taken = {c.model for c in head}
    rest = [k for k in router.usable_chain(pool) if k not in taken and allowed(k)]
    rest = [k for k in rest if not cooling(k)]
    guard = (
        session is not None
        and session.turns == 0
        and router.routing.concurrency_guard
        and router.any_guarded_provider_busy()
    )
    if router.routing.strategy == "thompson":
        # With the concurrency guard about to reorder, rank everything; else only the best few.
        chain = router.chain(pool)
        ranked = _rank(router, pool, chain, rest, rng, keep=None if guard else room)
    else:
        ranked = [(k, None) for k in rest]
    if guard:
        assert session is not None
        ranked = _guard_busy_providers(router, session.key, ranked)
    return [Candidate(k, provider_of[k], "pool", terms) for k, terms in ranked[:room]]


def _rank(
    router: Router,
    pool: str,
    chain: list[str],
    keys: list[str],
    rng: random.Random,
    *,
    keep: int | None,
) -> list[tuple[str, ScoreTerms | None]]:
    """Keys by sampled score, best first; `keep` cuts the list (and the work) to the best few."""
    bases = router.score_bases.for_pool(router.book, router.catalog.models, pool, chain)
    base_totals = router.score_bases.totals
    samples = router.book.sample_many(keys, rng)
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
    router: Router, session: str, ranked: list[tuple[str, ScoreTerms | None]]
) -> list[tuple[str, ScoreTerms | None]]:
    """A new conversation steps around `provider-ban` providers busy with another one.

    Such a provider bans itself from a whole conversation on one failure; spreading new
    conversations elsewhere keeps one bad moment from costing several. Busy ones go last, so
    they are still tried when nothing else is left.
    """
    provider_of = router.catalog.provider_names
    protection = router.controls.protection

    def busy(key: str) -> bool:
        provider = provider_of[key]
        return protection[provider] == "provider-ban" and router.flows.provider_busy_elsewhere(
            provider, session
        )

    free = [item for item in ranked if not busy(item[0])]
    return free + [item for item in ranked if busy(item[0])] if free else ranked


def _ends_first(router: Router, keys: list[str], now: float) -> str | None:
    return min(keys, key=lambda key: router.available_at(key, now)) if keys else None
