"""Requests the gateway refused before routing them, counted by cause and told once a while.

A client with the wrong key, the wrong path or a malformed body "does nothing" from the user's
point of view; this is what puts it on the screen. The event log gets one line per cause when it
first happens, and then at most one more per `window_s`, carrying the count since the last line,
so a client retrying in a loop is one line, not a thousand.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

MAX_CAUSES = 200
"""Distinct causes remembered (the least recent is forgotten first past this)."""


@dataclass(slots=True)
class _Cause:
    total: int = 0
    unreported: int = 0
    last_line_at: float | None = None


class Rejections:
    """Counts per cause, and which occurrences deserve a line in the event log.

    Args:
        window_s: After a line about a cause, the next comes no sooner than this.
    """

    def __init__(self, *, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self._causes: dict[str, _Cause] = {}

    def count(self, cause: str, now: float) -> str | None:
        """Count one refusal; returns the event-log line to show now, or None (coalesced)."""
        entry = self._causes.pop(cause, None) or _Cause()
        self._causes[cause] = entry  # most recent last
        if len(self._causes) > MAX_CAUSES:
            del self._causes[next(iter(self._causes))]
        entry.total += 1
        entry.unreported += 1
        if entry.last_line_at is not None and now < entry.last_line_at + self.window_s:
            return None
        line = cause if entry.unreported == 1 else f"{cause} (x{entry.unreported})"
        entry.unreported = 0
        entry.last_line_at = now
        return line

    def totals(self) -> Counter[str]:
        """Refusals per cause since start."""
        return Counter({cause: entry.total for cause, entry in self._causes.items()})
