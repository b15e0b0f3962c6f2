"""Shared cooldowns: failing models and rate-limited keys sit out for a while, for everyone.

Two kinds of cooldown, both keyed by model:

- **transient** (`key_id` None): a kind with `kind.transient` (errors.py: 5xx, connection
  failure, timeout, stall) takes the whole model out of rotation for `transient_s`. Failing again
  while cooling pushes the end to `now + transient_s`.
- **rate limit** (`key_id` set): a 429 (blame `capacity`, or `quota` on a key with limits) cools
  that one API key for that model, for the upstream's Retry-After if it sent one, else
  `rate_limit_s`. Other keys of the provider stay usable. A 429 from a provider without keys
  (`key_id` None) cools the whole model the same way.

Nothing else cools anything down: a 4xx other than 408/429 is about the request, and wrapped or
truncated answers are left to thread protection. A new failure never shortens a running cooldown.

Expiry is exclusive: a cooldown ending at `e` is active while `now < e`.

Shared between gateways (changes.py): a cooldown started or cleared here is reported; the
failure counts stay local (each gateway counts its own streaks).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .changes import Change, Reporting
from .errors import Blame, ErrorKind

_Slot = tuple[str, str | None]
"""(model, key_id); key_id None is the whole model."""


def _slot_key(slot: _Slot) -> str:
    """`model|key_id` (`model|` for the whole model): a key id never holds a `|`."""
    return f"{slot[0]}|{slot[1] or ''}"


@dataclass(frozen=True, slots=True)
class CooldownEntry:
    """One model, or one key of one model, sitting out until `expires`."""

    model: str
    provider: str
    key_id: str | None
    """None: the whole model is cooling; else one API key of the provider, for this model."""
    reason: str
    """The `ErrorKind` value that caused it (the latest one, if several fed it)."""
    started: float
    """When this cooldown began (renewals while it runs keep the start)."""
    expires: float
    failures: int
    """Consecutive failures, since the last success, that fed this cooldown."""

    def remaining(self, now: float) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.expires - now)

    def active(self, now: float) -> bool:
        return now < self.expires

    def as_json(self, now: float) -> dict[str, Any]:
        """A snapshot for the TUI and the admin API."""
        return {
            "model": self.model,
            "provider": self.provider,
            "key_id": self.key_id,
            "reason": self.reason,
            "started": self.started,
            "expires": self.expires,
            "remaining_s": round(self.remaining(now), 1),
            "duration_s": round(self.expires - self.started, 1),
            "failures": self.failures,
        }


class Cooldowns(Reporting):
    """Active cooldowns by (model, key).

    Args:
        transient_s: How long a 5xx, connection failure, timeout or stall cools a model.
        rate_limit_s: How long a 429 without Retry-After cools a key for a model.
    """

    PART = "cooldown"

    def __init__(self, *, transient_s: float = 15.0, rate_limit_s: float = 60.0) -> None:
        if transient_s < 0 or rate_limit_s < 0:
            raise ValueError("cooldown durations must not be negative")
        self.transient_s = transient_s
        self.rate_limit_s = rate_limit_s
        self._entries: dict[_Slot, CooldownEntry] = {}
        self._streaks: dict[_Slot, int] = {}

    def record_failure(
        self,
        *,
        model: str,
        provider: str,
        kind: ErrorKind | str,
        key_id: str | None,
        now: float,
        retry_after_s: float | None = None,
    ) -> CooldownEntry | None:
        """Cool down what failed, if this kind of failure calls for it.

        Returns:
            The cooldown now running for the model (transient) or the key (rate limit), or None
            when the failure cools nothing (or a Retry-After of 0 asked for none).
        """
        known = ErrorKind.parse(kind)
        if known is None:
            return None  # a kind this version does not know cools nothing
        if known.transient:
            slot: _Slot = (model, None)
            duration = self.transient_s
        elif known.blame in (Blame.CAPACITY, Blame.QUOTA):
            slot = (model, key_id)
            duration = self.rate_limit_s
            if retry_after_s is not None and math.isfinite(retry_after_s):
                duration = max(0.0, retry_after_s)
        else:
            return None
        failures = self._streaks.get(slot, 0) + 1
        self._streaks[slot] = failures
        if duration <= 0:
            return None
        current = self._entries.get(slot)
        if current is not None and current.active(now):
            started, expires = current.started, max(current.expires, now + duration)
        else:
            started, expires = now, now + duration
        entry = CooldownEntry(
            model=model,
            provider=provider,
            key_id=slot[1],
            reason=str(kind),
            started=started,
            expires=expires,
            failures=failures,
        )
        self._entries[slot] = entry
        if self.listener is not None:
            self._report(_slot_key(slot), asdict(entry), expires)
        return entry

    def record_success(self, *, model: str, key_id: str | None, now: float) -> None:
        """The model (and key) answered: reset their failure counts. Running cooldowns run out."""
        self._streaks.pop((model, None), None)
        if key_id is not None:
            self._streaks.pop((model, key_id), None)

    def _live(self, slot: _Slot, now: float) -> CooldownEntry | None:
        entry = self._entries.get(slot)
        if entry is None:
            return None
        if not entry.active(now):
            del self._entries[slot]
            return None
        return entry

    def is_cooling(self, model: str, now: float) -> bool:
        """Whether the whole model is out of rotation at `now`."""
        return self._live((model, None), now) is not None

    def usable_keys(self, model: str, key_ids: Sequence[str], now: float) -> list[str]:
        """The keys not rate-limited for this model, in the given order."""
        return [k for k in key_ids if self._live((model, k), now) is None]

    def available_at(self, model: str, key_ids: Sequence[str], now: float) -> float:
        """When the model can next be used: `now` if it can be now.

        Otherwise the later of the model-wide cooldown's end and, if every key is rate-limited, the
        earliest key's end. With no `key_ids` only the model-wide cooldown counts.
        """
        at = now
        whole = self._live((model, None), now)
        if whole is not None:
            at = whole.expires
        key_ends = [self._live((model, k), now) for k in key_ids]
        if key_ids and all(e is not None for e in key_ends):
            at = max(at, min(e.expires for e in key_ends if e is not None))
        return at

    def clear(self, model: str | None = None) -> int:
        """End the cooldowns (and failure counts) of one model, or of all; returns how many ended.

        The count includes cooldowns that had already run out but were not yet pruned.
        """
        slots = [s for s in self._entries if model is None or s[0] == model]
        for slot in slots:
            del self._entries[slot]
            self._report(_slot_key(slot), None)
        for slot in [s for s in self._streaks if model is None or s[0] == model]:
            del self._streaks[slot]
        return len(slots)

    def apply(self, change: Change) -> None:
        """A cooldown started or ended on another gateway (reported by its `Cooldowns`)."""
        if change.value is None:
            model, _, key_id = change.key.rpartition("|")
            self._entries.pop((model, key_id or None), None)
            return
        entry = CooldownEntry(**change.value)
        self._entries[(entry.model, entry.key_id)] = entry

    def changes(self, now: float) -> list[Change]:
        """Every running cooldown as a change: what a fresh shared store is seeded with."""
        return [
            Change(self.PART, _slot_key((e.model, e.key_id)), asdict(e), e.expires)
            for e in self.entries(now)
        ]

    def __bool__(self) -> bool:
        """Any cooldown recorded and not yet pruned (a cheap first check for the hot path)."""
        return bool(self._entries)

    def entries(self, now: float) -> list[CooldownEntry]:
        """Active cooldowns, soonest expiry first; expired ones are pruned."""
        for slot in [s for s, e in self._entries.items() if not e.active(now)]:
            del self._entries[slot]
        return sorted(self._entries.values(), key=lambda e: (e.expires, e.model, e.key_id or ""))
