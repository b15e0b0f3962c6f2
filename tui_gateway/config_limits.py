"""Free-tier quotas in the config: `limits`, `limits_scope` and `daily_reset` (issue 13).

```toml
[[providers]]
name = "groq"
limits = { rpm = 30, rpd = 1000 }   # the default for each of its models
limits_scope = "key"                # key: per key and model | provider: one quota per key
daily_reset = "00:00 UTC"           # the day empties at this time (default: a rolling 24 h)

[[models]]
provider = "groq"
id = "llama-3.3-70b-versatile"
limits = { tpm = 6000 }             # per limit, over the provider's: rpm 30, rpd 1000, tpm 6000
```

A model's limits override its provider's one by one. With `limits_scope = "provider"` one quota
is shared by every model of the key, so only the provider sets limits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Annotated, Any, Literal, Protocol

from msgspec import Meta

from .config_convert import ConfigError
from .domain.quota_windows import DailyReset
from .domain.quotas import Limits, QuotaPolicy
from .preset_limits import PRESET_LIMITS
from .presets import PRESETS

__all__ = [
    "LimitSettings",
    "LimitsScope",
    "check_limits",
    "effective_limits",
    "preset_limits_notes",
    "quota_policies",
    "quota_policy",
]

Limit = Annotated[int, Meta(ge=1)] | None
LimitsScope = Literal["key", "provider"]
RESET_EXPECTED = 'a time and zone such as "00:00 UTC"'
DailyResetText = Annotated[str, Meta(pattern=r"\S", extra={"expected": RESET_EXPECTED})]


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """`limits = { rpm, rpd, tpm, tpd }`: what a provider's free tier allows, per key."""

    rpm: Limit = None
    """Requests per minute (a rolling 60 s)."""
    rpd: Limit = None
    """Requests per day (a rolling 24 h, or since `daily_reset`)."""
    tpm: Limit = None
    """Tokens per minute, prompt and completion together."""
    tpd: Limit = None
    """Tokens per day."""

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self))


class ProviderLike(Protocol):
    """What these checks read of a `ProviderSettings` (config.py imports this module)."""

    @property
    def name(self) -> str: ...
    @property
    def limits(self) -> LimitSettings: ...
    @property
    def limits_scope(self) -> LimitsScope: ...
    @property
    def daily_reset(self) -> str | None: ...


class ModelLike(Protocol):
    """What these checks read of a `ModelSettings`."""

    @property
    def key(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def limits(self) -> LimitSettings | None: ...


def effective_limits(provider: ProviderLike, model: ModelLike) -> LimitSettings:
    """The model's limits, each one it leaves out taken from its provider."""
    if model.limits is None:
        return provider.limits
    given = {f.name: getattr(model.limits, f.name) for f in fields(LimitSettings)}
    return replace(provider.limits, **{k: v for k, v in given.items() if v is not None})


def quota_policy(provider: ProviderLike, model: ModelLike) -> QuotaPolicy:
    """The domain's policy for one model (its daily reset checked already by `check_limits`)."""
    limits = effective_limits(provider, model)
    return QuotaPolicy(
        limits=Limits(rpm=limits.rpm, rpd=limits.rpd, tpm=limits.tpm, tpd=limits.tpd),
        provider=provider.name,
        scope=provider.limits_scope,
        daily_reset=None
        if provider.daily_reset is None
        else DailyReset.parse(provider.daily_reset),
    )


def quota_policies(
    providers: Sequence[ProviderLike], models: Sequence[ModelLike]
) -> dict[str, QuotaPolicy]:
    """Model name (`provider/id`) -> its policy, for every model with any limit."""
    by_name = {p.name: p for p in providers}
    policies = {m.key: quota_policy(by_name[m.provider], m) for m in models}
    return {key: policy for key, policy in policies.items() if policy.limits}


def check_limits(
    providers: Sequence[ProviderLike], models: Sequence[ModelLike], *, source: str
) -> None:
    """`daily_reset` is a real time and zone; a shared (`provider`) quota is set on the provider.

    Raises:
        ConfigError: naming the file and key, e.g. `providers[0].daily_reset: a time and zone
            such as "00:00 UTC", got '25:00 UTC'`.
    """
    shared = set()
    for i, provider in enumerate(providers):
        if provider.limits_scope == "provider":
            shared.add(provider.name)
        if provider.daily_reset is None:
            continue
        try:
            DailyReset.parse(provider.daily_reset)
        except ValueError as exc:
            why = str(exc)
            detail = f" ({why})" if why.startswith(("no such", "no time")) else ""
            raise ConfigError(
                source,
                f"providers[{i}].daily_reset",
                f"{RESET_EXPECTED}, got {provider.daily_reset!r}{detail}",
            ) from None
    for i, model in enumerate(models):
        if model.limits and model.provider in shared:
            raise ConfigError(
                source,
                f"models[{i}].limits",
                f'no limits here: provider {model.provider} has limits_scope = "provider" (one'
                " quota per key, shared by all its models), so its limits go on the provider",
            )


def preset_limits_notes(providers: Sequence[Any], models: Sequence[Any]) -> list[str]:
    """A start-up line for each provider whose quota came from its preset (preset_limits.py), so
    the user checks those numbers against the provider's page rather than trusting them.

    A provider counts as using a preset's quota when it has the preset's kind and base_url and
    the preset's values; values written by hand identical to the preset's read the same way.
    A `daily_reset` alone is mentioned only when some limit applies to the provider.
    """
    by_endpoint = {(PRESETS[n].kind, PRESETS[n].base_url): c for n, c in PRESET_LIMITS.items()}
    out = []
    for provider in providers:
        carried = by_endpoint.get((provider.kind, provider.base_url))
        if carried is None:
            continue
        taken = bool(carried.limits) and provider.limits == LimitSettings(**carried.limits)
        parts = [f"{key} {value:,}" for key, value in carried.limits.items()] if taken else []
        if carried.limits_scope == "provider" == provider.limits_scope:
            parts.append("one quota for all its models")
        if carried.daily_reset is not None and provider.daily_reset == carried.daily_reset:
            parts.append(f"the day resets at {carried.daily_reset}")
        mine = [m for m in models if m.provider == provider.name]
        if not parts or not (provider.limits or any(m.limits for m in mine)):
            continue
        where = f"as read on {carried.limits_as_of} at {carried.limits_source}"
        if taken:
            out.append(
                f"{provider.name}: free-tier limits from its preset ({', '.join(parts)}; {where}):"
                " check them against your plan, or set limits = {} to turn them off"
            )
        else:
            out.append(
                f"{provider.name}: {', '.join(parts)}, from its preset ({where}); set"
                " limits_scope or daily_reset yourself to change it"
            )
    return out
