"""What the user decides at run time: pool order, enablement, global bans, protection levels.

These are the settings that survive a restart: `saved()` gives a JSON-ready picture and
`restore()` applies one, ignoring names the current config no longer has.

Shared between gateways (changes.py): the state calls `report` after each of its verbs, with
the event log's line, and the whole picture goes out (it is small); `apply` takes another
gateway's picture over this one's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..config import POOLS, PROTECTION_LEVELS, ModelSettings, ProviderSettings
from .changes import Change, Reporting
from .pools import PoolChains


class Controls(Reporting):
    PART = "controls"

    def __init__(
        self, providers: Iterable[ProviderSettings], models: Iterable[ModelSettings]
    ) -> None:
        models = list(models)
        self._models = {m.key for m in models}
        self.pools = PoolChains(models)
        self.banned_models: set[str] = set()
        self.banned_providers: set[str] = set()
        self.protection: dict[str, str] = {p.name: p.protection for p in providers}
        self._configured_disabled = set(self.pools.disabled)
        self._configured_protection = dict(self.protection)

    def set_protection(self, provider: str, level: str) -> None:
        if level not in PROTECTION_LEVELS:
            raise ValueError(f"protection must be one of {', '.join(PROTECTION_LEVELS)}")
        if provider not in self.protection:
            raise KeyError(provider)
        self.protection[provider] = level

    def saved(self) -> dict[str, Any]:
        return {
            "pools": {pool: self.pools.chain(pool) for pool in POOLS},
            # Only what differs from the config: editing the file later still takes effect.
            "enabled": {k: True for k in self._configured_disabled - self.pools.disabled}
            | {k: False for k in self.pools.disabled - self._configured_disabled},
            "banned_models": sorted(self.banned_models),
            "banned_providers": sorted(self.banned_providers),
            "protection": {
                p: level
                for p, level in self.protection.items()
                if level != self._configured_protection[p]
            },
        }

    def restore(self, saved: dict[str, Any], models: set[str]) -> None:
        for pool, order in (saved.get("pools") or {}).items():
            if pool in POOLS and isinstance(order, list):
                self.pools.set_order(pool, [k for k in order if isinstance(k, str)])
        for key, enabled in (saved.get("enabled") or {}).items():
            if key in models:
                (self.pools.disabled.discard if enabled else self.pools.disabled.add)(key)
        self.banned_models = {k for k in saved.get("banned_models") or () if k in models}
        self.banned_providers = {
            p for p in saved.get("banned_providers") or () if p in self.protection
        }
        for provider, level in (saved.get("protection") or {}).items():
            if provider in self.protection and level in PROTECTION_LEVELS:
                self.protection[provider] = level

    def report(self, line: str) -> None:
        """A verb changed the controls: tell the listener the whole picture, and why."""
        if self.listener is not None:
            self._report("all", {"picture": self.saved(), "line": line})

    def apply(self, change: Change) -> str:
        """Another gateway's picture replaces this one; returns its event log line."""
        self.pools.disabled = set(self._configured_disabled)
        self.protection = dict(self._configured_protection)
        self.restore(change.value["picture"], self._models)
        return str(change.value.get("line", ""))

    def changes(self) -> list[Change]:
        """The picture as a change: what a fresh shared store is seeded with."""
        return [Change(self.PART, "all", {"picture": self.saved(), "line": ""})]
