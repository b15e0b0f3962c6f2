"""Provider presets: a sane table, and detection from the environment."""

from __future__ import annotations

from typing import cast
from urllib.parse import urlsplit

import pytest

from tui_gateway.config import PROVIDER_KINDS, ProviderKind, ProviderSettings
from tui_gateway.presets import PRESET_KINDS, PRESETS, Preset, detected_presets
from tui_gateway.providers import make_upstream
from tui_gateway.providers.cloudflare import CLOUDFLARE_BASE_URL
from tui_gateway.providers.cohere import COHERE_BASE_URL
from tui_gateway.providers.http import UpstreamClient

EXPECTED = {
    "groq", "cerebras", "sambanova", "nvidia", "mistral", "openrouter", "github", "zhipu",
    "ollama", "cohere", "cloudflare", "gemini", "deepseek", "together", "fireworks",
}  # fmt: skip


def test_every_expected_provider_has_a_preset() -> None:
    assert set(PRESETS) == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_has_a_known_kind_and_an_https_or_loopback_url(name: str) -> None:
    preset = PRESETS[name]
    assert preset.kind in PRESET_KINDS and preset.kind in PROVIDER_KINDS
    url = urlsplit(preset.base_url)
    assert url.scheme == "https" or (url.scheme == "http" and url.hostname == "127.0.0.1")
    assert url.hostname and not preset.base_url.endswith("/")
    assert not preset.base_url.endswith("/chat/completions")  # the adapter appends it
    assert preset.key_env == preset.key_env.strip().upper()


async def test_every_preset_kind_has_an_adapter() -> None:
    async with UpstreamClient() as session:
        for name, preset in PRESETS.items():
            kind = cast(ProviderKind, preset.kind)
            settings = ProviderSettings(name, kind, preset.base_url, api_keys=("account:key",))
            assert make_upstream(settings, session) is not None, name


def test_only_the_local_preset_needs_no_key() -> None:
    assert [name for name, p in PRESETS.items() if not p.key_env] == ["ollama"]
    assert PRESETS["ollama"] == Preset("openai", "http://127.0.0.1:11434/v1", "")


def test_family_presets_match_their_adapters_defaults() -> None:
    assert PRESETS["cohere"] == Preset("cohere", COHERE_BASE_URL, "COHERE_API_KEY")
    assert PRESETS["cloudflare"].base_url == CLOUDFLARE_BASE_URL
    assert "{account_id}" in CLOUDFLARE_BASE_URL
    assert PRESETS["github"].base_url == "https://models.github.ai/inference"


def test_detected_presets_are_those_with_a_non_empty_key_in_table_order() -> None:
    environ = {
        "MISTRAL_API_KEY": "m", "GROQ_API_KEY": "g", "CEREBRAS_API_KEY": "",
        "OPENROUTER_API_KEY": "   ", "PATH": "/usr/bin", "COHERE_API_KEY": "c",
    }  # fmt: skip
    assert detected_presets(environ) == ["groq", "mistral", "cohere"]


def test_nothing_detected_in_an_empty_environment() -> None:
    assert detected_presets({}) == []
