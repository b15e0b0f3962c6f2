"""What each coding assistant needs to use the gateway: one small entry per client.

An entry says where the client keeps its config (honouring the variables the client itself
reads: `CODEX_HOME`, `XDG_CONFIG_HOME`, `CLAUDE_CONFIG_DIR`, ...) and, for a gateway `Target`,
which environment lines, config keys, steps and command it takes. Where a client reads the key
from an environment variable, the key stays out of its file and the `export` line is printed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .files import JSON, TOML, YAML_FORMAT, Format, Merge, MergeKeys, UpsertEntries

KEY_ENV = "TUI_GATEWAY_API_KEY"
"""The variable clients read the key from; the starter config's `server.api_key` reads it too."""
NAME = "tui-gateway"
"""The provider, profile and key name given to the gateway in every client's config."""


@dataclass(frozen=True, slots=True)
class Target:
    """The gateway a client is pointed at."""

    base_url: str
    """`http://HOST:PORT`, without `/v1` (Anthropic clients add their own path)."""
    api_key: str

    @property
    def v1(self) -> str:
        """The OpenAI-compatible base URL."""
        return f"{self.base_url}/v1"


@dataclass(frozen=True, slots=True)
class Where:
    """Where a client looks for its files: the environment and home directory it runs with."""

    home: Path
    environ: Mapping[str, str] = field(default_factory=dict)
    platform: str = "linux"

    def dir_from(self, variable: str, default: Path) -> Path:
        """The directory `variable` names, else `default`; an empty or relative value is ignored."""
        value = self.environ.get(variable, "")
        return (
            Path(value).expanduser()
            if value and Path(value).expanduser().is_absolute()
            else default
        )

    def xdg_config(self) -> Path:
        return self.dir_from("XDG_CONFIG_HOME", self.home / ".config")

    def tilde(self, path: Path) -> str:
        """`~/.codex/config.toml` for a path under the home directory, to keep output short."""
        try:
            return "~/" + path.relative_to(self.home).as_posix()
        except ValueError:
            return str(path)


EnvLines = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """A file `--write` merges settings into."""

    path: Path
    format: Format
    merge: Merge
    secret: bool = False
    """The merge puts the gateway key in the file (the client cannot read it from elsewhere)."""
    env: EnvLines = ()
    """What the client still needs in its environment with the file in place (the key)."""
    run: str | None = None
    """The command to start the client with once the file is in place, if not `Plan.run`."""


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything one client needs, for one gateway."""

    env: EnvLines = ()
    """Environment lines that set the client up on their own (without the file)."""
    file: ConfigFile | None = None
    steps: tuple[str, ...] = ()
    """Things to do by hand, in order (settings screens, a key store)."""
    run: str | None = None
    """The command to start the client with."""
    notes: tuple[str, ...] = ()
    cannot_write: str = ""
    """Why `--write` has nothing to write, for clients without a file of their own."""


@dataclass(frozen=True, slots=True)
class Client:
    name: str
    """What the user types: `tui-gateway setup NAME`."""
    title: str
    plan: Callable[[Target, Where], Plan]
    path: Callable[[Where], Path] | None = None
    """The config file `--write` merges into, if the client has one."""
    elsewhere: str = "environment variables"
    """Where its settings go instead, for the listing, when it has no such file."""


# --- Claude Code ------------------------------------------------------------------------------


def _claude_path(where: Where) -> Path:
    return where.dir_from("CLAUDE_CONFIG_DIR", where.home / ".claude") / "settings.json"


def _claude(target: Target, where: Where) -> Plan:
    env = (
        ("ANTHROPIC_BASE_URL", target.base_url),  # Claude Code adds /v1/messages itself
        ("ANTHROPIC_AUTH_TOKEN", target.api_key),  # sent as a bearer token, as the gateway wants
        ("ANTHROPIC_MODEL", "auto"),
        ("ANTHROPIC_SMALL_FAST_MODEL", "auto-fast"),
        ("ANTHROPIC_DEFAULT_HAIKU_MODEL", "auto-fast"),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
    )
    notes = (
        "--write puts the key in the file too: Claude Code reads it from there or its environment.",
    )
    merge = MergeKeys({"env": dict(env)})
    return Plan(
        env=env,
        file=ConfigFile(_claude_path(where), JSON, merge, secret=True),
        run="claude",
        notes=notes,
    )


# --- Codex CLI --------------------------------------------------------------------------------


def _codex_path(where: Where) -> Path:
    # A profile file of its own: Codex 0.171 refuses `--profile` while config.toml holds a
    # `[profiles.NAME]` table, and reads the profile (provider table included) from here.
    return where.dir_from("CODEX_HOME", where.home / ".codex") / f"{NAME}.config.toml"


def _codex(target: Target, where: Where) -> Plan:
    merge = MergeKeys(
        {
            "model_provider": NAME,
            "model": "auto",
            "model_providers": {
                NAME: {
                    "name": NAME,
                    "base_url": target.v1,
                    "wire_api": "responses",  # Codex speaks only the Responses API
                    "env_key": KEY_ENV,
                }
            },
        }
    )
    return Plan(
        file=ConfigFile(_codex_path(where), TOML, merge, env=((KEY_ENV, target.api_key),)),
        run=f"codex --profile {NAME}",
    )


# --- opencode ---------------------------------------------------------------------------------


def _opencode_path(where: Where) -> Path:
    custom = where.environ.get("OPENCODE_CONFIG", "")
    if custom:
        return Path(custom).expanduser()
    return where.xdg_config() / "opencode" / "opencode.json"


def _opencode(target: Target, where: Where) -> Plan:
    merge = MergeKeys(
        {
            "provider": {
                NAME: {
                    "npm": "@ai-sdk/openai-compatible",
                    "name": NAME,
                    "options": {"baseURL": target.v1, "apiKey": f"{{env:{KEY_ENV}}}"},
                    "models": {"auto": {}, "auto-fast": {}, "auto-smart": {}},
                }
            }
        },
        initial={"$schema": "https://opencode.ai/config.json"},
    )
    return Plan(
        file=ConfigFile(_opencode_path(where), JSON, merge, env=((KEY_ENV, target.api_key),)),
        run=f'opencode -m {NAME}/auto   (one prompt: opencode run -m {NAME}/auto "...")',
    )


# --- Qwen Code --------------------------------------------------------------------------------


def _qwen(target: Target, where: Where) -> Plan:
    return Plan(
        env=(
            ("OPENAI_BASE_URL", target.v1),
            ("OPENAI_API_KEY", target.api_key),
            ("OPENAI_MODEL", "auto"),
        ),
        run="qwen --auth-type openai",
        cannot_write="Qwen Code reads these from its environment; export them where you run qwen",
    )


# --- aider ------------------------------------------------------------------------------------


def _aider_path(where: Where) -> Path:
    return where.home / ".aider.conf.yml"


def _aider(target: Target, where: Where) -> Plan:
    merge = MergeKeys({"model": "openai/auto", "openai-api-base": target.v1})
    return Plan(
        env=(("OPENAI_API_BASE", target.v1), ("OPENAI_API_KEY", target.api_key)),
        file=ConfigFile(
            _aider_path(where),
            YAML_FORMAT,
            merge,
            env=(("OPENAI_API_KEY", target.api_key),),
            run="aider",
        ),
        run="aider --model openai/auto",
        notes=(
            "Or all in one command: aider --model openai/auto "
            f"--openai-api-base {target.v1} --openai-api-key {target.api_key}",
        ),
    )


# --- Continue ---------------------------------------------------------------------------------


def _continue_path(where: Where) -> Path:
    return where.dir_from("CONTINUE_GLOBAL_DIR", where.home / ".continue") / "config.yaml"


def _continue(target: Target, where: Where) -> Plan:
    entry = {
        "name": f"{NAME} auto",
        "provider": "openai",
        "model": "auto",
        "apiBase": target.v1,
        "apiKey": target.api_key,
    }
    merge = UpsertEntries(
        id_key="name",
        entries=(entry,),
        list_key="models",
        initial={"name": "Local Assistant", "version": "1.0.0", "schema": "v1"},
    )
    return Plan(
        file=ConfigFile(_continue_path(where), YAML_FORMAT, merge, secret=True),
        steps=(f'In Continue\'s model menu, pick "{NAME} auto" (it reloads config.yaml itself).',),
    )


# --- Cline ------------------------------------------------------------------------------------


def _cline(target: Target, where: Where) -> Plan:
    return Plan(
        steps=(
            "Open Cline's settings (the gear at the top of its panel in VS Code).",
            'API Provider: "OpenAI Compatible"',
            f"Base URL: {target.v1}",
            f"API Key: {target.api_key}",
            "Model ID: auto   (or auto-fast, auto-smart)",
        ),
        cannot_write="Cline keeps its settings inside VS Code, not in a file tui-gateway can edit",
    )


# --- llm --------------------------------------------------------------------------------------


def _llm_path(where: Where) -> Path:
    custom = where.environ.get("LLM_USER_PATH", "")
    if custom:
        base = Path(custom).expanduser()
    elif where.platform == "darwin":  # click.get_app_dir, as llm uses it
        base = where.home / "Library" / "Application Support" / "io.datasette.llm"
    elif where.platform == "win32":
        base = Path(where.environ.get("APPDATA") or where.home) / "io.datasette.llm"
    else:
        base = where.xdg_config() / "io.datasette.llm"
    return base / "extra-openai-models.yaml"


def _llm(target: Target, where: Where) -> Plan:
    entries = tuple(
        {
            "model_id": f"{NAME}-{model}",
            "model_name": model,
            "api_base": target.v1,
            "api_key_name": NAME,  # without it llm sends a dummy key
        }
        for model in ("auto", "auto-fast", "auto-smart")
    )
    return Plan(
        file=ConfigFile(_llm_path(where), YAML_FORMAT, UpsertEntries("model_id", entries)),
        steps=(f"llm keys set {NAME} --value {target.api_key}",),
        run=f'llm -m {NAME}-auto "hello"',
    )


# --- any OpenAI SDK ---------------------------------------------------------------------------


def _env(target: Target, where: Where) -> Plan:
    return Plan(
        env=(("OPENAI_BASE_URL", target.v1), ("OPENAI_API_KEY", target.api_key)),
        cannot_write='these are environment lines; use eval "$(tui-gateway setup env)"',
    )


CLIENTS: tuple[Client, ...] = (
    Client("claude", "Claude Code", _claude, _claude_path),
    Client("codex", "Codex CLI", _codex, _codex_path),
    Client("opencode", "opencode", _opencode, _opencode_path),
    Client("qwen", "Qwen Code", _qwen),
    Client("aider", "aider", _aider, _aider_path),
    Client("continue", "Continue", _continue, _continue_path),
    Client("cline", "Cline (VS Code)", _cline, elsewhere="its settings in VS Code, by hand"),
    Client("llm", "llm", _llm, _llm_path),
    Client("env", "the OpenAI SDK and tools built on it", _env),
)
