"""JSON pictures of the gateway state, for `GET /gateway/state` and the TUI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..config import POOLS

RECENT_IN_SNAPSHOT = 20
"""Finished requests a snapshot carries, newest last (the TUI lingers on them briefly)."""

if TYPE_CHECKING:
    from .state import GatewayState


def pools_json(state: GatewayState) -> dict[str, list[dict[str, Any]]]:
    now = state.clock()
    out: dict[str, list[dict[str, Any]]] = {}
    for pool in POOLS:
        chain = state.chain(pool)
        out[pool] = [
            {
                "model": key,
                "provider": state.catalog.models[key].provider,
                "id": state.catalog.models[key].id,
                "position": position,
                "enabled": key not in state.controls.pools.disabled,
                "banned": key in state.controls.banned_models
                or state.catalog.models[key].provider in state.controls.banned_providers,
                "cooling": state.available_at(key, now) > now,  # a cooling model, or all its keys
                "usable": state.is_usable(key),
            }
            for position, key in enumerate(chain)
        ]
    return out


def snapshot(state: GatewayState) -> dict[str, Any]:
    """A JSON-ready picture of everything, for the state API and the TUI."""
    now = state.clock()
    routing = state.routing
    return {
        "now": now,
        "active": [r.as_json() for r in state.active.values()],
        "recent": [r.as_json() for r in list(state.recent)[-RECENT_IN_SNAPSHOT:]],
        "pools": pools_json(state),
        "sticky": [
            s.as_json(now, ttl_s=routing.sticky_ttl_s, ban_ttl_s=routing.provider_ban_ttl_s)
            for s in state.sessions.entries(now)
        ],
        "cooldowns": [c.as_json(now) for c in state.cooldowns.entries(now)],
        "posteriors": posteriors_json(state),
        "bans": {
            "models": sorted(state.controls.banned_models),
            "providers": sorted(state.controls.banned_providers),
        },
        "protection": dict(state.controls.protection),
        "keys": state.keys.as_json(),  # masked: a secret never leaves the state
        "strategy": routing.strategy,
        "totals": {"finished": state.finished_count, "failed": state.failed_count},
        "demo": {"paused": state.demo_paused},
        "log": state.log_health().as_json(),
        "responses_store": state.responses_store().as_json(),
        "rejected": dict(state.rejections.totals().most_common(20)),
    }


def posteriors_json(state: GatewayState) -> dict[str, dict[str, Any]]:
    """Each model's posterior, where it sits, and the parts of its routing score.

    `score` holds every term but the draw (which is new for each request): with the posterior's
    mean in place of the draw it says why a model tends to rank where it does.
    """
    out = {}
    for pool in POOLS:
        chain = state.chain(pool)
        bases = state.score_bases.for_pool(state.book, state.catalog.models, pool, chain)
        for position, key in enumerate(chain):
            posterior = state.book.posterior(key)
            terms = bases[key].as_json()
            del terms["total"]  # of the terms without a draw: see expected_total
            terms["sample"] = None
            terms["expected_total"] = round(state.score_bases.totals[key] + posterior.mean, 4)
            out[key] = posterior.as_json() | {"pool": pool, "position": position, "score": terms}
    return out
