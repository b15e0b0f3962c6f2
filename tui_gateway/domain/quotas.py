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
quota), and so is every count, as a delta to one bucket (part `quota_use`, key
`{quota}|{window}|{bucket time}`, value `{"r": requests, "t": tokens, "ttl": seconds the bucket
stays in its window}`), which the shared store adds up (HINCRBY) and the other gateways
`absorb`; `load_use` takes the store's totals after a (re)connection. Only reported while a
listener is attached: a gateway on its own pays one attribute test.

Across a restart (store/quota_usage.py, proxy/app.py): `usage_changes` gives the buckets counted
in since its last call, as rows the store upserts every second, and `restore` takes them back at
start; `learned` and `restore_learned` do the same for the lowered limits. A row names its quota
as `_name` does (`key|provider/model`, or `key|*provider` with scope `provider`); one the config
no longer has as it was (model, provider or scope gone or changed) is dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .changes import Change, Reporting
from .quota_slot import WINDOWS, Limits, QuotaPolicy, Slot, WindowName
from .quota_windows import Bucket, QuotaView, Window, WindowView

__all__ = [
    "WINDOWS",
    "Limits",
    "QuotaPolicy",
    "QuotaView",
    "Quotas",
    "Reservation",
    "UsageRow",
    "WindowName",
    "WindowView",
]

UsageRow = tuple[str, str, float, int, int]
"""(quota name, window, bucket time, requests, tokens): one bucket as the store keeps it; the
window is `minute`, `day` or `daily` (`Slot.windows`), the time as in `quota_windows.Bucket`."""


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
    at: float = 0.0
    """When it was counted (what a shared count's time to live is reckoned from)."""


class Quotas(Reporting):
    """Use of every limited model by provider key, and the limits learned from 429s.

    Args:
        policies: Model name (`provider/id`) -> its policy; models left out are not limited.
        recover_every: Successes of a key that raise its lowered limits by one step.
        recover_step: A step, as a fraction of the configured limit (at least 1).
    """

    PART = "quota"
    USE_PART = "quota_use"

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
        self._slots: dict[str, Slot] = {}

    # --- which quota a request counts in ------------------------------------------------------

    def _slot(self, key_id: str, model: str) -> Slot | None:
        policy = self._policies.get(model)
        if policy is None:
            return None
        name = _quota_name(key_id, model, policy)
        slot = self._slots.get(name)
        if slot is None:
            slot = self._slots[name] = _new_slot(key_id, model, policy)
        return slot

    @staticmethod
    def _name(slot: Slot) -> str:
        return _quota_name(slot.key_id, slot.model, slot.policy)

    def __bool__(self) -> bool:
        """Whether any model is limited (routing pays for quotas only when one is)."""
        return bool(self._policies)

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
        handle = Reservation(self._name(slot), minute, day, tokens, at=now)
        if self.listener is not None:
            self._share(slot, handle, 1, tokens)
        return handle

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
        if delta and self.listener is not None:
            self._share(slot, handle, 0, delta)

    def release(self, handle: Reservation) -> None:
        """Take back a reservation whole: the attempt did not use the quota."""
        slot = self._slots.get(handle.slot) if handle.slot is not None else None
        if slot is None or not handle.open:
            return
        handle.open = False
        slot.minute.correct(handle.minute, -1, -handle.tokens)
        slot.day.correct(handle.day, -1, -handle.tokens)
        if self.listener is not None:
            self._share(slot, handle, -1, -handle.tokens)

    def _share(self, slot: Slot, handle: Reservation, requests: int, tokens: int) -> None:
        """Tell the listener of a count, one change per window (see the module's docstring)."""
        assert self.listener is not None and handle.slot is not None
        ids = (handle.minute, handle.day)
        for (label, window), bucket_id in zip(slot.windows(), ids, strict=True):
            at = window.time_of(bucket_id)
            self.listener(self._use(handle.slot, label, at, requests, tokens, window, handle.at))

    def _use(
        self, name: str, label: str, at: float, requests: int, tokens: int, window: Window,
        now: float,
    ) -> Change:  # fmt: skip
        ttl = max(1.0, window.leaves_at(at) - now)
        return Change(
            self.USE_PART, f"{name}|{label}|{at:.0f}", {"r": requests, "t": tokens, "ttl": ttl}
        )

    def absorb(self, change: Change, now: float) -> None:
        """A count made on another gateway (`_share`), added to the same bucket here."""
        name, label, at = change.key.rsplit("|", 2)
        slot = self._named(name)
        window = None if slot is None else dict(slot.windows()).get(label)
        if window is not None:
            window.absorb(float(at), int(change.value["r"]), int(change.value["t"]), now)

    def held_use(self, now: float) -> list[Change]:
        """Every bucket in its window, as counts to add: what a shared store is seeded with."""
        return [
            self._use(name, label, at, requests, tokens, window, now)
            for name, slot in self._slots.items()
            for label, window in slot.windows()
            for at, requests, tokens in window.held(now)
        ]

    def load_use(self, rows: Iterable[UsageRow], now: float) -> None:
        """The shared store's totals, which replace the counts of the buckets they name."""
        self.restore(rows, now)

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
        slot = self._named(change.key)
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

    # --- across a restart ---------------------------------------------------------------------

    def usage_changes(self) -> list[UsageRow]:
        """The buckets counted in since the last call, as rows to save (each change once; a
        bucket settled later comes again)."""
        return [
            (name, label, *bucket)
            for name, slot in self._slots.items()
            for label, window in slot.windows()
            for bucket in window.changed()
        ]

    def restore(self, rows: Iterable[UsageRow], now: float) -> None:
        """Counts saved (`usage_changes`) before a restart, so that `allows`, `frees_at` and the
        views answer as they did. Dropped: a row of a quota the config no longer has, and a
        bucket out of its window at `now` (with a daily reset: one of another day)."""
        grouped: dict[tuple[str, str], list[Bucket]] = {}
        for name, label, at, requests, tokens in rows:
            grouped.setdefault((name, label), []).append((at, requests, tokens))
        for (name, label), buckets in grouped.items():
            slot = self._named(name)
            window = None if slot is None else dict(slot.windows()).get(label)
            if window is not None:
                window.restore(buckets, now)

    def learned(self) -> dict[str, dict[WindowName, int]]:
        """Every lowered limit by quota name, to save (what `restore_learned` takes)."""
        return {name: dict(slot.lowered) for name, slot in self._slots.items() if slot.lowered}

    def restore_learned(self, saved: Mapping[str, Any]) -> None:
        """Limits lowered before a restart (`learned`); one the config no longer has, or that
        is not under the configured limit any more, is dropped."""
        for name, lowered in saved.items():
            slot = self._named(name) if isinstance(lowered, dict) else None
            if slot is not None:
                slot.restore_lowered(lowered)

    def _named(self, name: str) -> Slot | None:
        """The quota a saved name stands for, if the config still has it with the same scope."""
        key_id, _, rest = name.partition("|")
        if rest.startswith("*"):
            shared = (m for m, p in self._policies.items() if p.scope == "provider")
            model = next((m for m in shared if self._policies[m].provider == rest[1:]), None)
        else:
            policy = self._policies.get(rest)
            model = rest if policy is not None and policy.scope == "key" else None
        return None if model is None or not key_id else self._slot(key_id, model)

    # --- for the screen -----------------------------------------------------------------------

    def view(self, key_id: str, model: str, now: float) -> QuotaView | None:
        """The key's quota for the model (its provider's, scope `provider`); None: no limits."""
        slot = self._slot(key_id, model)
        return None if slot is None else slot.view(now)

    def views(self, now: float) -> list[QuotaView]:
        """Every quota counted so far, by key then model."""
        return [self._slots[name].view(now) for name in sorted(self._slots)]

    def overview(self, key_ids: Callable[[str], Iterable[str]], now: float) -> list[QuotaView]:
        """Every limited model's quota on each of its provider's keys (`key_ids`), counted or
        not yet, by provider, key, then model; a quota shared by a provider's models once.
        Changes nothing: a quota not counted yet is shown from an empty slot, not stored."""
        out: dict[str, QuotaView] = {}
        for model, policy in sorted(self._policies.items()):
            for key_id in key_ids(policy.provider):
                name = _quota_name(key_id, model, policy)
                if name not in out:
                    slot = self._slots.get(name) or _new_slot(key_id, model, policy)
                    out[name] = slot.view(now)
        return sorted(out.values(), key=lambda v: (v.provider, v.key_id, v.model or ""))

    def footprint(self) -> int:
        """Buckets held across every quota: what the counting costs in memory."""
        return sum(len(s.minute) + len(s.day) for s in self._slots.values())


def _quota_name(key_id: str, model: str | None, policy: QuotaPolicy) -> str:
    """`key|provider/model`, or `key|*provider` for a quota all the provider's models share:
    the name a quota is kept, saved and shared under."""
    return f"{key_id}|*{policy.provider}" if policy.scope == "provider" else f"{key_id}|{model}"


def _new_slot(key_id: str, model: str, policy: QuotaPolicy) -> Slot:
    return Slot(key_id, None if policy.scope == "provider" else model, policy)
