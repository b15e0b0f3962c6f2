"""Upstream adapters, one per provider family, found by kind in a lazy registry.

`make_upstream` imports a family's module the first time a provider of that kind is made, so a
gateway that uses no Gemini provider never loads the Gemini translation code. Every HTTP family
calls through the gateway's one `UpstreamClient` (`http.py`, with `http_wire.py` for one
connection), and `transport.py` maps what it raises into domain errors.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol, cast

from ..config import ProviderKind, ProviderSettings
from .base import Upstream

if TYPE_CHECKING:
    from .http import UpstreamClient

__all__ = ["KINDS", "Upstream", "UpstreamFactory", "make_upstream"]


class UpstreamFactory(Protocol):
    """What a registry entry names: an adapter class, called with the provider's settings."""

    def __call__(self, settings: ProviderSettings, client: UpstreamClient) -> Upstream: ...


KINDS: Mapping[ProviderKind, str] = MappingProxyType(
    {
        "openai": "tui_gateway.providers.openai:OpenAIUpstream",
        "cohere": "tui_gateway.providers.cohere:CohereUpstream",
        "cloudflare": "tui_gateway.providers.cloudflare:CloudflareUpstream",
        "gemini": "tui_gateway.providers.gemini:GeminiUpstream",
        "simulated": "tui_gateway.providers.simulated:SimulatedUpstream",
    }
)
"""Provider kind -> `module:Class` of its adapter, imported on first use."""


def make_upstream(settings: ProviderSettings, client: UpstreamClient) -> Upstream:
    """The adapter for one configured provider; its module is imported now if it was not yet.

    Raises:
        ValueError: `settings.kind` is not a kind in `KINDS`.
    """
    target = KINDS.get(settings.kind)
    if target is None:
        raise ValueError(f"unknown provider kind {settings.kind!r} (known: {', '.join(KINDS)})")
    module, _, name = target.partition(":")
    factory = cast(UpstreamFactory, getattr(importlib.import_module(module), name))
    return factory(settings, client)
