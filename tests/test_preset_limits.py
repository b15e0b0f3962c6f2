"""Presets that carry their provider's documented free tier (issue 13): defaults, never promises."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from urllib.parse import urlsplit

import pytest

from tui_gateway.config import parse_settings
from tui_gateway.config_limits import LimitSettings, effective_limits, preset_limits_notes
from tui_gateway.domain.quota_windows import DailyReset
from tui_gateway.preset_limits import PRESET_LIMITS
from tui_gateway.presets import PRESETS

ENVIRON = {"OPENROUTER_API_KEY": "or", "GROQ_API_KEY": "gq", "GEMINI_API_KEY": "gm"}


def model(provider: str, extra: str = "") -> str:
    return f'\n[[models]]\nprovider = "{provider}"\nid = "m"\n{extra}'


def test_a_presets_limits_become_the_providers_defaults() -> None:
    settings = parse_settings(
        '[[providers]]\npreset = "openrouter"' + model("openrouter"), environ=ENVIRON
    )
    provider, only = settings.providers[0], settings.models[0]
    assert provider.limits == LimitSettings(rpm=20, rpd=1000)
    assert (provider.limits_scope, provider.daily_reset) == ("key", "00:00 UTC")
    assert effective_limits(provider, only) == LimitSettings(rpm=20, rpd=1000)


def test_the_users_own_limits_table_replaces_the_presets_whole() -> None:
    settings = parse_settings(
        '[[providers]]\npreset = "openrouter"\nlimits = { rpd = 1000 }', environ=ENVIRON
    )
    assert settings.providers[0].limits == LimitSettings(rpd=1000)  # no rpm 20 merged in


def test_an_empty_limits_table_turns_the_presets_limits_off() -> None:
    settings = parse_settings('[[providers]]\npreset = "openrouter"\nlimits = {}', environ=ENVIRON)
    assert not settings.providers[0].limits
    assert preset_limits_notes(settings.providers, settings.models) == []


def test_the_users_own_scope_and_daily_reset_win() -> None:
    text = (
        '[[providers]]\npreset = "openrouter"\nlimits_scope = "provider"\ndaily_reset = "06:00 UTC"'
    )
    provider = parse_settings(text, environ=ENVIRON).providers[0]
    assert (provider.limits_scope, provider.daily_reset) == ("provider", "06:00 UTC")
    assert provider.limits == LimitSettings(rpm=20, rpd=1000)


@pytest.mark.parametrize("name", sorted(set(PRESETS) - set(PRESET_LIMITS)))
def test_a_preset_without_documented_limits_has_none(name: str) -> None:
    environ = {PRESETS[name].key_env: "k"} if PRESETS[name].key_env else {}
    provider = parse_settings(f'[[providers]]\npreset = "{name}"', environ=environ).providers[0]
    assert provider.limits == LimitSettings()
    assert (provider.limits_scope, provider.daily_reset) == ("key", None)


def test_a_preset_may_carry_only_a_daily_reset() -> None:
    provider = parse_settings('[[providers]]\npreset = "gemini"', environ=ENVIRON).providers[0]
    assert not provider.limits and provider.daily_reset == "00:00 America/Los_Angeles"


def test_a_plain_provider_at_a_presets_url_gets_nothing_from_it() -> None:
    text = '[[providers]]\nname = "or"\nkind = "openai"\nbase_url = "https://openrouter.ai/api/v1"\napi_keys = ["k"]'
    provider = parse_settings(text, environ={}).providers[0]
    assert not provider.limits and provider.daily_reset is None


@pytest.mark.parametrize("name", sorted(PRESET_LIMITS))
def test_each_preset_limit_entry_has_a_date_and_a_source(name: str) -> None:
    """Issue 13: a preset's limits are the provider's documented ones, so each says where and
    when they were read; this fails for an entry added without them."""
    carried = PRESET_LIMITS[name]
    assert name in PRESETS
    assert dt.date.fromisoformat(carried.limits_as_of) <= dt.date.today()
    url = urlsplit(carried.limits_source)
    assert url.scheme == "https" and url.hostname and "." in url.hostname
    assert carried.limits or carried.daily_reset, "an entry carries a limit or a daily reset"
    assert all(value >= 1 for value in carried.limits.values())
    if carried.daily_reset is not None:
        DailyReset.parse(carried.daily_reset)


@pytest.mark.parametrize("name", sorted(PRESET_LIMITS))
def test_each_preset_with_limits_loads_and_passes_the_limits_checks(name: str) -> None:
    key = "account:token" if name == "cloudflare" else "k"
    environ = {PRESETS[name].key_env: key}
    settings = parse_settings(f'[[providers]]\npreset = "{name}"' + model(name), environ=environ)
    provider = settings.providers[0]
    assert provider.limits == LimitSettings(**PRESET_LIMITS[name].limits)


def test_start_up_says_the_limits_came_from_the_preset_and_how_to_turn_them_off() -> None:
    settings = parse_settings(
        '[[providers]]\npreset = "openrouter"' + model("openrouter"), environ=ENVIRON
    )
    (note,) = preset_limits_notes(settings.providers, settings.models)
    carried = PRESET_LIMITS["openrouter"]
    assert note.startswith("openrouter: free-tier limits from its preset (rpm 20, rpd 1,000, ")
    assert carried.limits_as_of in note and carried.limits_source in note
    assert "limits = {}" in note


def test_start_up_names_a_presets_daily_reset_only_when_some_limit_applies() -> None:
    bare = parse_settings('[[providers]]\npreset = "gemini"' + model("gemini"), environ=ENVIRON)
    assert preset_limits_notes(bare.providers, bare.models) == []
    limited = parse_settings(
        '[[providers]]\npreset = "gemini"' + model("gemini", "limits = { rpd = 250 }"),
        environ=ENVIRON,
    )
    (note,) = preset_limits_notes(limited.providers, limited.models)
    assert note.startswith("gemini: the day resets at 00:00 America/Los_Angeles, from its preset")


def test_start_up_says_nothing_for_providers_without_preset_limits() -> None:
    text = '[[providers]]\npreset = "groq"\nlimits = { rpm = 30 }\n'
    settings = parse_settings(text, environ=ENVIRON)
    assert preset_limits_notes(settings.providers, settings.models) == []


def test_a_presets_daily_reset_in_a_zone_unknown_here_is_left_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gemini = replace(PRESET_LIMITS["gemini"], daily_reset="00:00 Nowhere/Atlantis")
    monkeypatch.setitem(PRESET_LIMITS, "gemini", gemini)
    provider = parse_settings('[[providers]]\npreset = "gemini"', environ=ENVIRON).providers[0]
    assert provider.daily_reset is None  # a rolling day, not a start-up error for an unset key
