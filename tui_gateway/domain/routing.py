"""What routing may use right now: the Router, and the candidates its plans are made of.

The Router reads the controls, the keys, the cooldowns, the quotas and who is busy, and says
which models are usable, cooling or at their quota and when each is free again. The plans
themselves, the order a request tries models in, are made in planning.py.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from ..config import RoutingSettings
from .catalog import Catalog
from .controls import Controls
from .cooldowns import Cooldowns
from .flows import Flows
from .keys import KeyRing
from .posteriors import PosteriorBook
from .quotas import Quotas
from .scoring import ScoreBases, ScoreTerms
from .sticky import StickySessions

Plan = tuple[list["Candidate"], Callable[[], list["Candidate"]]]
"""The head of a request's candidates and the function that ranks the rest (planning.py)."""


def note_once(notes: list[str], model: str, note: Callable[[], str]) -> None:
    """Add `note()` about `model` to a request's notes unless one about it is there already
    (a plan's rest is ranked again, and the relay meets the same model at its quota)."""
    head = f"{model}: "
    if not any(n.startswith(head) for n in notes):
        notes.append(note())


class Candidate(msgspec.Struct, frozen=True):
    model: str
    provider: str
    reason: str
    """named | sticky | pool | cooling (tried although cooling: nothing else was left) | quota
    (every key at its quota, and nothing else was left: free first)."""
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
        quotas: Quotas | None = None,
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
        self.quotas = quotas or Quotas()
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

    def keys_rejected_notes(self, pool: str) -> list[str]:
        """Why models of this pool are left out for their keys, one line per provider in chain
        order: `provider mock skipped: all 2 API keys were rejected (401)`."""
        notes: dict[str, str] = {}
        for key in self.chain(pool):
            provider = self.catalog.provider_names[key]
            if provider not in notes and (why := self.keys.describe_rejection(provider)):
                notes[provider] = f"provider {provider} skipped: {why}"
        return list(notes.values())

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

    def available_at(self, key: str, now: float, tokens: int = 0) -> float:
        """When the model can next be used: `now`, or when its cooldown ends, or (with limits)
        when its first key is free of both its cooldown and its quota for `tokens` more."""
        ids = self.keys.valid_ids(self.catalog.provider_names[key])
        quotas = self.quotas
        if not quotas.limited(key):
            return self.cooldowns.available_at(key, ids, now)
        return min(
            (
                max(
                    self.cooldowns.available_at(key, [k], now),
                    quotas.frees_at(k, key, now, tokens) or now,
                )
                for k in ids
            ),
            default=now,
        )

    def quota_note(self, key: str, now: float, tokens: int = 0) -> str:
        """Why a model at its quota was left out: `groq/x: at its quota (rpm 30/30 on groq#1);
        frees in 12 s`."""
        quotas = self.quotas
        full = []
        for key_id in self.keys.valid_ids(self.catalog.provider_names[key]):
            view = quotas.view(key_id, key, now)
            for w in view.windows if view is not None else ():
                if w.used >= w.limit or (w.name[0] == "t" and w.used + tokens > w.limit):
                    full.append(f"{w.name} {w.used}/{w.limit} on {key_id}")
        frees = self.available_at(key, now, tokens) - now
        return f"{key}: at its quota ({', '.join(full) or 'every key'}); frees in {frees:.0f} s"

    def at_quota(self, key: str, now: float, tokens: int = 0) -> bool:
        """Every valid key of the model is at one of its limits for a request of `tokens`."""
        quotas = self.quotas
        if not quotas.limited(key):
            return False
        ids = self.keys.valid_ids(self.catalog.provider_names[key])
        return not any(quotas.allows(k, key, now, tokens) for k in ids)

    def any_guarded_provider_busy(self) -> bool:
        """Some `provider-ban` provider has a request in flight (cheap pre-check for routing)."""
        protection = self.controls.protection
        return any(protection[p] == "provider-ban" for p in self.flows.busy_providers())
