"""The free-tier quotas some presets carry: defaults to check, not promises (issue 13).

A provider that says `preset = "openrouter"` and sets no `limits` of its own gets the preset's, as
if it had written them; its own `limits` table replaces them whole (`limits = {}` turns them
off). `limits_scope` and `daily_reset` are filled in the same way when the entry leaves them out.

Each entry records only what the provider's own page says, with that page and the date the
numbers were taken. A preset is left out when its provider publishes no number that holds for
its free models in general: limits that differ model by model (groq, cerebras, sambanova, github),
figures shown only in the account's console (nvidia, zhipu), dynamic limits (together), no limits
at all (deepseek), a limit our keys cannot express (mistral's 1 request per second), or one that
holds only until a payment method is added (fireworks' 10 a minute on its $1 trial). A preset may
carry only a `daily_reset` when the provider documents when its day ends but no number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .domain.quota_windows import DailyReset

__all__ = ["PRESET_LIMITS", "PresetLimits", "with_preset_limits"]


@dataclass(frozen=True, slots=True)
class PresetLimits:
    """A provider's documented free tier, in the config's own keys."""

    limits_as_of: str
    """The date (ISO) the numbers were read on the provider's page."""
    limits_source: str
    """The provider's page that states them."""
    rpm: int | None = None
    rpd: int | None = None
    tpm: int | None = None
    tpd: int | None = None
    limits_scope: Literal["key", "provider"] | None = None
    """`provider`: the page says one quota covers all the free models of an account."""
    daily_reset: str | None = None
    """When the page says the day's quota comes back, as `daily_reset` spells it."""

    @property
    def limits(self) -> dict[str, int]:
        """The `limits` table a provider entry gets: only the limits the page states."""
        given = {"rpm": self.rpm, "rpd": self.rpd, "tpm": self.tpm, "tpd": self.tpd}
        return {name: value for name, value in given.items() if value is not None}


# Dates: none of these pages states one, so each is the day it was read (retrieved), not the day
# the provider last changed it.
PRESET_LIMITS: dict[str, PresetLimits] = {
    # `:free` models: 20 a minute, and 1,000 a day once 10 credits have been bought (50 before);
    # "account-wide ... not per model"; the daily counter "resets at UTC midnight" (the SDK's
    # FreeModelDailyRequests page, openrouter.ai/docs/client-sdks/python/components/). The
    # larger day is the default: a limit set too high costs one 429, after which the gateway
    # lowers it to what the key took (50), while one set too low would hold back a key that has
    # credits. Counted per model, not per account: the same limits then also hold paid models
    # of the provider, and one quota for all of them would throttle those far more.
    "openrouter": PresetLimits(
        limits_as_of="2026-12-02",
        limits_source="https://openrouter.ai/docs/guides/routing/model-variants/free",
        rpm=20,
        rpd=1000,
        limits_scope="key",
        daily_reset="00:00 UTC",
    ),
    # Trial keys: 20 requests a minute on every Chat model, per model; also 1,000 calls a month,
    # which no key here expresses.
    "cohere": PresetLimits(
        limits_as_of="2026-12-02",
        limits_source="https://docs.cohere.com/docs/rate-limits",
        rpm=20,
        limits_scope="key",
    ),
    # Numbers differ per model and are shown in AI Studio; "Requests per day (RPD) quotas reset
    # at midnight Pacific time", per project and model.
    "gemini": PresetLimits(
        limits_as_of="2026-12-02",
        limits_source="https://ai.google.dev/gemini-api/docs/rate-limits",
        daily_reset="00:00 America/Los_Angeles",
    ),
    # The free allocation is 10,000 Neurons a day, which no key here expresses; "All limits reset
    # daily at 00:00 UTC" (read in the page's source, cloudflare/cloudflare-docs PR 20258).
    "cloudflare": PresetLimits(
        limits_as_of="2026-12-02",
        limits_source="https://developers.cloudflare.com/workers-ai/platform/pricing/",
        daily_reset="00:00 UTC",
    ),
}
"""Preset name -> its documented free tier; a preset not named here carries none."""


def _known_here(reset: str) -> bool:
    """A zone this machine's time zone database lacks (Windows without tzdata) is not used."""
    try:
        DailyReset.parse(reset)
    except ValueError:
        return False
    return True


def with_preset_limits(table: Mapping[str, Any], preset: str) -> dict[str, Any]:
    """A `[[providers]]` table with the preset's quota keys added where the table has none.

    Args:
        table: the provider's table as read from the file, `preset` already removed.
        preset: the preset's name.

    Returns:
        A new table: `limits`, `limits_scope` and `daily_reset` each taken from the preset when
        the table does not set it (a table's own `limits`, even `{}`, is kept whole).
    """
    out = dict(table)
    carried = PRESET_LIMITS.get(preset)
    if carried is None:
        return out
    if carried.limits:
        out.setdefault("limits", carried.limits)
    if carried.limits_scope is not None:
        out.setdefault("limits_scope", carried.limits_scope)
    if carried.daily_reset is not None and _known_here(carried.daily_reset):
        out.setdefault("daily_reset", carried.daily_reset)
    return out
