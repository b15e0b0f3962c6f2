"""`limits`, `limits_scope` and `daily_reset` in the config (issue 13): defaults and errors."""

from __future__ import annotations

import pytest

from tui_gateway.config import ConfigError, parse_settings
from tui_gateway.config_limits import LimitSettings, effective_limits, quota_policy
from tui_gateway.domain.quota_windows import DailyReset
from tui_gateway.domain.quotas import Limits
from tui_gateway.starter import STARTER_CONFIG

PROVIDER = '[[providers]]\nname = "s"\nkind = "simulated"\n'
MODEL = '[[models]]\nprovider = "s"\nid = "m"\n'


def error(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_settings(text, source="c.toml", environ={})
    return str(caught.value).removeprefix("config error in c.toml: ")


def test_without_limits_nothing_is_limited_and_the_day_rolls() -> None:
    settings = parse_settings(PROVIDER + MODEL, environ={})
    provider, model = settings.providers[0], settings.models[0]
    assert provider.limits == LimitSettings() and not provider.limits
    assert (provider.limits_scope, provider.daily_reset, model.limits) == ("key", None, None)
    policy = quota_policy(provider, model)
    assert not policy.limits and policy.daily_reset is None and policy.scope == "key"


def test_a_models_limits_override_its_providers_one_by_one() -> None:
    text = (
        PROVIDER
        + 'limits = { rpm = 30, rpd = 1000 }\ndaily_reset = "07:00 Asia/Kolkata"\n'
        + MODEL
        + "limits = { rpm = 10, tpm = 6000 }\n"
        + '[[models]]\nprovider = "s"\nid = "plain"\n'
    )
    settings = parse_settings(text, environ={})
    provider, limited, plain = settings.providers[0], *settings.models
    assert effective_limits(provider, limited) == LimitSettings(rpm=10, rpd=1000, tpm=6000)
    assert effective_limits(provider, plain) == LimitSettings(rpm=30, rpd=1000)
    policy = quota_policy(provider, limited)
    assert policy.limits == Limits(rpm=10, rpd=1000, tpm=6000)
    assert (policy.provider, policy.daily_reset) == ("s", DailyReset(7, 0, "Asia/Kolkata"))


def test_scope_provider_is_carried_to_the_policy() -> None:
    text = PROVIDER + 'limits = { rpd = 50 }\nlimits_scope = "provider"\n' + MODEL
    settings = parse_settings(text, environ={})
    policy = quota_policy(settings.providers[0], settings.models[0])
    assert (policy.scope, policy.limits) == ("provider", Limits(rpd=50))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "limits = { rmp = 3 }",
            "providers[0].limits.rmp: a known key (one of: rpd, rpm, tpd, tpm);"
            " did you mean 'rpm'?",
        ),
        ("limits = { rpm = 0 }", "providers[0].limits.rpm: a whole number of at least 1, got 0"),
        ('limits = { tpd = "lots" }', "providers[0].limits.tpd: a whole number, got a string"),
        ("limits = 30", "providers[0].limits: a table, got a whole number"),
        (
            'limits_scope = "account"',
            "providers[0].limits_scope: one of 'key', 'provider', got 'account'",
        ),
        (
            'daily_reset = "midnight"',
            "providers[0].daily_reset: a time and zone such as \"00:00 UTC\", got 'midnight'",
        ),
        (
            'daily_reset = "25:00 UTC"',
            "providers[0].daily_reset: a time and zone such as \"00:00 UTC\", got '25:00 UTC'"
            " (no such time of day: 25:00)",
        ),
        (
            'daily_reset = "00:00 Mars/Olympus"',
            'providers[0].daily_reset: a time and zone such as "00:00 UTC",'
            " got '00:00 Mars/Olympus' (no time zone 'Mars/Olympus' is known; use an IANA name"
            " such as Europe/Paris)",
        ),
        ("daily_reset = 0", "providers[0].daily_reset: a string, got a whole number"),
    ],
)
def test_a_wrong_limit_names_the_file_the_key_and_what_was_expected(
    extra: str, message: str
) -> None:
    assert error(PROVIDER + extra + "\n" + MODEL) == message


def test_an_unknown_key_in_a_models_limits_is_refused() -> None:
    assert error(PROVIDER + MODEL + "limits = { rpd = 5, tpdd = 9 }") == (
        "models[0].limits.tpdd: a known key (one of: rpd, rpm, tpd, tpm); did you mean 'tpd'?"
    )


def test_a_model_cannot_set_its_own_limits_in_a_quota_shared_by_the_provider() -> None:
    text = PROVIDER + 'limits_scope = "provider"\n' + MODEL + "limits = { rpm = 2 }"
    assert error(text).startswith(
        'models[0].limits: no limits here: provider s has limits_scope = "provider"'
    )


def test_the_starter_configs_commented_limits_load_once_uncommented() -> None:
    text = "\n".join(
        line.removeprefix("# ")
        if line.startswith(("# limits", "# daily_reset", "# limits_scope"))
        else line
        for line in STARTER_CONFIG.splitlines()
    )
    settings = parse_settings(text, environ={"GROQ_API_KEY": "g", "OPENROUTER_API_KEY": "o"})
    groq = settings.providers[0]
    assert groq.limits == LimitSettings(rpm=30, rpd=1000, tpm=6000, tpd=500000)
    assert (groq.limits_scope, groq.daily_reset) == ("key", "00:00 UTC")
    assert effective_limits(groq, settings.models[1]).tpm == 12000


def test_limits_a_user_wrote_draw_no_start_up_warning() -> None:
    """Enforced now (issue 13): a user's own limits are not warned about; only a preset's are
    named at start, so the user checks numbers they did not write."""
    from tui_gateway.config import warnings_for

    limited = parse_settings(PROVIDER + MODEL + "limits = { rpm = 5 }\n", environ={})
    assert not any("limits" in w for w in warnings_for(limited))
