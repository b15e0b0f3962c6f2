"""Stream timers that know the model: timeouts learned from each model's own recent attempts.

A fixed first-byte timeout is wrong for everyone: 10 s is far too long for a model that always
answers in 300 ms, and too short for a reasoning model that thinks for 30 s. So, per model key
(`provider/id`), `LearnedTimers` keeps a bounded window of recent observations of its successful
streamed attempts: the time to first byte, and the largest gap between two chunks of each
attempt. The effective timeout is `multiple` x the window's `quantile`, clamped to
`[floor, ceiling]`, where the ceiling is the configured timeout (`StreamingSettings`); with fewer
than `min_samples` observations the ceiling holds as it is. Learned timers therefore only ever
tighten the configured ones: the configured value is the most any model is waited for.

Only successes are observed, and that is the caller's job: a stall observed would teach the timer
to wait longer for the next one.

Quantile: nearest rank over the window (`quantile`), so the answer is always a time the model
really took. The window is small (50 by default) and kept sorted as observations come and go,
so a timeout costs a dict lookup, an index and a few comparisons: about 0.5 µs.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import msgspec

__all__ = ["LearnedTimers", "TimerPolicy", "TimerView", "quantile"]


def quantile(values: Iterable[float], q: float) -> float:
    """The nearest-rank `q` quantile: the smallest value with at least `q` of all values <= it.

    For n sorted values that is the one at rank `ceil(q * n)` (1-based, at least 1): q = 0.95 over
    50 values is the 48th smallest, so the two slowest are left out; over 8 or fewer it is the
    largest. `q * n` is taken 1e-9 low so that a product that should be whole (0.95 x 20) and
    lands a hair above it in floating point does not skip a rank.

    Raises:
        ValueError: `values` is empty or `q` is not in (0, 1].
    """
    ordered = sorted(values)
    if not ordered:
        raise ValueError("quantile of no values")
    if not 0.0 < q <= 1.0:
        raise ValueError(f"q must be in (0, 1], got {q}")
    rank = max(1, math.ceil(q * len(ordered) - 1e-9))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class TimerPolicy:
    """How the timers learn from a model's history, and how far they trust it."""

    quantile: float = 0.95
    """Which of the model's recent times counts as its usual worst. 0.95 rather than the maximum,
    so one cold start or one slow hour in 50 attempts does not stretch the timer for the next 50
    (nearest rank over 50 leaves out the two slowest); rather than the median, because the timer
    must let through nearly every healthy answer, and the tail is what it has to clear."""
    multiple: float = 3.0
    """Headroom over that quantile. Latency tails are heavy and a provider's load moves by the
    hour, so a timer at the quantile itself would fire on one healthy answer in twenty; 3x the
    usual worst is a silence the model has very rarely shown while healthy, yet still a fraction of
    the fixed timer for a fast model (p95 of 0.8 s: 2.4 s instead of 10 s)."""
    min_samples: int = 8
    """Observations needed before the history is used at all; below, the configured timeout holds.
    With 8 the quantile is at worst the largest of 8 real attempts: a few minutes of use, and
    few enough that a new model is not left on the fixed timer for long."""
    first_byte_floor_s: float = 2.0
    """The shortest first-byte timeout ever set. Below about 2 s ordinary noise fires it: a new
    TLS handshake, a provider's queue, the event loop busy under a burst. A stall before the first
    byte is retried silently on the next candidate, but each false one wastes an upstream call
    (and, on free tiers, quota)."""
    stall_floor_s: float = 2.0
    """The shortest mid-stream stall timeout ever set. Gaps can be tiny for a fast model (its usual
    longest may be 0.2 s), but a server-side pause of a second or so is ordinary, and a stall after
    the first byte is visible (an error event, or a continuation on another model): 2 s of silence
    from a model whose usual longest gap is 0.2 s is already ten times its habit."""
    window: int = 50
    """Observations kept per model and kind; the oldest goes first. Enough for the 0.95 quantile
    to leave out two outliers; short enough to follow a model that changed (a provider's new
    hardware, a busy hour): at a few requests a minute, about the last hour of use."""

    def __post_init__(self) -> None:
        if not 0.0 < self.quantile <= 1.0:
            raise ValueError(f"quantile must be in (0, 1], got {self.quantile}")
        if not self.multiple > 0.0:
            raise ValueError(f"multiple must be > 0, got {self.multiple}")
        if self.min_samples < 1 or self.window < self.min_samples:
            raise ValueError(
                f"need 1 <= min_samples <= window, got {self.min_samples} and {self.window}"
            )
        if not (self.first_byte_floor_s >= 0.0 and self.stall_floor_s >= 0.0):
            raise ValueError("floors must be >= 0 s")


class TimerView(msgspec.Struct, frozen=True):
    """What the timers learned of one model, for the screen and `/gateway/state`."""

    model: str
    usual_first_byte_s: float | None
    """The quantile of its recent times to first byte; None with fewer than `min_samples`."""
    usual_gap_s: float | None
    """The quantile of its recent attempts' longest gaps between chunks; None likewise."""
    first_byte_timeout_s: float
    """The effective first-byte timeout, for the ceiling the caller gave."""
    stall_timeout_s: float
    """The effective mid-stream stall timeout, for the ceiling the caller gave."""
    first_byte_samples: int
    gap_samples: int


class _Window:
    """One model's recent observations of one kind, kept in order of arrival and sorted.

    Every success adds an observation, so a quantile cached until the next one was recomputed
    (two sorts of 50) on nearly every request; the sorted copy, kept by bisection as values come
    and go, answers it by index instead.
    """

    __slots__ = ("values", "_sorted")

    def __init__(self, size: int) -> None:
        self.values: deque[float] = deque(maxlen=size)
        self._sorted: list[float] = []

    def add(self, value: float) -> None:
        values = self.values
        if len(values) == values.maxlen:
            del self._sorted[bisect.bisect_left(self._sorted, values[0])]
        values.append(value)
        bisect.insort(self._sorted, value)

    def usual(self, policy: TimerPolicy) -> float | None:
        n = len(self._sorted)
        if n < policy.min_samples:  # at least 1 (TimerPolicy checks it)
            return None
        # The same nearest rank as `quantile`, over the same values.
        return self._sorted[max(1, math.ceil(policy.quantile * n - 1e-9)) - 1]


class _History:
    __slots__ = ("first_byte", "gap")

    def __init__(self, size: int) -> None:
        self.first_byte = _Window(size)
        self.gap = _Window(size)


def _usable(seconds: float | None) -> float | None:
    """`seconds` if it is a real duration (finite, >= 0), else None."""
    return seconds if seconds is not None and 0.0 <= seconds < math.inf else None


class LearnedTimers:
    """Per model, its usual time to first byte and longest gap, and the timeouts they give."""

    def __init__(self, policy: TimerPolicy | None = None) -> None:
        self.policy = policy if policy is not None else TimerPolicy()
        self._models: dict[str, _History] = {}

    def observe(self, model: str, *, first_byte_s: float | None, max_gap_s: float | None) -> None:
        """Learn from one successful streamed attempt of `model` (the caller skips failures).

        Args:
            model: The model key, `provider/id`.
            first_byte_s: Seconds from sending the request to the first byte; None if unknown.
            max_gap_s: The attempt's largest silence between two chunks, in seconds; None if
                unknown (an old log row, or a reply in one chunk).

        A value that is negative, infinite or NaN is ignored, as is the call if both are None.
        """
        fb = _usable(first_byte_s)
        gap = _usable(max_gap_s)
        if fb is None and gap is None:
            return
        history = self._models.get(model)
        if history is None:
            history = self._models[model] = _History(self.policy.window)
        if fb is not None:
            history.first_byte.add(fb)
        if gap is not None:
            history.gap.add(gap)

    def usual_first_byte(self, model: str) -> float | None:
        """The model's usual (quantile) time to first byte; None with too little history."""
        history = self._models.get(model)
        return None if history is None else history.first_byte.usual(self.policy)

    def usual_gap(self, model: str) -> float | None:
        """The model's usual (quantile) longest gap between chunks; None with too little history.

        A request whose silence passes this is "stalling": unusual for this model, though not yet
        past its `stall_timeout`.
        """
        history = self._models.get(model)
        return None if history is None else history.gap.usual(self.policy)

    def first_byte_timeout(self, model: str, ceiling_s: float) -> float:
        """Seconds to wait for the model's first byte: `ceiling_s` (the configured timeout) until
        the model has history, then `multiple` x its usual, within [floor, ceiling]."""
        return self._clamp(self.usual_first_byte(model), self.policy.first_byte_floor_s, ceiling_s)

    def stall_timeout(self, model: str, ceiling_s: float) -> float:
        """Seconds of silence after the first byte before the model is stalled: `ceiling_s` until
        the model has history, then `multiple` x its usual longest gap, within [floor, ceiling]."""
        return self._clamp(self.usual_gap(model), self.policy.stall_floor_s, ceiling_s)

    def _clamp(self, usual: float | None, floor_s: float, ceiling_s: float) -> float:
        if usual is None:
            return ceiling_s
        return min(ceiling_s, max(floor_s, self.policy.multiple * usual))  # the ceiling wins

    def samples(self, model: str) -> tuple[int, int]:
        """How many first-byte and gap observations the model's window holds."""
        history = self._models.get(model)
        if history is None:
            return (0, 0)
        return (len(history.first_byte.values), len(history.gap.values))

    def models(self) -> list[str]:
        """Every model observed, sorted."""
        return sorted(self._models)

    def describe(
        self, model: str, *, first_byte_ceiling_s: float, stall_ceiling_s: float
    ) -> TimerView | None:
        """What the timers know of `model`, with its timeouts for these ceilings; None if it was
        never observed."""
        history = self._models.get(model)
        if history is None:
            return None
        return TimerView(
            model=model,
            usual_first_byte_s=history.first_byte.usual(self.policy),
            usual_gap_s=history.gap.usual(self.policy),
            first_byte_timeout_s=self.first_byte_timeout(model, first_byte_ceiling_s),
            stall_timeout_s=self.stall_timeout(model, stall_ceiling_s),
            first_byte_samples=len(history.first_byte.values),
            gap_samples=len(history.gap.values),
        )

    def views(
        self,
        *,
        first_byte_ceiling_s: float,
        stall_ceiling_s: float,
        models: Sequence[str] | None = None,
    ) -> tuple[TimerView, ...]:
        """`describe` for each of `models` that was observed (default: every one, sorted)."""
        out = []
        for model in self.models() if models is None else models:
            view = self.describe(
                model, first_byte_ceiling_s=first_byte_ceiling_s, stall_ceiling_s=stall_ceiling_s
            )
            if view is not None:
                out.append(view)
        return tuple(out)
