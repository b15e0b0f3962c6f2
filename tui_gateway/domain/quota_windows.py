"""The windows quotas count in (rolling buckets, or a day with a fixed reset), and their views.

A rolling window (60 s, 24 h) keeps one bucket per `bucket_s` (1 s for the minute, 60 s for the
day) holding the requests and tokens counted in it, so a day of traffic is at most 1,441 buckets
whatever the rate, and the window's totals are kept running (a check is two reads, not a sum).
A request is counted in the bucket of the next bucket boundary at or after its time (rounded
up), and a bucket at time `b` leaves the window when `now >= b + span`: a request at a boundary
leaves exactly `span` later, any other at most one bucket later, never earlier, so the window
never lets through a request the exact rolling count would refuse.

`DailyReset` ("00:00 UTC", or another HH:MM and an IANA zone) replaces the rolling day with a
calendar day that empties at that local time (`Daily`), so it can say when the quota comes back.

The clock is injected (`now`, epoch seconds); if it goes back, a request is counted in the
latest bucket instead (later, never earlier).

Across a restart (store/quota_usage.py): `changed` gives the buckets counted in since its last
call, as `Bucket`s (a set add per count marks them: the hot path pays nothing more), and
`restore` takes saved ones back, so that the window answers as it did before the restart.
Between gateways (`[cluster]`): `absorb` adds another gateway's counts to a bucket, and `held`
gives every bucket, to seed a shared store.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

import msgspec

__all__ = ["Bucket", "Daily", "DailyReset", "QuotaView", "Rolling", "Window", "WindowView"]

_RESET = re.compile(r"^\s*(\d{1,2}):(\d{2})\s+(\S+)\s*$")
Bucket = tuple[float, int, int]
"""(time, requests, tokens), as saved: the time is a rolling bucket's boundary (epoch seconds;
it leaves the window `span_s` later), or for a `Daily` the end of the day it counted."""


def _zone(name: str) -> dt.tzinfo:
    if name.upper() in ("UTC", "Z"):
        return dt.timezone.utc  # no tz database needed for the usual case
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # only a config with a zone needs it

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"no time zone {name!r} is known; use an IANA name such as Europe/Paris"
        ) from None


@dataclass(frozen=True, slots=True)
class DailyReset:
    """A provider's daily quota comes back at `hour:minute` local time in `zone`."""

    hour: int
    minute: int
    zone: str = "UTC"
    """An IANA zone name (`Europe/Paris`, `America/Los_Angeles`) or `UTC`."""

    def __post_init__(self) -> None:
        if not (0 <= self.hour <= 23 and 0 <= self.minute <= 59):
            raise ValueError(f"no such time of day: {self.hour:02d}:{self.minute:02d}")
        _zone(self.zone)

    @classmethod
    def parse(cls, text: str) -> DailyReset:
        """`"00:00 UTC"`, `"09:30 Asia/Kolkata"` -> a DailyReset.

        Raises:
            ValueError: not a time and a zone, an impossible time, or an unknown zone.
        """
        found = _RESET.match(text)
        if found is None:
            raise ValueError(f"not a time and zone: {text!r}")
        return cls(int(found[1]), int(found[2]), found[3])

    def next_after(self, now: float) -> float:
        """The first reset strictly after `now` (epoch seconds), in the zone's local time.

        On a day whose reset time falls in a DST gap, the zone's rule for the nonexistent time
        applies (fold 0); a time that occurs twice resets at its first occurrence.
        """
        tz = _zone(self.zone)
        day = dt.datetime.fromtimestamp(now, tz).date()
        at_time = dt.time(self.hour, self.minute)
        for offset in range(3):
            at = dt.datetime.combine(day + dt.timedelta(days=offset), at_time, tzinfo=tz)
            if at.timestamp() > now:
                return at.timestamp()
        raise AssertionError("a daily reset within three days")  # pragma: no cover

    def __str__(self) -> str:
        return f"{self.hour:02d}:{self.minute:02d} {self.zone}"


class Rolling:
    """Requests and tokens of the last `span_s` seconds, in buckets of `bucket_s`."""

    __slots__ = ("span_s", "bucket_s", "requests", "tokens", "_buckets", "_last", "_dirty")

    def __init__(self, span_s: float, bucket_s: float) -> None:
        if not (span_s > 0 and 0 < bucket_s <= span_s):
            raise ValueError("need 0 < bucket_s <= span_s")
        self.span_s = span_s
        self.bucket_s = bucket_s
        self.requests = 0
        """Running totals of the buckets held (pruned ones already taken off)."""
        self.tokens = 0
        self._buckets: dict[int, list[int]] = {}
        """Bucket index -> [requests, tokens], oldest first (indices only grow)."""
        self._last = -(1 << 62)
        """The latest bucket index used: a clock going back counts in it, not earlier."""
        self._dirty: set[int] = set()
        """Bucket indices counted in since the last `changed()`."""

    def _prune(self, now: float) -> None:
        buckets = self._buckets
        while buckets:
            index = next(iter(buckets))
            if index * self.bucket_s + self.span_s > now:
                return
            requests, tokens = buckets.pop(index)
            self.requests -= requests
            self.tokens -= tokens

    def used(self, now: float) -> tuple[int, int]:
        """(requests, tokens) counted in the window at `now`."""
        self._prune(now)
        return self.requests, self.tokens

    def add(self, now: float, requests: int, tokens: int) -> float:
        """Count at `now`; returns the bucket's id, for `correct`."""
        self._prune(now)
        index = max(math.ceil(now / self.bucket_s - 1e-9), self._last)
        self._last = index
        bucket = self._buckets.setdefault(index, [0, 0])
        bucket[0] += requests
        bucket[1] += tokens
        self.requests += requests
        self.tokens += tokens
        self._dirty.add(index)
        return index

    def correct(self, bucket_id: float, requests: int, tokens: int) -> None:
        """Add (or, negative, take back) counts in a bucket, if it is still held."""
        bucket = self._buckets.get(int(bucket_id))
        if bucket is None:
            return  # it left the window: nothing of it counts any more
        requests = max(requests, -bucket[0])
        tokens = max(tokens, -bucket[1])
        bucket[0] += requests
        bucket[1] += tokens
        self.requests += requests
        self.tokens += tokens
        self._dirty.add(int(bucket_id))

    def admits_at(self, now: float, free_requests: int, free_tokens: int) -> float:
        """When at least this many requests and tokens will have left the window (`now`: now)."""
        self._prune(now)
        if free_requests <= 0 and free_tokens <= 0:
            return now
        freed_requests = freed_tokens = 0
        end = now
        for index, (requests, tokens) in self._buckets.items():
            freed_requests += requests
            freed_tokens += tokens
            end = index * self.bucket_s + self.span_s
            if freed_requests >= free_requests and freed_tokens >= free_tokens:
                return end
        return end  # more than the window holds: by then it is empty

    def next_drop(self, now: float) -> float | None:
        """When the oldest counted bucket leaves; None when nothing is counted."""
        self._prune(now)
        for index in self._buckets:
            return index * self.bucket_s + self.span_s
        return None

    def changed(self) -> list[Bucket]:
        """The buckets counted in (or corrected) since the last call and still held, oldest
        first; each change is given once, so a periodic save writes only what moved."""
        dirty, self._dirty = self._dirty, set()
        held = self._buckets
        return [(i * self.bucket_s, held[i][0], held[i][1]) for i in sorted(dirty) if i in held]

    def restore(self, buckets: Iterable[Bucket], now: float) -> None:
        """Take back buckets saved before a restart (each replacing one held at its time);
        those already out of the window at `now` are dropped. Restored buckets are not
        `changed`: they are saved already."""
        merged = dict(self._buckets)
        for at, requests, tokens in buckets:
            index = round(at / self.bucket_s)
            if index * self.bucket_s + self.span_s > now:
                merged[index] = [max(0, requests), max(0, tokens)]
        self._buckets = {i: merged[i] for i in sorted(merged)}  # oldest first, as `add` keeps
        self.requests = sum(b[0] for b in self._buckets.values())
        self.tokens = sum(b[1] for b in self._buckets.values())
        if self._buckets:
            self._last = max(self._last, next(reversed(self._buckets)))

    def absorb(self, at: float, requests: int, tokens: int, now: float) -> None:
        """Add counts another gateway made in the bucket at time `at` (what `bucket_at` says),
        if it is still in the window; a bucket not held yet is made, in its place."""
        self._prune(now)
        index = round(at / self.bucket_s)
        if index * self.bucket_s + self.span_s <= now:
            return
        buckets = self._buckets
        bucket = buckets.get(index)
        if bucket is None:
            later = bool(buckets) and index < next(reversed(buckets))
            bucket = buckets[index] = [0, 0]
            if later:  # kept oldest first, as `_prune` reads them
                self._buckets = {i: buckets[i] for i in sorted(buckets)}
        requests, tokens = max(requests, -bucket[0]), max(tokens, -bucket[1])
        bucket[0] += requests
        bucket[1] += tokens
        self.requests += requests
        self.tokens += tokens
        self._dirty.add(index)

    def time_of(self, bucket_id: float) -> float:
        """The time of a bucket id from `add` (what `Bucket`s, `absorb` and `held` name)."""
        return bucket_id * self.bucket_s

    def leaves_at(self, at: float) -> float:
        """When the bucket at time `at` leaves the window."""
        return at + self.span_s

    def held(self, now: float) -> list[Bucket]:
        """Every bucket in the window at `now`, oldest first."""
        self._prune(now)
        return [(i * self.bucket_s, r, t) for i, (r, t) in self._buckets.items()]

    def __len__(self) -> int:
        """Buckets held (the memory it takes)."""
        return len(self._buckets)


class Daily:
    """Requests and tokens since the last daily reset."""

    __slots__ = ("reset", "requests", "tokens", "_ends", "_dirty")

    def __init__(self, reset: DailyReset) -> None:
        self.reset = reset
        self.requests = 0
        self.tokens = 0
        self._ends = -math.inf
        """When the current day ends (the next reset)."""
        self._dirty = False
        """Counted in since the last `changed()`."""

    def _roll(self, now: float) -> None:
        if now >= self._ends:
            self.requests = self.tokens = 0
            self._ends = self.reset.next_after(now)

    def used(self, now: float) -> tuple[int, int]:
        self._roll(now)
        return self.requests, self.tokens

    def add(self, now: float, requests: int, tokens: int) -> float:
        """Count at `now`; returns the day's id (its end), for `correct`."""
        self._roll(now)
        self.requests += requests
        self.tokens += tokens
        self._dirty = True
        return self._ends

    def correct(self, bucket_id: float, requests: int, tokens: int) -> None:
        """Correct the counts, if the day they were counted in is still the current one."""
        if bucket_id != self._ends:
            return
        self.requests = max(0, self.requests + requests)
        self.tokens = max(0, self.tokens + tokens)
        self._dirty = True

    def admits_at(self, now: float, free_requests: int, free_tokens: int) -> float:
        """Now if nothing needs to leave, else the next reset: a day frees all at once."""
        self._roll(now)
        return now if free_requests <= 0 and free_tokens <= 0 else self._ends

    def next_drop(self, now: float) -> float | None:
        """The next reset: when the day's quota comes back (shown even with nothing used)."""
        self._roll(now)
        return self._ends

    def changed(self) -> list[Bucket]:
        """The day's counts, as one bucket at its end, if counted in since the last call."""
        if not self._dirty:
            return []
        self._dirty = False
        return [(self._ends, self.requests, self.tokens)]

    def restore(self, buckets: Iterable[Bucket], now: float) -> None:
        """Take back the counts saved before a restart for the current day at `now`; another
        day's (one that ended, or a reset that moved) are dropped."""
        self._roll(now)
        for ends, requests, tokens in buckets:
            if ends == self._ends:  # the same float: both come from `next_after` of that day
                self.requests, self.tokens = max(0, requests), max(0, tokens)

    def absorb(self, at: float, requests: int, tokens: int, now: float) -> None:
        """Add counts another gateway made in the day ending at `at`, if it is today."""
        self._roll(now)
        if at == self._ends:
            self.correct(at, requests, tokens)

    def time_of(self, bucket_id: float) -> float:
        """A day's id is its time: its end."""
        return bucket_id

    def leaves_at(self, at: float) -> float:
        return at

    def held(self, now: float) -> list[Bucket]:
        """Today's counts as one bucket at its end (none when nothing is counted)."""
        self._roll(now)
        return [(self._ends, self.requests, self.tokens)] if self.requests or self.tokens else []

    def __len__(self) -> int:
        return 1


Window = Rolling | Daily


class WindowView(msgspec.Struct, frozen=True):
    """One limit of one quota, for the screen and `/gateway/state`."""

    name: str
    used: int
    limit: int
    """The effective limit (lowered after a 429 under the configured one)."""
    configured: int
    lowered: bool
    frees_in_s: float | None
    """When full: seconds until one more request fits; else until the count next drops (the
    next reset, for a day with `daily_reset`); None when nothing is counted."""


class QuotaView(msgspec.Struct, frozen=True):
    """One key's quota for one model (or for its whole provider, scope `provider`)."""

    key_id: str
    model: str | None
    """None with scope `provider`: the quota is the provider's, for all its models."""
    provider: str
    windows: tuple[WindowView, ...]
    blocked: bool
    """Whether a request (with no token estimate) would be refused now."""
    masked: str = ""
    """The key as the screen shows it (a short prefix and the last four characters); the
    snapshot fills it in from the key ring, which alone holds the secrets."""
