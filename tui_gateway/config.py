"""TOML config -> typed, validated settings.

The dataclasses below are the schema, declared once: each field's type hint (with its range in
`Annotated[..., msgspec.Meta(...)]`) is what `config_convert` checks the file against. Rules that
span fields (unique names, references between tables) are `_check` at the bottom.

Every mistake a user can make in the file becomes a `ConfigError` that names the file, the key and
what was expected; nothing here raises a bare KeyError or TypeError at a user.

The loaders take `environ` (default: the process environment, from `environment.py`, the one
place that reads it), which is where `env:NAME` values come from.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from msgspec import Meta

from .config_clients import ClientSettings, check_clients, plain_http_warning
from .config_cluster import ClusterSettings, cluster_warnings, with_cluster_env
from .config_convert import ConfigError, Converted, convert
from .config_health import HealthSettings
from .config_limits import DailyResetText, LimitSettings, LimitsScope, check_limits
from .config_limits import preset_limits_notes as preset_notes
from .config_presets import with_presets
from .environment import process_environment

__all__ = ["ConfigError"]  # re-exported: callers catch it from here

_INTERNAL = {"internal": True}  # filled in by the loader, never read from the file

ProviderKind = Literal["openai", "cohere", "cloudflare", "gemini", "simulated"]
Protection = Literal["provider-ban", "model-skip", "off"]
PoolName = Literal["fast", "balanced", "smart"]
ContinuationMode = Literal["auto", "prefill", "instruct", "none"]
"""How a broken answer is continued on this provider's (or model's) models: `auto` prefills
unless the model refused a prefill before, then instructs; see proxy/continuation.py."""
Continuation = Literal["prefill", "instruct"]
"""How one continuation is asked for (what `ContinuationMode` resolves to for a model)."""

POOLS: tuple[str, ...] = get_args(PoolName)
PROVIDER_KINDS: tuple[str, ...] = get_args(ProviderKind)
PROTECTION_LEVELS: tuple[str, ...] = get_args(Protection)

AtLeastOne = Annotated[int, Meta(ge=1)]
Seconds = Annotated[float, Meta(gt=0, extra={"expected": "a number of seconds"})]
NonNegative = Annotated[float, Meta(ge=0)]
Fraction = Annotated[float, Meta(ge=0, le=1)]
"""A chance, from 0 (never) to 1 (always)."""


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    """Interface to listen on; loopback by default so nothing else on the network can use it."""
    port: Annotated[int, Meta(ge=0, le=65535, extra={"expected": "a port number"})] = 4141
    api_key: (
        Annotated[
            str, Meta(pattern=r"\S", extra={"expected": "a non-empty string (or leave it out)"})
        ]
        | None
    ) = None
    """The bearer key clients use (with no name; `[[clients]]` gives named ones). None:
    generated once and kept in the data dir."""
    shutdown_grace_s: NonNegative = 5.0
    """How long in-flight requests may run on after SIGINT/SIGTERM before they are cut."""


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    max_attempts: AtLeastOne = 5
    """Upstream attempts per client request, across fallbacks."""
    request_timeout_s: Seconds = 120.0
    """Whole-reply limit for a non-streaming upstream call (headers arrive only at the end)."""
    strategy: Literal["thompson", "ordered"] = "thompson"
    """`thompson`: order candidates by sampled posteriors (the chain position is one term of the
    score); `ordered`: keep each pool's chain order."""
    recency_window_days: Annotated[float, Meta(gt=0)] = 7.0
    """Outcomes older than this no longer count; younger ones weigh linearly more."""
    prior: NonNegative = 2.0
    """Pseudo-counts added to both sides of every model's Beta posterior."""
    sticky_ttl_s: Seconds = 1800.0
    """A conversation stays on its model this long after its last request."""
    sticky_cap: AtLeastOne = 10_000
    """At most this many sessions are remembered (least recently used go first)."""
    max_retry_after_wait_s: NonNegative = 3.0
    """A 429 on the preferred model with a Retry-After up to this is waited out, not switched."""
    max_quota_wait_s: NonNegative = 15.0
    """With every model at its quota (`limits`), a request waits up to this for the first one to
    free, else it is answered 429 with a Retry-After (below 20 s: some assistants give up after
    20 s of silence)."""
    provider_ban_ttl_s: Seconds = 180.0
    """How long a `provider-ban` failure keeps a provider away from that conversation."""
    transient_cooldown_s: Seconds = 15.0
    """A 5xx, connection failure, timeout or stall takes the model out of rotation this long."""
    rate_limit_cooldown_s: Seconds = 60.0
    """A 429 without Retry-After cools that key and model down this long."""
    concurrency_guard: bool = True
    """A new conversation avoids a `provider-ban` provider busy with another conversation."""
    hedge: bool = False
    """A stream whose first byte is late for its model (`hedge_margin` x its usual time) starts
    the next candidate alongside; the first to send content is kept, the other closed. Off by
    default: on free tiers the second call spends quota."""
    hedge_margin: Annotated[float, Meta(ge=1, extra={"expected": "a multiple of at least 1"})] = 1.5
    """How late is late: this many times the model's usual time to first byte. A model without
    enough history is raced at half its first-byte timeout."""
    hedge_min_s: Seconds = 1.0
    """A race never starts sooner than this after the attempt began."""
    seed: int | None = None
    """Seed for the routing draws (reproducible runs); None: seeded from the OS."""


@dataclass(frozen=True, slots=True)
class StreamingSettings:
    first_byte_timeout_s: Seconds = 10.0
    """No headers or first content chunk from the upstream within this time: a pre-stream stall."""
    stall_timeout_s: Seconds = 20.0
    """No upstream data for this long after the first chunk: a mid-stream stall."""
    heartbeat_interval_s: Annotated[
        float,
        Meta(
            gt=0,
            lt=20,
            extra={
                "expected": "a number of seconds",
                "why": "some assistants give up after 20 s of silence",
            },
        ),
    ] = 10.0
    """Keep-alive comment cadence while the upstream is quiet (must stay below 20 s)."""


VIRTUAL_MODEL_NAMES: tuple[str, ...] = ("auto", "auto-fast", "auto-smart")
DEFAULT_ANTHROPIC_MODELS: dict[str, str] = {"claude-haiku*": "auto-fast", "*": "auto"}


@dataclass(frozen=True, slots=True)
class AnthropicDialectSettings:
    models: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ANTHROPIC_MODELS))
    """Model names a Messages client sends (Claude Code's `claude-sonnet-...`) -> the gateway's
    (`auto`, `auto-fast`, `auto-smart` or a configured model): glob keys, first match wins. A name
    the gateway knows itself is used as it is."""


@dataclass(frozen=True, slots=True)
class ResponsesDialectSettings:
    store_ttl_s: Seconds = 3600.0
    """How long a Responses conversation can be continued by `previous_response_id`."""
    store_cap: AtLeastOne = 1000
    """At most this many stored responses (the oldest go first)."""


@dataclass(frozen=True, slots=True)
class DialectSettings:
    anthropic: AnthropicDialectSettings = field(default_factory=AnthropicDialectSettings)
    responses: ResponsesDialectSettings = field(default_factory=ResponsesDialectSettings)


@dataclass(frozen=True, slots=True)
class SimulatedBehaviour:
    """How one model of the in-process `simulated` provider behaves."""

    first_token_ms: NonNegative = 300.0
    tokens_per_s: Annotated[float, Meta(gt=0)] = 60.0
    reply_tokens: AtLeastOne = 60
    error_rate: Fraction = 0.0
    """Chance of an HTTP 5xx."""
    rate_limit_rate: Fraction = 0.0
    """Chance of an HTTP 429."""
    stall_rate: Fraction = 0.0
    """Chance that the reply stops arriving (before or after the first token)."""
    wrapped_error_rate: Fraction = 0.0
    """Chance of an HTTP 200 whose body is really an error."""
    seed: int = 0


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    name: Annotated[
        str, Meta(pattern="^[^/]+$", extra={"expected": "a non-empty name without '/'"})
    ]
    kind: ProviderKind
    base_url: Annotated[
        str, Meta(pattern="^(https?://.*)?$", extra={"expected": "an http:// or https:// URL"})
    ] = ""
    api_keys: tuple[str, ...] = ()
    protection: Protection = "model-skip"
    continuation: ContinuationMode = "auto"
    limits: LimitSettings = field(default_factory=LimitSettings)
    """Free-tier quota per key, the default of its models (config_limits.py)."""
    limits_scope: LimitsScope = "key"
    """`key`: each model counts on its own; `provider`: one quota per key for all its models."""
    daily_reset: DailyResetText | None = None
    """`"00:00 UTC"`: the day's quota comes back at this time; None: a rolling 24 h."""
    missing_env: tuple[str, ...] = field(default=(), metadata=_INTERNAL)
    """Environment variables named by `api_keys` that were not set (filled in by the loader)."""

    @property
    def usable(self) -> bool:
        """False when every key came from an unset environment variable."""
        return self.kind == "simulated" or bool(self.api_keys)


@dataclass(frozen=True, slots=True)
class ModelSettings:
    provider: str
    id: Annotated[str, Meta(min_length=1, extra={"expected": "a non-empty model id"})]
    """The id sent upstream."""
    pool: PoolName = "balanced"
    enabled: bool = True
    intelligence: Annotated[int, Meta(ge=1, le=10)] = 5
    """Rank from 1 (weak) to 10 (strong); used by smart routing."""
    continuation: ContinuationMode | None = None
    """Overrides the provider's `continuation` for this model."""
    limits: LimitSettings | None = None
    """Overrides the provider's `limits`, one by one (rpm, rpd, tpm, tpd)."""
    simulate: SimulatedBehaviour = field(default_factory=SimulatedBehaviour)

    @property
    def key(self) -> str:
        """The unique `provider/id` name clients and the state API use."""
        return f"{self.provider}/{self.id}"


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    streaming: StreamingSettings = field(default_factory=StreamingSettings)
    dialects: DialectSettings = field(default_factory=DialectSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    """Key checks in the background (config_health.py); off by default."""
    providers: tuple[ProviderSettings, ...] = ()
    models: tuple[ModelSettings, ...] = ()
    clients: tuple[ClientSettings, ...] = ()
    """Named client keys (config_clients.py): the screen and the log say whose a request was."""
    source: str = field(default="", metadata=_INTERNAL)
    """Where these settings came from (a path, or `built-in demo`); for messages only."""

    @property
    def own_key(self) -> bool:
        """A key the config sets (`server.api_key`, `[[clients]]`), not only the generated one."""
        return self.server.api_key is not None or bool(self.clients)

    def model_names(self) -> frozenset[str]:
        """Every model name a request may use as it is: the virtual ones, keys and upstream ids."""
        return frozenset(
            {*VIRTUAL_MODEL_NAMES, *(m.key for m in self.models), *(m.id for m in self.models)}
        )


def load_settings(path: Path, *, environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate a config file; `env:NAME` values come from `environ`."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, "(file)", "file not found") from None
    except OSError as exc:
        raise ConfigError(source, "(file)", f"cannot be read: {exc.strerror}") from None
    return parse_settings(text, source=source, environ=environ)


def parse_settings(
    text: str, *, source: str = "", environ: Mapping[str, str] | None = None
) -> Settings:
    """Validate a config file's text."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "(syntax)", f"valid TOML ({exc})") from None
    return settings_from_dict(raw, source=source, environ=environ)


def settings_from_dict(
    raw: dict[str, Any], *, source: str = "", environ: Mapping[str, str] | None = None
) -> Settings:
    """Validate a parsed config; `environ` defaults to the process environment."""
    raw = with_presets(raw, source)
    converted = convert(
        Settings, raw, source=source, environ=process_environment() if environ is None else environ
    )
    settings = _with_missing_env(replace(converted.value, source=source), converted)
    settings = replace(settings, cluster=with_cluster_env(settings.cluster, converted.unset_env))
    _check(settings, source)
    return settings


def _with_missing_env(settings: Settings, converted: Converted[Settings]) -> Settings:
    """Note which `env:` keys were unset: such a provider is skipped with a warning, not fatal."""
    missing: dict[int, list[str]] = {}
    for path, name in converted.unset_env.items():
        if len(path) == 4 and path[0] == "providers" and path[2] == "api_keys":
            missing.setdefault(int(path[1]), []).append(name)
    if not missing:
        return settings
    providers = tuple(
        replace(p, missing_env=tuple(missing.get(i, ()))) for i, p in enumerate(settings.providers)
    )
    return replace(settings, providers=providers)


def warnings_for(settings: Settings) -> list[str]:
    """Human-readable start-up warnings (not errors): providers that cannot be used, traffic
    other machines can read, and a cluster whose Redis URL is not set."""
    out = cluster_warnings(settings.cluster) + preset_notes(settings.providers, settings.models)
    plain = plain_http_warning(settings.server.host)
    if plain is not None and settings.own_key:  # without a key of its own it does not start
        out.append(plain)
    for provider in settings.providers:
        if not provider.usable:
            names = ", ".join(provider.missing_env)
            out.append(
                f"provider {provider.name}: {names} not set; its models are skipped until it is"
            )
    return out


# --- validation ------------------------------------------------------------------------------


def _check(settings: Settings, source: str) -> None:
    """Rules that span fields: unique names, references, what a provider's kind needs.

    One field's own range or form is declared on the field, and msgspec checks it.
    """
    names: set[str] = set()
    for i, provider in enumerate(settings.providers):
        where = f"providers[{i}]"
        if provider.name in names:
            raise ConfigError(source, f"{where}.name", f"a unique name ('{provider.name}' repeats)")
        names.add(provider.name)
        if provider.kind == "openai" and not provider.base_url:
            raise ConfigError(source, f"{where}.base_url", "an http:// or https:// URL")
        if provider.kind != "simulated":
            if not provider.api_keys and not provider.missing_env:
                raise ConfigError(source, f"{where}.api_keys", "at least one key")
        if provider.kind == "cloudflare":
            for n, key in enumerate(provider.api_keys):
                account, _, token = key.partition(":")
                if not account or not token:
                    raise ConfigError(
                        source, f"{where}.api_keys[{n}]", "expected account_id:api_token"
                    )
    _check_dialects(settings, source)
    check_clients(settings.clients, api_key=settings.server.api_key, source=source)
    seen: set[str] = set()
    for i, model in enumerate(settings.models):
        where = f"models[{i}]"
        if model.provider not in names:
            known = ", ".join(sorted(names)) or "none configured"
            raise ConfigError(
                source, f"{where}.provider", f"the name of a [[providers]] entry ({known})"
            )
        if model.key in seen:
            raise ConfigError(source, f"{where}.id", f"a unique model ('{model.key}' repeats)")
        seen.add(model.key)
    check_limits(settings.providers, settings.models, source=source)


def _check_dialects(settings: Settings, source: str) -> None:
    known = settings.model_names()
    for pattern, target in settings.dialects.anthropic.models.items():
        if target not in known:
            raise ConfigError(
                source,
                f"dialects.anthropic.models.{pattern}",
                f"auto, auto-fast, auto-smart or a configured model, got {target!r}",
            )
