"""A model's quota policy (limits, scope, daily reset), and the counts of one quota (`Slot`).

quotas.py (which re-exports `Limits`, `QuotaPolicy` and `WINDOWS`) says how they are used; they
live here to keep it under the size rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .quota_windows import Daily, DailyReset, QuotaView, Rolling, Window, WindowView

__all__ = ["WINDOWS", "Limits", "QuotaPolicy", "Scope", "Slot", "WindowName"]

WindowName = Literal["rpm", "rpd", "tpm", "tpd"]
WINDOWS: tuple[WindowName, ...] = ("rpm", "tpm", "rpd", "tpd")
"""Every limit, minute first (the order a tie in the learning is broken in)."""
_PAIRS: tuple[tuple[WindowName, WindowName], ...] = (("rpm", "tpm"), ("rpd", "tpd"))
Scope = Literal["key", "provider"]


@dataclass(frozen=True, slots=True)
class Limits:
    """A quota's limits; None: that one is not limited."""

    rpm: int | None = None
    """Requests per minute (rolling 60 s)."""
    rpd: int | None = None
    """Requests per day (rolling 24 h, or since the daily reset)."""
    tpm: int | None = None
    """Tokens per minute, prompt and completion together."""
    tpd: int | None = None
    """Tokens per day."""

    def __post_init__(self) -> None:
        for name in WINDOWS:
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value <= 0):
                raise ValueError(f"{name} must be a whole number above 0, got {value!r}")

    def get(self, name: WindowName) -> int | None:
        value: int | None = getattr(self, name)
        return value

    def __bool__(self) -> bool:
        return any(getattr(self, name) is not None for name in WINDOWS)


@dataclass(frozen=True, slots=True)
class QuotaPolicy:
    """How one model's use is limited."""

    limits: Limits
    provider: str = ""
    scope: Scope = "key"
    """`key`: per (key, model); `provider`: one quota per key for every model of `provider`."""
    daily_reset: DailyReset | None = None
    """None: the day is a rolling 24 h window."""


class Slot:
    """The counts and learned limits of one quota."""

    __slots__ = ("key_id", "model", "policy", "minute", "day", "lowered", "successes")

    def __init__(self, key_id: str, model: str | None, policy: QuotaPolicy) -> None:
        self.key_id = key_id
        self.model = model
        self.policy = policy
        self.minute = Rolling(60.0, 1.0)
        self.day: Rolling | Daily = (
            Rolling(86_400.0, 60.0) if policy.daily_reset is None else Daily(policy.daily_reset)
        )
        self.lowered: dict[WindowName, int] = {}
        self.successes = 0

    def limit(self, name: WindowName) -> int | None:
        return self.lowered.get(name, self.policy.limits.get(name))

    def window(self, name: WindowName) -> Rolling | Daily:
        return self.minute if name.endswith("m") else self.day

    def used(self, name: WindowName, now: float) -> int:
        requests, tokens = self.window(name).used(now)
        return requests if name.startswith("r") else tokens

    def excess(self, name: WindowName, now: float, tokens: int) -> int:
        """How much must leave the window before one more request of `tokens` fits (<= 0: fits)."""
        limit = self.limit(name)
        if limit is None:
            return 0
        more = 1 if name.startswith("r") else max(tokens, 1)  # a request uses some tokens
        return self.used(name, now) + more - limit

    def allows(self, now: float, tokens: int) -> bool:
        """`excess(...) <= 0` for every window, reading each window once (the hot path)."""
        for r, t in _PAIRS:
            r_limit, t_limit = self.limit(r), self.limit(t)
            if r_limit is None and t_limit is None:
                continue
            requests, used_tokens = self.window(r).used(now)
            if r_limit is not None and requests + 1 > r_limit:
                return False
            if t_limit is not None and used_tokens + max(tokens, 1) > t_limit:
                return False
        return True

    def admits_at(self, now: float, tokens: int) -> float:
        at = now
        for r, t in _PAIRS:
            free_r, free_t = self.excess(r, now, tokens), self.excess(t, now, tokens)
            at = max(at, self.window(r).admits_at(now, free_r, free_t))
        return at

    def windows(self) -> tuple[tuple[str, Window], tuple[str, Window]]:
        """Both windows under the names their saved rows carry: `minute`, then `day` (a rolling
        24 h) or `daily` (a fixed reset), so that a row of one kind is never read as the other."""
        day = "day" if isinstance(self.day, Rolling) else "daily"
        return ("minute", self.minute), (day, self.day)

    def restore_lowered(self, saved: Mapping[str, Any]) -> None:
        """Limits lowered before a restart; one no longer under its configured value (or no
        longer configured) is dropped: the config changed, so the lowering is over."""
        for name in WINDOWS:
            value, configured = saved.get(name), self.policy.limits.get(name)
            if type(value) is int and configured is not None and 1 <= value < configured:
                self.lowered[name] = value

    def view(self, now: float) -> QuotaView:
        """The quota for the screen: each configured limit's use, effective limit and when it
        frees up."""
        windows = []
        for name in WINDOWS:
            configured = self.policy.limits.get(name)
            if configured is None:
                continue
            limit = self.limit(name)
            assert limit is not None
            window = self.window(name)
            excess = self.excess(name, now, 0)
            at = window.admits_at(now, *((excess, 0) if name[0] == "r" else (0, excess)))
            at_or_drop = at if excess > 0 else window.next_drop(now)
            windows.append(
                WindowView(
                    name=name,
                    used=self.used(name, now),
                    limit=limit,
                    configured=configured,
                    lowered=limit < configured,
                    frees_in_s=None if at_or_drop is None else round(max(0.0, at_or_drop - now), 1),
                )
            )
        return QuotaView(
            key_id=self.key_id,
            model=self.model,
            provider=self.policy.provider,
            windows=tuple(windows),
            blocked=not self.allows(now, 0),
        )
