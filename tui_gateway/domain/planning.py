"""Which models to try for one request, in which order (the Router says what is usable).

The order is: the model the client named, then the conversation's sticky model, then the rest of
the pool's chain. Left out: disabled and banned models, providers banned globally or for this
conversation, and models cooling down. With `strategy = "thompson"` the rest of the chain is
ranked by score (a posterior sample plus speed, latency, intelligence and chain-position terms,
see `scoring.py`); with `"ordered"` it keeps the user's order. The chain position is a term of
the score, so moving a model to the head of a pool raises its share of traffic without starving
the others.

Quotas (quotas.py): a model whose every key is at one of its limits (`limits`) is left out as a
cooling one is, without an upstream call to find out. Never zero candidates: when everything
usable is cooling down or at its quota, the model that is free first is planned (reason
`cooling`, or `quota`: the relay then waits for its window or says when it frees).

Cost: one decision is a draw per model plus a cached score base (see `ScoreBases`), and only the
candidates kept get a `ScoreTerms`; `scripts/bench_routing.py` times it on a 300-model pool.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from operator import add

from .catalog import Target
from .routing import Candidate, Plan, Router, note_once
from .scoring import ScoreTerms
from .sticky import SessionEntry

_Check = Callable[[str], bool]
_Filters = tuple[_Check, _Check, _Check | None, float]
"""What may be tried, what is cooling, what is at its quota (None: no limits anywhere), and
when that was decided (see `_filters`)."""


def plan_candidates(
    router: Router,
    target: Target,
    *,
    session: SessionEntry | None,
    rng: random.Random,
    max_attempts: int,
    tokens: int = 0,
) -> list[Candidate]:
    """The whole plan at once (the state API, tests, the routing benchmark)."""
    head, rest = plan_lazily(
        router, target, session=session, rng=rng, max_attempts=max_attempts, tokens=tokens
    )
    return (head + rest())[:max_attempts]


def plan_lazily(
    router: Router,
    target: Target,
    session: SessionEntry | None,
    rng: random.Random,
    *,
    max_attempts: int | None = None,
    tokens: int = 0,
    notes: list[str] | None = None,
) -> Plan:
    """The named and sticky models now; the ranked rest of the pool only when it is needed.

    `max_attempts` defaults to `[routing] max_attempts`; `tokens` is the request's estimate,
    which a model's token limits must still take; `notes` is where a model left out for its
    quota is told (the flow's `passed_over`).

    Most requests are answered by their first candidate (a conversation's sticky model, or the
    model the client named), so ranking the pool for them would be wasted work on the hot path.
    The rest is ranked when the head runs out, with what routing knows by then: a model banned,
    disabled or cooling down since the plan was made is left out of it.
    """
    provider_of = router.catalog.provider_names
    max_attempts = router.routing.max_attempts if max_attempts is None else max_attempts
    filters = allowed, cooling, at_quota, now = _filters(router, session, tokens, notes)
    head: list[Candidate] = []
    sticky = session.model if session else None
    for key, reason in ((target.preferred, "named"), (sticky, "sticky")):
        taken = key is not None and head and head[0].model == key
        if key is None or taken or not allowed(key) or cooling(key):
            continue
        if at_quota is None or not at_quota(key):
            head.append(Candidate(key, provider_of[key], reason))

    def rest(filters: _Filters | None = None) -> list[Candidate]:
        room = max_attempts - len(head)
        if room <= 0:
            return []
        allowed, cooling, at_quota, now = filters or _filters(router, session, tokens, notes)
        ranked = _rank_pool(
            router, target.pool, head, session, rng, room, allowed, cooling, at_quota
        )
        if not ranked and not head:
            chain = router.chain(target.pool)
            fallback = _ends_first(router, [k for k in chain if allowed(k)], now, tokens)
            if fallback is not None:
                why = "quota" if router.at_quota(fallback, now, tokens) else "cooling"
                return [Candidate(fallback, provider_of[fallback], why)]
        return ranked

    return head, rest if head else _computed(rest(filters))


def _filters(
    router: Router, session: SessionEntry | None, tokens: int = 0, notes: list[str] | None = None
) -> _Filters:
    """What may be tried, what is cooling and what is at its quota, as of now (see `_Filters`).

    A model left out for its quota is told in `notes` once, with when it frees. The quota check
    is memoised: ranking asks it only of the candidates it would keep, perhaps twice.
    """
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

    if not router.quotas:  # only a config with limits pays for the check
        return allowed, cooling, None, now
    checked: dict[str, bool] = {}

    def at_quota(key: str) -> bool:
        full = checked.get(key)
        if full is None:
            full = checked[key] = router.at_quota(key, now, tokens)
            if full and notes is not None:
                note_once(notes, key, lambda: router.quota_note(key, now, tokens))
        return full

    return allowed, cooling, at_quota, now


def _computed(candidates: list[Candidate]) -> Callable[[], list[Candidate]]:
    return lambda: candidates


def _rank_pool(
    router: Router,
    pool: str,
    head: list[Candidate],
    session: SessionEntry | None,
    rng: random.Random,
    room: int,
    allowed: _Check,
    cooling: _Check,
    at_quota: _Check | None = None,
) -> list[Candidate]:
    """The pool's chain minus the head and whatever is not allowed, cooling or at its quota, in
    order. The quota is checked after ranking, on the few candidates kept (twice as many as
    needed; all of them if too many of those are at their quota)."""
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
    keep = None if guard else room  # the guard reorders: then everything is ranked
    if router.routing.strategy == "thompson":
        chain = router.chain(pool)
        spare = keep if at_quota is None or keep is None else 2 * keep
        ranked = _rank(router, pool, chain, rest, rng, keep=spare)
        if at_quota is not None:
            fits = _fitting(ranked, at_quota, keep)
            if len(fits) < room and len(ranked) < len(rest):  # too many at quota: rank them all
                fits = _fitting(_rank(router, pool, chain, rest, rng, keep=None), at_quota, keep)
            ranked = fits
    else:
        ranked = [(k, None) for k in rest]
        if at_quota is not None:
            ranked = _fitting(ranked, at_quota, keep)
    if guard:
        assert session is not None
        ranked = _guard_busy_providers(router, session.key, ranked)
    return [Candidate(k, provider_of[k], "pool", terms) for k, terms in ranked[:room]]


def _fitting(
    ranked: list[tuple[str, ScoreTerms | None]], at_quota: _Check, keep: int | None
) -> list[tuple[str, ScoreTerms | None]]:
    """The first `keep` (None: all) of `ranked` not at their quota, in order."""
    fits = []
    for item in ranked:
        if not at_quota(item[0]):
            fits.append(item)
            if len(fits) == keep:
                break
    return fits


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


def _ends_first(router: Router, keys: list[str], now: float, tokens: int) -> str | None:
    return min(keys, key=lambda key: router.available_at(key, now, tokens)) if keys else None
