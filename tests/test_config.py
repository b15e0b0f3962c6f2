"""Config loading: a good file works, every mistake names the file, the key and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui_gateway.config import ConfigError, load_settings, parse_settings, warnings_for
from tui_gateway.starter import STARTER_CONFIG

EXAMPLE = """
[server]
host = "127.0.0.1"
port = 4141
api_key = "env:TUI_GATEWAY_API_KEY"

[routing]
max_attempts = 5

[[providers]]
name = "groq"
kind = "openai"
base_url = "https://api.groq.com/openai/v1"
api_keys = ["env:GROQ_API_KEY"]
protection = "model-skip"

[[models]]
provider = "groq"
id = "llama-3.3-70b-versatile"
pool = "balanced"
enabled = true
"""


def test_the_issue_example_loads_with_env_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUI_GATEWAY_API_KEY", "client-key")
    monkeypatch.setenv("GROQ_API_KEY", "gsk-1")
    settings = parse_settings(EXAMPLE, source="c.toml")
    assert settings.server.api_key == "client-key"
    assert settings.providers[0].api_keys == ("gsk-1",)
    assert settings.models[0].key == "groq/llama-3.3-70b-versatile"
    assert warnings_for(settings) == []


def test_unset_env_keys_warn_instead_of_failing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUI_GATEWAY_API_KEY", raising=False)
    monkeypatch.delenv("GROQ_API_KEY", raising=False)
    settings = parse_settings(EXAMPLE, source="c.toml")
    assert settings.server.api_key is None  # a key is generated instead
    assert not settings.providers[0].usable
    assert warnings_for(settings) == [
        "provider groq: GROQ_API_KEY not set; its models are skipped until it is"
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[server]\nprot = 1",
            "server.prot: a known key (one of: api_key, host, port, shutdown_grace_s)",
        ),
        ('[server]\nport = "4141"', "server.port: a whole number, got a string"),
        ("[server]\nport = 70000", "server.port: a port number from 0 to 65535"),
        ("[routing]\nmax_attempts = 0", "routing.max_attempts: a whole number of at least 1"),
        (
            "[streaming]\nheartbeat_interval_s = 25",
            "streaming.heartbeat_interval_s: a number of seconds above 0 and below 20, got 25 (some assistants give up after 20 s of silence)",
        ),
        (
            '[[providers]]\nname = "a"\nkind = "grpc"',
            "providers[0].kind: one of 'openai', 'cohere', 'cloudflare', 'gemini', 'simulated', got 'grpc'",
        ),
        (
            '[[providers]]\nname = "a"\nkind = "openai"\napi_keys = ["k"]',
            "providers[0].base_url: an http:// or https:// URL",
        ),
        (
            '[[providers]]\nname = "a"\nkind = "openai"\nbase_url = "http://x"',
            "providers[0].api_keys: at least one key",
        ),
        (
            '[[models]]\nprovider = "nope"\nid = "m"',
            "models[0].provider: the name of a [[providers]] entry",
        ),
        (
            '[[providers]]\nname = "s"\nkind = "simulated"\n[[models]]\nprovider = "s"',
            "models[0].id: a value (this key is required)",
        ),
        (
            '[[providers]]\nname = "s"\nkind = "simulated"\n[[models]]\nprovider = "s"\nid = "m"\npool = "huge"',
            "models[0].pool: one of 'fast', 'balanced', 'smart'",
        ),
        (
            '[[providers]]\nname = "s"\nkind = "simulated"\n[[models]]\nprovider = "s"\nid = "m"\nsimulate = { error_rate = 2 }',
            "models[0].simulate.error_rate: a number from 0 to 1",
        ),
        ("models = 3", "models: a list, got a whole number"),
        ("[server\n", "(syntax): valid TOML"),
    ],
)
def test_mistakes_name_file_key_and_expectation(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(text, source="/home/me/config.toml")
    assert str(caught.value).startswith("config error in /home/me/config.toml: ")
    assert message in str(caught.value)


def test_duplicate_model_is_an_error() -> None:
    text = (
        '[[providers]]\nname = "s"\nkind = "simulated"\n'
        + '[[models]]\nprovider = "s"\nid = "m"\n' * 2
    )
    with pytest.raises(ConfigError, match=r"models\[1\].id: a unique model \('s/m' repeats\)"):
        parse_settings(text, source="c.toml")


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.toml: \\(file\\): file not found"):
        load_settings(tmp_path / "nope.toml")


def test_starter_config_is_valid_and_lists_a_chain_per_pool() -> None:
    settings = parse_settings(STARTER_CONFIG, source="starter")
    assert {m.pool for m in settings.models} == {"fast", "balanced", "smart"}


def test_a_preset_fills_in_kind_url_and_key_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "gsk")
    text = '[[providers]]\npreset = "groq"\n[[providers]]\npreset = "ollama"\nname = "local"\n[[models]]\nprovider = "groq"\nid = "m"\n'
    groq, local = parse_settings(text, source="c.toml").providers
    assert (groq.name, groq.kind, groq.base_url, groq.api_keys) == (
        "groq",
        "openai",
        "https://api.groq.com/openai/v1",
        ("gsk",),
    )
    assert (local.name, local.base_url) == ("local", "http://127.0.0.1:11434/v1")


def test_unknown_preset_and_malformed_cloudflare_key_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"providers\[0\].preset: one of .*groq.*got 'grok'"):
        parse_settings('[[providers]]\npreset = "grok"', source="c.toml")
    text = '[[providers]]\nname = "cf"\nkind = "cloudflare"\napi_keys = ["just-a-token"]'
    with pytest.raises(
        ConfigError, match=r"providers\[0\].api_keys\[0\]: expected account_id:api_token"
    ):
        parse_settings(text, source="c.toml")


def test_the_readme_config_example_loads() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    block = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    settings = parse_settings(block, source="README.md")
    assert [p.name for p in settings.providers] == ["groq", "gemini"]
    assert settings.providers[1].kind == "gemini"
