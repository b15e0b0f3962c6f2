"""Each pool's ordered fallback chain, and which models are switched off."""

from __future__ import annotations

from collections.abc import Iterable

from ..config import POOLS, ModelSettings


class PoolChains:
    """Ordered chains per pool plus the disabled set; the config order is the initial order."""

    def __init__(self, models: Iterable[ModelSettings]) -> None:
        self._chains: dict[str, list[str]] = {pool: [] for pool in POOLS}
        self.disabled: set[str] = set()
        for model in models:
            self._chains[model.pool].append(model.key)
            if not model.enabled:
                self.disabled.add(model.key)

    def chain(self, pool: str) -> list[str]:
        """The pool's models in fallback order (a copy: callers cannot reorder by accident)."""
        return list(self._chains[pool])

    def pool_of(self, key: str) -> str:
        for pool, chain in self._chains.items():
            if key in chain:
                return pool
        raise KeyError(key)

    def move(self, key: str, delta: int) -> int:
        """Move a model `delta` places along its chain (negative is toward the front).

        Returns:
            The model's new position, clamped to the chain's ends.
        """
        chain = self._chains[self.pool_of(key)]
        old = chain.index(key)
        new = max(0, min(len(chain) - 1, old + delta))
        chain.insert(new, chain.pop(old))
        return new

    def set_order(self, pool: str, keys: list[str]) -> None:
        """Apply a saved order; unknown keys are dropped and models missing from it keep the end."""
        chain = self._chains[pool]
        saved = [k for k in keys if k in chain]
        self._chains[pool] = saved + [k for k in chain if k not in saved]
