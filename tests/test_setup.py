"""`tui-gateway setup`: each client's lines, and `--write` merging into the client's own file."""

from __future__ import annotations

import json
import os
import stat
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from tui_gateway import paths
from tui_gateway.cli import app

runner = CliRunner()

KEY = "tgw-test-key-123"
URL = "http://127.0.0.1:4242"
V1 = f"{URL}/v1"
CLIENT_VARIABLES = (
    "CODEX_HOME",
    "CLAUDE_CONFIG_DIR",
    "CONTINUE_GLOBAL_DIR",
    "LLM_USER_PATH",
    "OPENCODE_CONFIG",
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME; the clients' own directory variables unset (XDG dirs: conftest)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in CLIENT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def gateway_config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(f'[server]\nport = 4242\napi_key = "{KEY}"\n', encoding="utf-8")
    return path


def setup(config: Path, *args: str) -> Any:
    return runner.invoke(app, ["setup", *args, "--config", str(config)])


def xdg_config() -> Path:
    return Path(os.environ["XDG_CONFIG_HOME"])


def read_yaml(path: Path) -> Any:
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


def backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.bak-*"))


# --- listing and printing ---------------------------------------------------------------------


def test_setup_alone_lists_every_client_with_its_file(home: Path) -> None:
    result = runner.invoke(app, ["setup"])
    assert result.exit_code == 0, result.output
    names = [line.split()[0] for line in result.output.splitlines()[1:]]
    assert names == [
        "claude",
        "codex",
        "opencode",
        "qwen",
        "aider",
        "continue",
        "cline",
        "llm",
        "env",
    ]
    assert "~/.codex/tui-gateway.config.toml" in result.output
    assert "~/.claude/settings.json" in result.output
    assert str(xdg_config() / "opencode" / "opencode.json") in result.output


def test_unknown_client_names_the_known_ones_and_exits_2(home: Path, gateway_config: Path) -> None:
    result = setup(gateway_config, "cursor")
    assert result.exit_code == 2
    assert "unknown client 'cursor'; known clients: claude, codex, opencode" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("client", "expected"),
    [
        (
            "claude",
            [
                f"export ANTHROPIC_BASE_URL={URL}\n",  # no /v1: Claude Code adds its own path
                f"export ANTHROPIC_AUTH_TOKEN={KEY}",
                "export ANTHROPIC_MODEL=auto",
                "export ANTHROPIC_SMALL_FAST_MODEL=auto-fast",
                "export ANTHROPIC_DEFAULT_HAIKU_MODEL=auto-fast",
                "export CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
                "~/.claude/settings.json",
                "then run: claude",
            ],
        ),
        (
            "codex",
            [
                "~/.codex/tui-gateway.config.toml",
                'model_provider = "tui-gateway"',
                'model = "auto"',
                "[model_providers.tui-gateway]",
                f'base_url = "{V1}"',
                'wire_api = "responses"',
                'env_key = "TUI_GATEWAY_API_KEY"',
                f"export TUI_GATEWAY_API_KEY={KEY}",
                "then run: codex --profile tui-gateway",
            ],
        ),
        (
            "opencode",
            [
                '"npm": "@ai-sdk/openai-compatible"',
                f'"baseURL": "{V1}"',
                '"apiKey": "{env:TUI_GATEWAY_API_KEY}"',
                '"auto-smart": {}',
                f"export TUI_GATEWAY_API_KEY={KEY}",
                "opencode run -m tui-gateway/auto",
            ],
        ),
        (
            "qwen",
            [
                f"export OPENAI_BASE_URL={V1}",
                f"export OPENAI_API_KEY={KEY}",
                "export OPENAI_MODEL=auto",
                "then run: qwen --auth-type openai",
            ],
        ),
        (
            "aider",
            [
                f"export OPENAI_API_BASE={V1}",
                f"export OPENAI_API_KEY={KEY}",
                f"aider --model openai/auto --openai-api-base {V1} --openai-api-key {KEY}",
                "~/.aider.conf.yml",
                "model: openai/auto",
                f"openai-api-base: {V1}",
            ],
        ),
        (
            "continue",
            [
                "~/.continue/config.yaml",
                "- name: tui-gateway auto",
                "provider: openai",
                "model: auto",
                f"apiBase: {V1}",
                f"apiKey: {KEY}",
            ],
        ),
        (
            "cline",
            [
                'API Provider: "OpenAI Compatible"',
                f"Base URL: {V1}",
                f"API Key: {KEY}",
                "Model ID: auto",
            ],
        ),
        (
            "llm",
            [
                "io.datasette.llm/extra-openai-models.yaml",
                "- model_id: tui-gateway-auto\n",
                "model_name: auto\n",
                f"api_base: {V1}",
                "api_key_name: tui-gateway",
                f"llm keys set tui-gateway --value {KEY}",
            ],
        ),
    ],
)
def test_each_client_prints_what_it_needs_with_the_gateway_url_and_key(
    home: Path, gateway_config: Path, client: str, expected: list[str]
) -> None:
    result = setup(gateway_config, client)
    assert result.exit_code == 0, result.output
    for text in expected:
        assert text in result.output
    assert list(home.iterdir()) == []  # showing writes nothing


def test_env_prints_only_the_two_export_lines_so_eval_works(
    home: Path, gateway_config: Path
) -> None:
    result = setup(gateway_config, "env")
    assert result.exit_code == 0
    assert result.stdout == f"export OPENAI_BASE_URL={V1}\nexport OPENAI_API_KEY={KEY}\n"


def test_host_and_port_options_override_the_config(home: Path, gateway_config: Path) -> None:
    result = setup(gateway_config, "env", "--host", "0.0.0.0", "--port", "5001")
    assert (
        "export OPENAI_BASE_URL=http://127.0.0.1:5001/v1\n" in result.stdout
    )  # every interface: loopback
    ipv6 = setup(gateway_config, "env", "--host", "::1")
    assert "export OPENAI_BASE_URL='http://[::1]:4242/v1'" in ipv6.stdout


def test_main_command_options_before_setup_apply_too(home: Path, gateway_config: Path) -> None:
    result = runner.invoke(app, ["--config", str(gateway_config), "--port", "5002", "setup", "env"])
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"export OPENAI_BASE_URL=http://127.0.0.1:5002/v1\nexport OPENAI_API_KEY={KEY}\n"
    )


def test_without_a_config_the_defaults_and_the_generated_key_are_used(home: Path) -> None:
    result = runner.invoke(app, ["setup", "env"])
    assert result.exit_code == 0, result.output
    key = paths.generated_api_key()
    assert result.stdout == (
        f"export OPENAI_BASE_URL=http://127.0.0.1:4141/v1\nexport OPENAI_API_KEY={key}\n"
    )
    assert "no config at" in result.stderr and "tui-gateway init" in result.stderr


def test_port_zero_cannot_be_pointed_at(home: Path, gateway_config: Path) -> None:
    result = setup(gateway_config, "env", "--port", "0")
    assert result.exit_code == 2
    assert "port is 0" in result.output and "--port N" in result.output
    assert "Traceback" not in result.output


def test_a_broken_gateway_config_is_reported_not_raised(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nport = 'x'\n", encoding="utf-8")
    result = setup(bad, "codex", "--write")
    assert result.exit_code == 2
    assert f"config error in {bad}: server.port" in result.output
    assert not (home / ".codex").exists()


# --- --write: one case per client with a file -------------------------------------------------


class Case:
    """One client's file: where it is, a user's file to merge into, and what to check after."""

    def __init__(
        self,
        client: str,
        path: Callable[[Path], Path],
        existing: str,
        kept: list[str],
        parse: Callable[[Path], Any],
        check: Callable[[Any], None],
        check_kept: Callable[[Any], None],
        broken: str,
    ) -> None:
        self.client = client
        self.path = path
        self.existing = existing
        self.kept = kept
        self.parse = parse
        self.check = check
        self.check_kept = check_kept
        self.broken = broken

    def __repr__(self) -> str:
        return self.client


def _check_claude(data: Any) -> None:
    env = data["env"]
    assert env["ANTHROPIC_BASE_URL"] == URL
    assert env["ANTHROPIC_AUTH_TOKEN"] == KEY
    assert env["ANTHROPIC_MODEL"] == "auto"
    assert env["ANTHROPIC_SMALL_FAST_MODEL"] == "auto-fast"
    assert env["ANTHROPIC_DEFAULT_HAIKU_MODEL"] == "auto-fast"
    assert env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"


def _check_claude_kept(data: Any) -> None:
    assert data["permissions"] == {"allow": ["Bash(ls:*)"]}
    assert data["env"]["MY_VAR"] == "mine"


def _check_codex(data: Any) -> None:
    assert data["model_providers"]["tui-gateway"] == {
        "name": "tui-gateway",
        "base_url": V1,
        "wire_api": "responses",
        "env_key": "TUI_GATEWAY_API_KEY",
    }
    assert (data["model_provider"], data["model"]) == ("tui-gateway", "auto")
    assert "profiles" not in data  # Codex 0.171 refuses --profile with a [profiles.*] table


def _check_codex_kept(data: Any) -> None:
    assert data["approval_policy"] == "never"
    assert data["model_providers"]["other"] == {"name": "other", "base_url": "http://other/v1"}


def _check_opencode(data: Any) -> None:
    provider = data["provider"]["tui-gateway"]
    assert provider["npm"] == "@ai-sdk/openai-compatible"
    assert provider["options"] == {"baseURL": V1, "apiKey": "{env:TUI_GATEWAY_API_KEY}"}
    assert set(provider["models"]) >= {"auto", "auto-fast", "auto-smart"}
    assert KEY not in json.dumps(data)  # the key stays in the environment


def _check_opencode_kept(data: Any) -> None:
    assert data["theme"] == "tokyonight"
    assert data["provider"]["ollama"]["options"]["baseURL"] == "http://localhost:11434/v1"


def _check_aider(data: Any) -> None:
    assert data["model"] == "openai/auto"
    assert data["openai-api-base"] == V1
    assert "openai-api-key" not in data  # read from OPENAI_API_KEY instead


def _check_aider_kept(data: Any) -> None:
    assert data["auto-commits"] is False
    assert data["dark-mode"] is True


def _check_continue(data: Any) -> None:
    ours = [m for m in data["models"] if m["name"] == "tui-gateway auto"]
    assert ours == [
        {
            "name": "tui-gateway auto",
            "provider": "openai",
            "model": "auto",
            "apiBase": V1,
            "apiKey": KEY,
        }
    ]
    assert {"name", "version", "schema"} <= set(data)


def _check_continue_kept(data: Any) -> None:
    assert data["name"] == "My Assistant"
    assert data["models"][0] == {"name": "gpt-4o", "provider": "openai", "model": "gpt-4o"}
    assert data["context"] == [{"provider": "code"}]


def _check_llm(data: Any) -> None:
    ours = {e["model_id"]: e for e in data if e["model_id"].startswith("tui-gateway")}
    assert set(ours) == {"tui-gateway-auto", "tui-gateway-auto-fast", "tui-gateway-auto-smart"}
    assert ours["tui-gateway-auto"] == {
        "model_id": "tui-gateway-auto",
        "model_name": "auto",
        "api_base": V1,
        "api_key_name": "tui-gateway",
    }


def _check_llm_kept(data: Any) -> None:
    assert data[0] == {
        "model_id": "local",
        "model_name": "llama3",
        "api_base": "http://localhost:8080/v1",
    }


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _toml(path: Path) -> Any:
    return tomllib.loads(path.read_text(encoding="utf-8"))


CASES = [
    Case(
        "claude",
        lambda home: home / ".claude" / "settings.json",
        '{\n  "permissions": {"allow": ["Bash(ls:*)"]},\n  "env": {"MY_VAR": "mine"}\n}\n',
        ['"MY_VAR": "mine"', '"Bash(ls:*)"'],
        _json,
        _check_claude,
        _check_claude_kept,
        '{"env": {"A": 1},}',
    ),
    Case(
        "codex",
        lambda home: home / ".codex" / "tui-gateway.config.toml",
        '# my codex profile\napproval_policy = "never"  # the one I like\n\n'
        '[model_providers.other]\nname = "other"\nbase_url = "http://other/v1"  # keep me\n',
        ["# my codex profile", 'approval_policy = "never"  # the one I like', "# keep me"],
        _toml,
        _check_codex,
        _check_codex_kept,
        "[profiles\nmodel = 1\n",
    ),
    Case(
        "opencode",
        lambda home: xdg_config() / "opencode" / "opencode.json",
        '{"theme": "tokyonight", "provider": {"ollama": {"npm": "@ai-sdk/openai-compatible", '
        '"options": {"baseURL": "http://localhost:11434/v1"}, "models": {"llama3": {}}}}}',
        ['"theme": "tokyonight"', '"llama3": {}'],
        _json,
        _check_opencode,
        _check_opencode_kept,
        "{theme: tokyonight}",
    ),
    Case(
        "aider",
        lambda home: home / ".aider.conf.yml",
        "# aider settings\nauto-commits: false  # I commit myself\ndark-mode: true\nmodel: gpt-4o\n",
        ["# aider settings", "auto-commits: false  # I commit myself", "dark-mode: true"],
        read_yaml,
        _check_aider,
        _check_aider_kept,
        "model: [unclosed\n",
    ),
    Case(
        "continue",
        lambda home: home / ".continue" / "config.yaml",
        "name: My Assistant  # mine\nversion: 0.0.1\nschema: v1\nmodels:\n"
        "  - name: gpt-4o  # the paid one\n    provider: openai\n    model: gpt-4o\n"
        "context:\n  - provider: code\n",
        ["name: My Assistant  # mine", "  - name: gpt-4o  # the paid one", "  - provider: code"],
        read_yaml,
        _check_continue,
        _check_continue_kept,
        "models:\n  - name: a\n   bad: indent\n",
    ),
    Case(
        "llm",
        lambda home: xdg_config() / "io.datasette.llm" / "extra-openai-models.yaml",
        "# my local models\n- model_id: local\n  model_name: llama3  # via llama.cpp\n"
        "  api_base: http://localhost:8080/v1\n",
        ["# my local models", "  model_name: llama3  # via llama.cpp"],
        read_yaml,
        _check_llm,
        _check_llm_kept,
        "- model_id: a\n  - b: [\n",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_write_creates_the_missing_file_and_a_second_run_changes_nothing(
    home: Path, gateway_config: Path, case: Case
) -> None:
    path = case.path(home)
    result = setup(gateway_config, case.client, "--write")
    assert result.exit_code == 0, result.output
    assert "created" in result.output
    case.check(case.parse(path))
    written = path.read_bytes()
    again = setup(gateway_config, case.client, "--write")
    assert again.exit_code == 0, again.output
    assert "already has these settings; nothing changed" in again.output
    assert path.read_bytes() == written
    assert backups(path) == []


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_write_merges_keeping_the_users_settings_and_comments_with_a_backup(
    home: Path, gateway_config: Path, case: Case
) -> None:
    path = case.path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(case.existing, encoding="utf-8")
    result = setup(gateway_config, case.client, "--write")
    assert result.exit_code == 0, result.output
    data = case.parse(path)
    case.check(data)
    case.check_kept(data)
    text = path.read_text(encoding="utf-8")
    for line in case.kept:
        assert line in text
    [backup] = backups(path)
    assert backup.read_text(encoding="utf-8") == case.existing
    assert backup.name in result.output  # the user is told where the old file went
    merged = path.read_bytes()
    again = setup(gateway_config, case.client, "--write")
    assert "nothing changed" in again.output
    assert path.read_bytes() == merged
    assert backups(path) == [backup]  # no second backup when nothing changes


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_write_refuses_a_file_that_does_not_parse_and_leaves_it_alone(
    home: Path, gateway_config: Path, case: Case
) -> None:
    path = case.path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(case.broken, encoding="utf-8")
    result = setup(gateway_config, case.client, "--write")
    assert result.exit_code == 2
    assert str(path) in result.output and "is not valid" in result.output
    assert "left it unchanged" in result.output
    assert "Traceback" not in result.output
    assert path.read_text(encoding="utf-8") == case.broken
    assert backups(path) == []


def test_codex_write_goes_to_codex_home(
    home: Path, gateway_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    codex_home = tmp_path / "codex-home"
    monkeypatch.setenv("CODEX_HOME", str(codex_home))
    shown = setup(gateway_config, "codex")
    assert str(codex_home / "tui-gateway.config.toml") in shown.output
    result = setup(gateway_config, "codex", "--write")
    assert result.exit_code == 0, result.output
    _check_codex(_toml(codex_home / "tui-gateway.config.toml"))
    assert not (home / ".codex").exists()


def test_codex_write_updates_our_table_and_keeps_keys_the_user_added_to_it(
    home: Path, gateway_config: Path
) -> None:
    path = home / ".codex" / "tui-gateway.config.toml"
    path.parent.mkdir()
    path.write_text(
        '[model_providers.tui-gateway]\nname = "tui-gateway"\nbase_url = "http://127.0.0.1:9/v1"\n'
        "request_max_retries = 1  # mine\n",
        encoding="utf-8",
    )
    assert setup(gateway_config, "codex", "--write").exit_code == 0
    provider = _toml(path)["model_providers"]["tui-gateway"]
    assert provider["base_url"] == V1
    assert provider["request_max_retries"] == 1
    assert "# mine" in path.read_text(encoding="utf-8")


def test_claude_write_refuses_an_env_that_is_not_an_object(
    home: Path, gateway_config: Path
) -> None:
    path = home / ".claude" / "settings.json"
    path.parent.mkdir()
    path.write_text('{"env": "oops"}', encoding="utf-8")
    result = setup(gateway_config, "claude", "--write")
    assert result.exit_code == 2
    assert f"cannot merge into {path}: env is a string" in result.output
    assert path.read_text(encoding="utf-8") == '{"env": "oops"}'


def test_claude_write_respects_claude_config_dir_and_makes_a_new_file_owner_only(
    home: Path, gateway_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    assert setup(gateway_config, "claude", "--write").exit_code == 0
    path = tmp_path / "claude" / "settings.json"
    _check_claude(_json(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds the key


def test_write_keeps_an_existing_files_mode(home: Path, gateway_config: Path) -> None:
    path = home / ".aider.conf.yml"
    path.write_text("dark-mode: true\n", encoding="utf-8")
    path.chmod(0o640)
    assert setup(gateway_config, "aider", "--write").exit_code == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_write_through_a_symlink_keeps_the_link(
    home: Path, gateway_config: Path, tmp_path: Path
) -> None:
    dotfiles = tmp_path / "dotfiles" / "aider.conf.yml"
    dotfiles.parent.mkdir()
    dotfiles.write_text("dark-mode: true\n", encoding="utf-8")
    link = home / ".aider.conf.yml"
    link.symlink_to(dotfiles)
    assert setup(gateway_config, "aider", "--write").exit_code == 0
    assert link.is_symlink()
    _check_aider(read_yaml(dotfiles))
    assert len(backups(dotfiles)) == 1


def test_continue_write_updates_an_entry_of_the_same_name_instead_of_adding_one(
    home: Path, gateway_config: Path
) -> None:
    path = home / ".continue" / "config.yaml"
    path.parent.mkdir()
    path.write_text(
        "name: A\nversion: 1.0.0\nschema: v1\nmodels:\n"
        "  - name: tui-gateway auto\n    provider: openai\n    model: auto\n"
        "    apiBase: http://127.0.0.1:9/v1\n    roles:\n      - chat\n",
        encoding="utf-8",
    )
    assert setup(gateway_config, "continue", "--write").exit_code == 0
    models = read_yaml(path)["models"]
    assert len(models) == 1
    assert models[0]["apiBase"] == V1 and models[0]["apiKey"] == KEY
    assert models[0]["roles"] == ["chat"]  # a key the user added to our entry stays


def test_an_empty_file_is_filled_in(home: Path, gateway_config: Path) -> None:
    path = home / ".continue" / "config.yaml"
    path.parent.mkdir()
    path.write_text("", encoding="utf-8")
    assert setup(gateway_config, "continue", "--write").exit_code == 0
    _check_continue(read_yaml(path))


@pytest.mark.parametrize("client", ["cline", "qwen", "env"])
def test_write_for_a_client_without_a_file_says_so_and_exits_2(
    home: Path, gateway_config: Path, client: str
) -> None:
    result = setup(gateway_config, client, "--write")
    assert result.exit_code == 2
    assert f"nothing to write for {client}" in result.output
    assert f"`tui-gateway setup {client}` shows what to set" in result.output
    assert list(home.iterdir()) == []


@pytest.mark.parametrize(
    ("client", "variable", "file"),
    [
        ("codex", "CODEX_HOME", "tui-gateway.config.toml"),
        ("claude", "CLAUDE_CONFIG_DIR", "settings.json"),
        ("continue", "CONTINUE_GLOBAL_DIR", "config.yaml"),
        ("llm", "LLM_USER_PATH", "extra-openai-models.yaml"),
    ],
)
def test_each_clients_file_follows_the_variable_that_client_reads(
    home: Path,
    gateway_config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    client: str,
    variable: str,
    file: str,
) -> None:
    monkeypatch.setenv(variable, str(tmp_path / "elsewhere"))
    result = setup(gateway_config, client, "--write")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "elsewhere" / file).is_file()
    assert f"created {tmp_path / 'elsewhere' / file}" in result.output


def test_opencode_config_variable_names_the_file_itself(
    home: Path, gateway_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "project-opencode.json"
    monkeypatch.setenv("OPENCODE_CONFIG", str(target))
    assert setup(gateway_config, "opencode", "--write").exit_code == 0
    _check_opencode(_json(target))


def test_opencode_json_with_comments_is_refused_rather_than_stripped(
    home: Path, gateway_config: Path
) -> None:
    path = xdg_config() / "opencode" / "opencode.json"
    path.parent.mkdir(parents=True)
    text = '{\n  // my theme\n  "theme": "tokyonight"\n}\n'
    path.write_text(text, encoding="utf-8")
    result = setup(gateway_config, "opencode", "--write")
    assert result.exit_code == 2
    assert f"{path} is not valid JSON" in result.output
    assert path.read_text(encoding="utf-8") == text
