"""The configured providers and models, and how a requested model name resolves to them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..config import VIRTUAL_MODEL_NAMES, ModelSettings, ProviderSettings

VIRTUAL_MODELS: dict[str, str] = dict(
    zip(VIRTUAL_MODEL_NAMES, ("balanced", "fast", "smart"), strict=True)
)
"""Virtual model name -> the pool whose chain it routes through."""


class UnknownModel(LookupError):
    """A request named a model that is neither virtual nor configured."""


@dataclass(frozen=True, slots=True)
class Target:
    """What a request asked for: a pool to route through, and maybe one model to try first."""

    pool: str
    preferred: str | None = None
    """Model key (`provider/id`) named explicitly by the client."""

    @property
    def mode(self) -> str:
        """The routing mode, part of the session key: a virtual name or the preferred model."""
        return self.preferred or next(k for k, v in VIRTUAL_MODELS.items() if v == self.pool)


class Catalog:
    """Immutable lookup over providers and models, built once from settings."""

    def __init__(
        self, providers: Iterable[ProviderSettings], models: Iterable[ModelSettings]
    ) -> None:
        self.providers: dict[str, ProviderSettings] = {p.name: p for p in providers}
        self.models: dict[str, ModelSettings] = {m.key: m for m in models}
        self.provider_names: dict[str, str] = {k: m.provider for k, m in self.models.items()}
        """Model key -> provider name: the routing hot path reads this, not the settings."""
        self._by_id: dict[str, str] = {}
        for key, model in self.models.items():
            self._by_id.setdefault(model.id, key)  # first in config order wins a shared id

    def resolve(self, requested: str) -> Target:
        """Map a request's `model` field to a routing target.

        Raises:
            UnknownModel: the name is not virtual, not `provider/id` and not a configured id.
        """
        if requested in VIRTUAL_MODELS:
            return Target(pool=VIRTUAL_MODELS[requested])
        key = requested if requested in self.models else self._by_id.get(requested)
        if key is None:
            raise UnknownModel(requested)
        return Target(pool=self.models[key].pool, preferred=key)

    def provider_of(self, key: str) -> ProviderSettings:
        return self.providers[self.models[key].provider]
