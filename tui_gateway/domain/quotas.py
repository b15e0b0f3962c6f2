"""Free-tier quotas: requests and tokens per minute and per day, per provider key and model.

A model's `QuotaPolicy` gives its `Limits` (rpm, rpd, tpm, tpd, each optional) and their scope:
`key` counts each (key, model) on its own; `provider` counts one quota per key shared by every
model of the provider (some providers count per account, not per model). The minute is a rolling
60 s window in 1 s buckets; the day a rolling 24 h window in 60 s buckets, or, with a
`DailyReset`, a calendar day that empties at a fixed local time (quota_windows.py). A model with
no limits costs nothing: nothing is stored for it and every check says yes.

Counting follows the attempt: `reserve` when it is sent counts the request at once and reserves
its token estimate; `settle` corrects the tokens with the upstream's usage (or keeps the
estimate), in the buckets the reservation was counted in (a correction for a bucket that already
left its window is dropped). `release` takes a reservation back whole (an attempt the upstream
refused did not use the quota). `allows` says whether one more request, with its estimate, fits
every limit; `frees_at` when it will.

Learning (`rate_limited`, `succeeded`). A 429 while every window is under its limit means the
provider's real limit is lower. The refused attempt (`refused=`) is released first (a refused
request used no quota); then the window nearest its limit (highest used / effective limit; on a
tie the minute before the day, requests before tokens) takes as its effective limit what it
held at the 429, at least 1: the use the provider accepted before refusing. Recovery is
additive and slow: every `recover_every` (10) successes of that key raise each lowered limit by
5% of its configured value (at least 1), up to the configured value, where the lowering ends.
Why: one 429 costs a failed attempt and a fallback, while a limit a little too low only sends
some traffic to other keys sooner, so the rule backs off at once and probes back in small steps
(as TCP's additive increase does); counting successes, not time, paces the probing by real use,
and a key that 429s again is lowered again at once.

Shared between gateways (changes.py): the learned limits are reported (part `quota`, one key per
slot); the counters are not (a shared store counts them with atomic increments instead).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .changes import Change, Reporting
from .quota_windows import Daily, DailyReset, QuotaView, Rolling, WindowView

__all__ = ["WINDOWS", "Limits", "QuotaPolicy", "QuotaView", "Quotas", "Reservation", "WindowView"]

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


@dataclass(slots=True, eq=False)
class Reservation:
    """A sent attempt's count, to settle or release once."""

    slot: str | None
    """None: the model has no limits, so there is nothing to settle."""
    minute: float = 0.0
    day: float = 0.0
    tokens: int = 0
    """The tokens counted for it so far (the estimate, until settled)."""
    open: bool = True


class _Slot:
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


class Quotas(Reporting):
    """Use of every limited model by provider key, and the limits learned from 429s.

    Args:
        policies: Model name (`provider/id`) -> its policy; models left out are not limited.
        recover_every: Successes of a key that raise its lowered limits by one step.
        recover_step: A step, as a fraction of the configured limit (at least 1).
    """

    PART = "quota"

    def __init__(
        self,
        policies: Mapping[str, QuotaPolicy] = {},  # noqa: B006 (never mutated)
        *,
        recover_every: int = 10,
        recover_step: float = 0.05,
    ) -> None:
        if recover_every < 1 or not 0 < recover_step <= 1:
            raise ValueError("need recover_every >= 1 and 0 < recover_step <= 1")
        self._policies = {m: p for m, p in policies.items() if p.limits}
        self.recover_every = recover_every
        self.recover_step = recover_step
        self._slots: dict[str, _Slot] = {}

    # --- which quota a request counts in ------------------------------------------------------

    def _slot(self, key_id: str, model: str) -> _Slot | None:
        policy = self._policies.get(model)
        if policy is None:
            return None
        shared = policy.scope == "provider"
        name = f"{key_id}|*{policy.provider}" if shared else f"{key_id}|{model}"
        slot = self._slots.get(name)
        if slot is None:
            slot = self._slots[name] = _Slot(key_id, None if shared else model, policy)
        return slot

    @staticmethod
    def _name(slot: _Slot) -> str:
        if slot.model is None:
            return f"{slot.key_id}|*{slot.policy.provider}"
        return f"{slot.key_id}|{slot.model}"

    def limited(self, model: str) -> bool:
        """Whether the model has any limit (a cheap first check for the hot path)."""
        return model in self._policies

    # --- counting -----------------------------------------------------------------------------

    def allows(self, key_id: str, model: str, now: float, estimated_tokens: int = 0) -> bool:
        """Whether one more request with this token estimate fits every limit of the key."""
        slot = self._slot(key_id, model)
        return slot is None or slot.allows(now, estimated_tokens)

    def reserve(
        self, key_id: str, model: str, now: float, estimated_tokens: int = 0
    ) -> Reservation:
        """Count an attempt being sent: the request at once, its token estimate reserved.

        It counts whether or not `allows` said yes (the caller decides; this only counts).
        """
        slot = self._slot(key_id, model)
        if slot is None:
            return Reservation(None)
        tokens = max(0, estimated_tokens)
        minute = slot.minute.add(now, 1, tokens)
        day = slot.day.add(now, 1, tokens)
        return Reservation(self._name(slot), minute, day, tokens)

    def settle(self, handle: Reservation, actual_tokens: int | None) -> None:
        """Correct a reservation's tokens with the upstream's usage; None keeps the estimate."""
        slot = self._slots.get(handle.slot) if handle.slot is not None else None
        if slot is None or not handle.open:
            return
        handle.open = False
        if actual_tokens is None:
            return
        delta = max(0, actual_tokens) - handle.tokens
        handle.tokens += delta
        slot.minute.correct(handle.minute, 0, delta)
        slot.day.correct(handle.day, 0, delta)

    def release(self, handle: Reservation) -> None:
        """Take back a reservation whole: the attempt did not use the quota."""
        slot = self._slots.get(handle.slot) if handle.slot is not None else None
        if slot is None or not handle.open:
            return
        handle.open = False
        slot.minute.correct(handle.minute, -1, -handle.tokens)
        slot.day.correct(handle.day, -1, -handle.tokens)

    def frees_at(
        self, key_id: str, model: str, now: float, estimated_tokens: int = 0
    ) -> float | None:
        """When the key can take the request: None if it can now, else when every window that
        blocks it has freed enough (a day with `daily_reset`: its reset). An estimate larger
        than a token limit never fits: the answer is then when that window is empty."""
        slot = self._slot(key_id, model)
        if slot is None or slot.allows(now, estimated_tokens):
            return None
        return slot.admits_at(now, estimated_tokens)

    # --- learning from 429s -------------------------------------------------------------------

    def rate_limited(
        self, key_id: str, model: str, now: float, *, refused: Reservation | None = None
    ) -> WindowName | None:
        """The upstream said 429: if the counts say the key was under its limits, lower one.

        `refused` (the refused attempt's reservation) is released first. Returns the window
        whose limit was lowered, or None (no limits, or a window was already at its limit).
        """
        if refused is not None:
            self.release(refused)
        slot = self._slot(key_id, model)
        if slot is None:
            return None
        best: tuple[float, WindowName, int, int] | None = None
        for name in WINDOWS:
            limit = slot.limit(name)
            if limit is None:
                continue
            used = slot.used(name, now)
            if used >= limit:
                return None  # the count already explains the 429: nothing to learn
            if best is None or used / limit > best[0]:
                best = (used / limit, name, used, limit)
        if best is None:
            return None
        _, name, used, limit = best
        if max(1, used) >= limit:
            return None  # a limit of 1 cannot go lower
        slot.lowered[name] = max(1, used)
        slot.successes = 0
        self._report(self._name(slot), dict(slot.lowered))
        return name

    def succeeded(self, key_id: str, model: str, now: float) -> None:
        """A request of the key succeeded: every `recover_every`, raise its lowered limits."""
        slot = self._slot(key_id, model)
        if slot is None or not slot.lowered:
            return
        slot.successes += 1
        if slot.successes < self.recover_every:
            return
        slot.successes = 0
        for name, value in list(slot.lowered.items()):
            configured = slot.policy.limits.get(name)
            assert configured is not None
            raised = value + max(1, round(configured * self.recover_step))
            if raised >= configured:
                del slot.lowered[name]
            else:
                slot.lowered[name] = raised
        self._report(self._name(slot), dict(slot.lowered) or None)

    def apply(self, change: Change) -> None:
        """Limits learned (or recovered) on another gateway."""
        key_id, _, rest = change.key.partition("|")
        if rest.startswith("*"):
            model = next((m for m, p in self._policies.items() if p.provider == rest[1:]), None)
        else:
            model = rest
        slot = self._slot(key_id, model) if model is not None else None
        if slot is None:
            return
        value: dict[str, Any] = change.value or {}
        slot.lowered = {n: int(value[n]) for n in WINDOWS if n in value}

    def changes(self, now: float) -> list[Change]:
        """Every learned limit as a change: what a fresh shared store is seeded with."""
        return [
            Change(self.PART, name, dict(slot.lowered))
            for name, slot in self._slots.items()
            if slot.lowered
        ]

    # --- for the screen -----------------------------------------------------------------------

    def view(self, key_id: str, model: str, now: float) -> QuotaView | None:
        """The key's quota for the model (its provider's, scope `provider`); None: no limits."""
        slot = self._slot(key_id, model)
        return None if slot is None else self._view(slot, now)

    def views(self, now: float) -> list[QuotaView]:
        """Every quota counted so far, by key then model."""
        return [self._view(self._slots[name], now) for name in sorted(self._slots)]

    def _view(self, slot: _Slot, now: float) -> QuotaView:
        windows = []
        for name in WINDOWS:
            configured = slot.policy.limits.get(name)
            if configured is None:
                continue
            limit = slot.limit(name)
            assert limit is not None
            window = slot.window(name)
            excess = slot.excess(name, now, 0)
            at = window.admits_at(now, *((excess, 0) if name[0] == "r" else (0, excess)))
            at_or_drop = at if excess > 0 else window.next_drop(now)
            windows.append(
                WindowView(
                    name=name,
                    used=slot.used(name, now),
                    limit=limit,
                    configured=configured,
                    lowered=limit < configured,
                    frees_in_s=None if at_or_drop is None else round(max(0.0, at_or_drop - now), 1),
                )
            )
        return QuotaView(
            key_id=slot.key_id,
            model=slot.model,
            provider=slot.policy.provider,
            windows=tuple(windows),
            blocked=not slot.allows(now, 0),
        )

    def footprint(self) -> int:
        """Buckets held across every quota: what the counting costs in memory."""
        return sum(len(s.minute) + len(s.day) for s in self._slots.values())
