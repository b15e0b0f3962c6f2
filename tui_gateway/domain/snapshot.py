"""Frozen pictures of the gateway (views.py), built from the state's parts without changing them."""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice
from typing import Protocol

import msgspec

from ..config import POOLS, RoutingSettings, StreamingSettings
from .catalog import Catalog
from .controls import Controls
from .cooldowns import Cooldowns
from .flow import Flow
from .flows import Flows
from .keys import KeyRing
from .learning import Learner
from .posteriors import PosteriorBook
from .quotas import Quotas
from .records import LogHealth, RequestRecord
from .rejections import Rejections
from .replica import ClusterStatus
from .response_store import StoreCounts
from .routing import Router
from .scoring import score
from .sticky import StickySessions
from .timers import LearnedTimers
from .views import (
    Bans,
    ClusterView,
    CooldownView,
    Demo,
    FlowDetail,
    FlowView,
    KeyView,
    LogView,
    PoolEntry,
    PosteriorView,
    QuotaView,
    ScoreView,
    SessionView,
    Snapshot,
    StoreView,
    Totals,
)


class Parts(Protocol):
    """What a snapshot is built from: the state's parts (`GatewayState` has them)."""

    clock: Callable[[], float]
    routing: RoutingSettings
    streaming: StreamingSettings
    catalog: Catalog
    controls: Controls
    keys: KeyRing
    cooldowns: Cooldowns
    sessions: StickySessions
    book: PosteriorBook
    flows: Flows
    router: Router
    learner: Learner
    quotas: Quotas
    timers: LearnedTimers
    rejections: Rejections
    demo_paused: bool
    cluster: ClusterStatus
    log_health: Callable[[], LogHealth]
    responses_store: Callable[[], StoreCounts]


RECENT_IN_SNAPSHOT = 20
"""Finished requests a snapshot carries, newest last (the screen lingers on them briefly)."""


def view_of(flow: Flow) -> FlowView:
    first = flow.first_byte_at
    done = flow.done
    return FlowView(
        id=flow.id,
        session=flow.session,
        requested_model=flow.requested_model,
        model=flow.model,
        provider=flow.provider,
        attempt=flow.attempt,
        state=flow.phase,
        stream=flow.stream,
        dialect=flow.dialect,
        started=flow.started,
        ttfb_ms=None if first is None else round((first - flow.started) * 1000, 1),
        chunks=flow.chunks,
        heartbeats=flow.heartbeats,
        last_chunk_at=flow.last_chunk_at,
        failures=tuple(flow.decisions),
        finished_at=flow.finished_at,
        status=flow.status if done else None,
        error_kind=flow.error_kind if done else None,
        limit_s=flow.limit_s,
        usual_s=flow.usual_s,
        racer=None if flow.hedge is None else flow.hedge.model,
        client=flow.client,
    )


def detail_of(flow: Flow) -> FlowDetail:
    """A copy of everything the detail screen shows of a request still in memory."""
    attempts = tuple(flow.attempts)
    return FlowDetail(
        view=view_of(flow),
        attempts=attempts,
        error=flow.error,
        latency_ms=flow.latency_ms if flow.done else None,
        tokens_in=flow.tokens_in,
        tokens_out=flow.tokens_out,
        body=flow.body,
        timeline=tuple(flow.timeline),
        passed_over=tuple(flow.passed_over),
    )


def detail_of_row(row: RequestRecord) -> FlowDetail:
    """What the request log still knows of an older request (no body, no chunk timeline)."""
    finished = row.started + row.latency_ms / 1000
    last = row.attempts[-1] if row.attempts else None
    return FlowDetail(
        view=FlowView(
            id=row.id,
            session=row.session,
            requested_model=row.requested_model,
            model=row.model,
            provider=row.provider,
            attempt=len(row.attempts),
            state="done",
            stream=row.streamed,
            dialect=row.dialect,
            started=row.started,
            ttfb_ms=row.ttfb_ms,
            chunks=0,
            heartbeats=0,
            last_chunk_at=None if last is None else finished,
            failures=(),
            finished_at=finished,
            status=row.status,
            error_kind=row.error_kind,
            client=row.client,
        ),
        attempts=row.attempts,
        error=row.error,
        latency_ms=row.latency_ms,
        tokens_in=row.tokens_in,
        tokens_out=row.tokens_out,
        from_log=True,
    )


def build_pools(state: Parts) -> dict[str, tuple[PoolEntry, ...]]:
    now = state.clock()
    router, controls, models = state.router, state.controls, state.catalog.models
    learner, keys = state.learner, state.keys
    out: dict[str, tuple[PoolEntry, ...]] = {}
    for pool in POOLS:
        out[pool] = tuple(
            PoolEntry(
                model=key,
                provider=provider,
                id=models[key].id,
                position=position,
                enabled=key not in controls.pools.disabled,
                banned=key in controls.banned_models or provider in controls.banned_providers,
                cooling=router.cooldowns.available_at(key, keys.valid_ids(provider), now) > now,
                usable=router.is_usable(key),
                continuation=learner.continuation(key) or "none",
                prefill_refused=key in learner.prefill_refused,
                at_quota=router.at_quota(key, now),
            )
            for position, key in enumerate(router.chain(pool))
            for provider in (models[key].provider,)
        )
    return out


def build_snapshot(state: Parts, *, intervals: bool = True) -> Snapshot:
    now = state.clock()
    routing, flows = state.routing, state.flows
    recent = flows.recent
    skip = max(0, len(recent) - RECENT_IN_SNAPSHOT)
    health = state.log_health()
    store = state.responses_store()
    return Snapshot(
        now=now,
        active=tuple(view_of(f) for f in flows.active.values()),
        recent=tuple(view_of(f) for f in islice(recent, skip, None)),
        pools=build_pools(state),
        sticky=tuple(
            SessionView(
                key=s.key,
                mode=s.mode,
                preview=s.preview,
                model=s.model,
                api_key_id=s.api_key_id,
                turns=s.turns,
                source=s.source,
                banned={
                    p: round(left, 1)
                    for p, left in s.active_bans(now, routing.provider_ban_ttl_s).items()
                },
                expires_in=round(max(0.0, s.expires(routing.sticky_ttl_s) - now), 1),
            )
            for s in state.sessions.entries(now)
        ),
        cooldowns=tuple(
            CooldownView(
                model=c.model,
                provider=c.provider,
                key_id=c.key_id,
                reason=c.reason,
                started=c.started,
                expires=c.expires,
                remaining_s=round(c.remaining(now), 1),
                duration_s=round(c.expires - c.started, 1),
                failures=c.failures,
            )
            for c in state.cooldowns.entries(now)
        ),
        posteriors=_posteriors(state, intervals=intervals),
        timers={
            t.model: t
            for t in state.timers.views(
                first_byte_ceiling_s=state.streaming.first_byte_timeout_s,
                stall_ceiling_s=state.streaming.stall_timeout_s,
            )
        },
        bans=Bans(
            models=tuple(sorted(state.controls.banned_models)),
            providers=tuple(sorted(state.controls.banned_providers)),
        ),
        protection=dict(state.controls.protection),
        keys={
            provider: tuple(KeyView(**row) for row in rows)
            for provider, rows in state.keys.as_json().items()
        },
        strategy=routing.strategy,
        totals=Totals(finished=flows.finished, failed=flows.failed),
        demo=Demo(paused=state.demo_paused),
        log=LogView(**health.as_json()),
        responses_store=StoreView(stored=store.stored, cap=store.cap, ttl_s=store.ttl_s),
        rejected=dict(state.rejections.totals().most_common(20)),
        cluster=_cluster(state.cluster),
        quotas=_quotas(state, now),
    )


def _quotas(state: Parts, now: float) -> tuple[QuotaView, ...]:
    if not state.quotas:
        return ()
    keys = state.keys
    return tuple(
        msgspec.structs.replace(view, masked=keys.masked(view.key_id))
        for view in state.quotas.overview(keys.valid_ids, now)
    )


def _cluster(status: ClusterStatus) -> ClusterView | None:
    if not status.url:
        return None
    return ClusterView(url=status.url, connected=status.connected, last_error=status.last_error)


def _posteriors(state: Parts, *, intervals: bool) -> dict[str, PosteriorView]:
    """Each model's posterior, where it sits, and the parts of its routing score.

    `score` holds every term but the draw (which is new for each request): with the posterior's
    mean in place of the draw it says why a model tends to rank where it does. Computed here
    from the posterior, not read from routing's cache, so a snapshot changes nothing.
    """
    out = {}
    models = state.catalog.models
    for pool in POOLS:
        chain = state.router.chain(pool)
        for position, key in enumerate(chain):
            p = state.book.posterior(key)
            terms = score(
                p, sample=0.0, intelligence=models[key].intelligence, position=position,
                chain_length=len(chain), pool=pool,
            )  # fmt: skip
            out[key] = PosteriorView(
                model=key,
                alpha=p.alpha,
                beta=p.beta,
                mean=p.mean,
                interval=p.interval() if intervals else None,
                weighted_successes=p.weighted_successes,
                weighted_failures=p.weighted_failures,
                successes=p.successes,
                failures=p.failures,
                ttfb_ms=p.ttfb_ms,
                tokens_per_s=p.tokens_per_s,
                seen=p.seen,
                pool=pool,
                position=position,
                score=ScoreView(
                    sample=None,
                    speed=terms.speed,
                    latency=terms.latency,
                    intelligence=terms.intelligence,
                    position=terms.position,
                    expected_total=round(terms.total + p.mean, 4),
                ),
            )
    return out
