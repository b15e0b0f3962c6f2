"""Upstream adapters, one per provider family."""

from __future__ import annotations

import aiohttp

from ..config import ProviderSettings
from .base import ChunkStream, Upstream, wrapped_error
from .cloudflare import CloudflareUpstream
from .cohere import CohereUpstream
from .gemini import GeminiUpstream
from .openai import OpenAIUpstream
from .simulated import SimulatedUpstream

__all__ = ["ChunkStream", "Upstream", "make_upstream", "wrapped_error"]


def make_upstream(settings: ProviderSettings, session: aiohttp.ClientSession) -> Upstream:
    if settings.kind == "simulated":
        return SimulatedUpstream(settings)
    if settings.kind == "cohere":
        return CohereUpstream(settings, session)
    if settings.kind == "cloudflare":
        return CloudflareUpstream(settings, session)
    if settings.kind == "gemini":
        return GeminiUpstream(settings, session)
    return OpenAIUpstream(settings, session)
