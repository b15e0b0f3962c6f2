"""The write queue: what changed here and is not in Redis yet, coalesced so it stays small.

A later change to the same key replaces the earlier one (only the newest value matters), and
posterior outcomes are summed per model and hour, and quota counts per bucket, as Redis sums
them. While Redis is away the
queue keeps filling; when it is back, what is queued is written first (see mirror.py). Bounded:
past `cap` keys the oldest are dropped, with a count for the log.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..domain.changes import Change
from ..domain.posteriors import BucketRow, PosteriorBook
from ..domain.quotas import Quotas

__all__ = ["Batch", "Pending"]


@dataclass(slots=True)
class Batch:
    """What one pipelined write carries."""

    changes: list[Change] = field(default_factory=list)
    rows: list[BucketRow] = field(default_factory=list)
    uses: list[Change] = field(default_factory=list)
    """Quota counts (`quota_use`), each the sum of what was counted in its bucket."""


def _plus(a: BucketRow, b: BucketRow) -> BucketRow:
    return BucketRow(
        a.model, a.bucket_start, a.successes + b.successes, a.failures + b.failures,
        a.ttfb_sum + b.ttfb_sum, a.ttfb_n + b.ttfb_n, a.tps_sum + b.tps_sum, a.tps_n + b.tps_n,
    )  # fmt: skip


class Pending:
    """Changes waiting to be written, newest value per key, outcome rows summed per bucket."""

    def __init__(self, *, cap: int = 50_000) -> None:
        self.cap = cap
        self.dropped = 0
        """Changes dropped since the start because the queue was full."""
        self._changes: dict[tuple[str, str], Change] = {}
        self._rows: dict[tuple[str, float], BucketRow] = {}
        self._uses: dict[str, Change] = {}

    def __bool__(self) -> bool:
        return bool(self._changes or self._rows or self._uses)

    def add(self, change: Change) -> None:
        if change.part == PosteriorBook.PART:
            self._add_row(BucketRow(**change.value))
            return
        if change.part == Quotas.USE_PART:
            self._add_use(change)
            return
        slot = (change.part, change.key)
        self._changes.pop(slot, None)  # to the end: the newest go last
        self._changes[slot] = change
        while len(self._changes) > self.cap:
            del self._changes[next(iter(self._changes))]
            self.dropped += 1

    def _add_row(self, row: BucketRow) -> None:
        slot = (row.model, row.bucket_start)
        held = self._rows.get(slot)
        self._rows[slot] = row if held is None else _plus(held, row)

    def _add_use(self, change: Change) -> None:
        held = self._uses.get(change.key)
        if held is not None:
            a, b = held.value, change.value
            value = {"r": a["r"] + b["r"], "t": a["t"] + b["t"], "ttl": max(a["ttl"], b["ttl"])}
            change = Change(change.part, change.key, value)
        self._uses[change.key] = change

    def holds(self, part: str, key: str) -> bool:
        """A change to this entry is waiting to be written."""
        return (part, key) in self._changes

    def use(self, key: str) -> tuple[int, int]:
        """(requests, tokens) counted here in a quota bucket and not written yet."""
        held = self._uses.get(key)
        return (0, 0) if held is None else (held.value["r"], held.value["t"])

    def take(self) -> Batch:
        """Everything queued, leaving the queue empty."""
        batch = Batch(
            list(self._changes.values()), list(self._rows.values()), list(self._uses.values())
        )
        self._changes, self._rows, self._uses = {}, {}, {}
        return batch

    def give_back(self, batch: Batch) -> None:
        """A batch that could not be written: queued again, under anything newer."""
        newer = self._changes
        self._changes = {}
        for change in batch.changes:
            self._changes[(change.part, change.key)] = change
        for slot, change in newer.items():
            self._changes.pop(slot, None)
            self._changes[slot] = change
        for row in batch.rows:
            self._add_row(row)
        for use in batch.uses:
            self._add_use(use)

    def clear(self) -> None:
        """Forget what is queued (a full picture is being written instead)."""
        self._changes, self._rows, self._uses = {}, {}, {}
