"""The `[health]` table: the gateway checks its API keys by itself now and then.

Off by default. On (`interval_s` above 0), a background task calls each provider's cheapest
endpoint (providers/key_check.py) once at start and then every `interval_s`; a key that passes
is sent again, one refused (401/403) is taken out, any other answer changes nothing.

By default only the keys that are out are checked (`scope = "invalid"`, plus any whose secret
changed in the config since it was found invalid): free tiers count every call, and a key in use
is checked by the traffic itself. `scope = "all"` checks every key, to find a revoked one before
a request does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from msgspec import Meta

__all__ = ["HealthScope", "HealthSettings"]

HealthScope = Literal["invalid", "all"]


@dataclass(frozen=True, slots=True)
class HealthSettings:
    interval_s: Annotated[
        float,
        Meta(ge=0, extra={"expected": "a number of seconds", "why": "0 turns the checks off"}),
    ] = 0.0
    """Check the keys this often; 0: never by itself (`tui-gateway keys check`, or
    `POST /gateway/keys/check`, still do on demand)."""
    scope: HealthScope = "invalid"
    """`invalid`: only the keys that are out (each check may count against a free tier's
    quota); `all`: every key."""
    timeout_s: Annotated[float, Meta(gt=0, extra={"expected": "a number of seconds"})] = 10.0
    """A check with no answer within this is a `timeout`, which changes nothing."""
