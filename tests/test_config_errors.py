"""msgspec's validation errors become the gateway's own messages: file, dotted key, expected, found.

Issue 10: the settings are declared once (dataclasses with `msgspec.Meta` constraints) and each
mistake still reads as it did with the hand-written checker, or better.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import hypothesis
import msgspec
import pytest
from hypothesis import strategies as st

from tui_gateway.config import ConfigError, Settings, parse_settings, settings_from_dict

SIM = '[[providers]]\nname = "s"\nkind = "simulated"\n'
MODEL = '[[models]]\nprovider = "s"\nid = "m"\n'


def error(text: str, environ: Mapping[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_settings(text, source="c.toml", environ={} if environ is None else environ)
    return str(caught.value).removeprefix("config error in c.toml: ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[routing]\nmax_attempts = "5"', "routing.max_attempts: a whole number, got a string"),
        ("[routing]\nmax_attempts = 2.5", "routing.max_attempts: a whole number, got a number"),
        ("[server]\nport = true", "server.port: a whole number, got a boolean"),
        ("[server]\nhost = 1979-05-27", "server.host: a string, got a date"),
        (
            "[routing]\nconcurrency_guard = 1",
            "routing.concurrency_guard: true or false, got a whole number",
        ),
        ('[routing]\nseed = "x"', "routing.seed: a whole number, got a string"),
        ("[routing]\nstrategy = 3", "routing.strategy: one of 'thompson', 'ordered', got 3"),
        ("server = 3", "server: a table, got a whole number"),
        ("models = 3", "models: a list, got a whole number"),
        ("models = [1]", "models[0]: a table, got a whole number"),
        (
            "[dialects.anthropic.models]\n'claude*' = 3",
            "dialects.anthropic.models.claude*: a string, got a whole number",
        ),
    ],
)
def test_a_wrong_type_names_the_key_the_type_expected_and_the_type_found(
    text: str, message: str
) -> None:
    assert error(text) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[routing]\nmax_attempts = 0",
            "routing.max_attempts: a whole number of at least 1, got 0",
        ),
        ("[server]\nport = 70000", "server.port: a port number from 0 to 65535, got 70000"),
        ("[server]\nport = -1", "server.port: a port number from 0 to 65535, got -1"),
        (
            "[server]\nshutdown_grace_s = -1",
            "server.shutdown_grace_s: a number of 0 or more, got -1",
        ),
        ("[routing]\nprior = -0.5", "routing.prior: a number of 0 or more, got -0.5"),
        ("[routing]\nsticky_ttl_s = 0", "routing.sticky_ttl_s: a number of seconds above 0, got 0"),
        (
            "[routing]\nrequest_timeout_s = nan",
            "routing.request_timeout_s: a number of seconds above 0, got nan",
        ),
        (
            "[routing]\nrecency_window_days = 0",
            "routing.recency_window_days: a number above 0, got 0",
        ),
        (
            "[streaming]\nheartbeat_interval_s = 0",
            "streaming.heartbeat_interval_s: a number of seconds above 0 and below 20, got 0 (some assistants give up after 20 s of silence)",
        ),
        (
            "[dialects.responses]\nstore_cap = 0",
            "dialects.responses.store_cap: a whole number of at least 1, got 0",
        ),
        (
            '[server]\napi_key = " "',
            "server.api_key: a non-empty string (or leave it out), got ' '",
        ),
    ],
)
def test_an_out_of_range_value_names_the_range_and_the_value(text: str, message: str) -> None:
    assert error(text) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            SIM
            + '[[providers]]\nname = "g"\nkind = "openai"\nbase_url = "http://x"\napi_keys = ["a", 3]',
            "providers[1].api_keys[1]: a string, got a whole number",
        ),
        (
            '[[providers]]\nname = "a/b"\nkind = "simulated"',
            "providers[0].name: a non-empty name without '/', got 'a/b'",
        ),
        (
            '[[providers]]\nname = "a"\nkind = "openai"\nbase_url = "ftp://x"\napi_keys = ["k"]',
            "providers[0].base_url: an http:// or https:// URL, got 'ftp://x'",
        ),
        (
            '[[providers]]\nname = "a"\nkind = "opnai"',
            "providers[0].kind: one of 'openai', 'cohere', 'cloudflare', 'gemini', 'simulated', got 'opnai'; did you mean 'openai'?",
        ),
        ('[[providers]]\nkind = "simulated"', "providers[0].name: a value (this key is required)"),
        (SIM + '[[models]]\nprovider = "s"\nid = ""', "models[0].id: a non-empty model id, got ''"),
        (
            SIM + MODEL + "intelligence = 11",
            "models[0].intelligence: a whole number from 1 to 10, got 11",
        ),
        (
            SIM + MODEL + 'pool = "fats"',
            "models[0].pool: one of 'fast', 'balanced', 'smart', got 'fats'; did you mean 'fast'?",
        ),
        (
            SIM + MODEL + MODEL.replace('"m"', '"n"') + "simulate = { error_rate = 2 }",
            "models[1].simulate.error_rate: a number from 0 to 1, got 2",
        ),
        (
            SIM + MODEL + "simulate = { reply_tokens = 0 }",
            "models[0].simulate.reply_tokens: a whole number of at least 1, got 0",
        ),
        (
            SIM + MODEL + "simulate = { tokens_per_s = -1 }",
            "models[0].simulate.tokens_per_s: a number above 0, got -1",
        ),
    ],
)
def test_a_mistake_in_a_providers_or_models_entry_names_its_index(text: str, message: str) -> None:
    assert error(text) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[routing]\nmax_attemps = 3",
            "routing.max_attemps: a known key (one of: concurrency_guard, hedge, hedge_margin, hedge_min_s, max_attempts, max_quota_wait_s, max_retry_after_wait_s, prior, provider_ban_ttl_s, rate_limit_cooldown_s, recency_window_days, request_timeout_s, seed, sticky_cap, sticky_ttl_s, strategy, transient_cooldown_s); did you mean 'max_attempts'?",
        ),
        (
            "[server]\nzzz = 1",
            "server.zzz: a known key (one of: api_key, host, port, shutdown_grace_s)",
        ),
        (
            "rooting = 1",
            "rooting: a known key (one of: clients, cluster, dialects, health, models, providers, routing, server, streaming); did you mean 'routing'?",
        ),
        (
            SIM + 'api_kyes = ["k"]',
            "providers[0].api_kyes: a known key (one of: api_keys, base_url, continuation, daily_reset, kind, limits, limits_scope, name, protection); did you mean 'api_keys'?",
        ),
        (
            SIM + MODEL + "simulate = { eror_rate = 0.1 }",
            "models[0].simulate.eror_rate: a known key (one of: error_rate, first_token_ms, rate_limit_rate, reply_tokens, seed, stall_rate, tokens_per_s, wrapped_error_rate); did you mean 'error_rate'?",
        ),
        (
            '[[providers]]\npreset = "grok"',
            "providers[0].preset: one of cerebras, cloudflare, cohere, deepseek, fireworks, gemini, github, groq, mistral, nvidia, ollama, openrouter, sambanova, together, zhipu, got 'grok'; did you mean 'groq'?",
        ),
    ],
)
def test_an_unknown_key_is_refused_with_the_known_ones_and_a_close_match(
    text: str, message: str
) -> None:
    assert error(text) == message


@pytest.mark.parametrize(
    ("text", "key"),
    [('source = "x"', "source"), (SIM + 'missing_env = ["X"]', "providers[0].missing_env")],
)
def test_fields_the_loader_fills_in_cannot_be_set_from_the_file(text: str, key: str) -> None:
    assert error(text).startswith(f"{key}: a known key (one of: ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[server]\nhost = "env:NOPE"', "server.host: environment variable NOPE to be set"),
        (
            '[[providers]]\nname = "a"\nkind = "openai"\nbase_url = "env:NOPE"\napi_keys = ["k"]',
            "providers[0].base_url: environment variable NOPE to be set",
        ),
        (
            "[dialects.anthropic.models]\n'claude*' = 'env:NOPE'",
            "dialects.anthropic.models.claude*: environment variable NOPE to be set",
        ),
    ],
)
def test_an_unset_variable_where_a_value_is_needed_names_the_variable(
    text: str, message: str
) -> None:
    assert error(text) == message
    assert error(text, {"NOPE": ""}) == message  # empty counts as unset


def test_an_unset_key_variable_leaves_the_key_out_and_is_reported() -> None:
    text = '[server]\napi_key = "env:CLIENT"\n' + (
        '[[providers]]\nname = "g"\nkind = "openai"\nbase_url = "http://x"\n'
        'api_keys = ["env:A", "k2", "env:B"]'
    )
    settings = parse_settings(text, environ={"B": "k3"})
    assert settings.server.api_key is None
    assert settings.providers[0].api_keys == ("k2", "k3")
    assert settings.providers[0].missing_env == ("A",)


def test_a_later_key_keeps_its_index_in_the_file_after_an_unset_one_drops_out() -> None:
    text = (
        '[[providers]]\nname = "g"\nkind = "openai"\nbase_url = "http://x"\napi_keys = ["env:A", 3]'
    )
    assert error(text) == "providers[0].api_keys[1]: a string, got a whole number"


def test_a_value_read_from_the_environment_is_checked_like_one_in_the_file() -> None:
    text = '[server]\napi_key = "env:K"\n[[providers]]\nname = "env:P"\nkind = "simulated"'
    assert error(text, {"K": " ", "P": "x"}) == (
        "server.api_key: a non-empty string (or leave it out), got ' '"
    )
    assert error(text, {"K": "k", "P": "a/b"}) == (
        "providers[0].name: a non-empty name without '/', got 'a/b'"
    )


def test_the_environment_given_is_the_only_one_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIENT_KEY", "from-os")
    text = '[server]\napi_key = "env:CLIENT_KEY"'
    assert parse_settings(text, environ={"CLIENT_KEY": "given"}).server.api_key == "given"
    assert parse_settings(text, environ={}).server.api_key is None
    assert parse_settings(text).server.api_key == "from-os"  # the default is os.environ


def test_defaults_and_ints_for_floats_survive_the_conversion() -> None:
    settings = parse_settings("[routing]\nsticky_ttl_s = 60\n[server]\nport = 0", environ={})
    assert settings.routing.sticky_ttl_s == 60.0 and isinstance(
        settings.routing.sticky_ttl_s, float
    )
    assert settings.server.port == 0
    assert settings.routing.max_attempts == 5
    assert settings.dialects.anthropic.models == {"claude-haiku*": "auto-fast", "*": "auto"}


KEYS = [
    "server", "routing", "streaming", "dialects", "providers", "models", "anthropic", "responses",
    "port", "host", "api_key", "max_attempts", "strategy", "seed", "heartbeat_interval_s",
    "name", "kind", "base_url", "api_keys", "provider", "id", "pool", "simulate", "error_rate",
    "preset", "zzz",
]  # fmt: skip
SCALARS = st.one_of(
    st.integers(-(2**63), 2**63 - 1), st.floats(), st.booleans(), st.text(max_size=8),
    st.sampled_from(["env:UNSET", "simulated", "openai", "fast", "groq", "http://x", "a:b"]),
)  # fmt: skip
DOCS = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=20,
)


@hypothesis.settings(max_examples=400, deadline=None)
@hypothesis.given(st.dictionaries(st.sampled_from(KEYS), DOCS, max_size=4))
def test_any_document_gives_settings_or_a_config_error_never_a_traceback(
    raw: dict[str, Any],
) -> None:
    try:
        settings_from_dict(raw, source="fuzz", environ={})
    except ConfigError as exc:
        assert str(exc).startswith("config error in fuzz: ")


def _as_document(settings: Settings) -> dict[str, Any]:
    """Settings back to the tables a file would hold (without the loader's own fields)."""
    document: dict[str, Any] = msgspec.to_builtins(settings)
    del document["source"]
    for provider in document["providers"]:
        del provider["missing_env"]
    return document


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(st.from_type(Settings).map(_as_document))
def test_any_well_shaped_document_gives_settings_or_a_config_error(raw: dict[str, Any]) -> None:
    """Right types, any values: every range and cross-field rule answers with a ConfigError."""
    try:
        settings_from_dict(raw, source="fuzz", environ={})
    except ConfigError as exc:
        assert str(exc).startswith("config error in fuzz: ")
