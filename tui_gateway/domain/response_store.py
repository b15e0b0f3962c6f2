"""Stored Responses-API conversations, for `previous_response_id`.

Each stored response is the conversation that produced it, as internal chat messages without the
request's instructions, followed by its own output as assistant turn(s). Entries live `ttl_s`
after they were stored (they are never refreshed: the id names one fixed reply) and at most
`cap` are kept, the oldest going first. Expiry is exclusive: stored at `t`, an entry is found
while `now < t + ttl_s`.

Successive turns share their message dicts, so a long chain costs one copy of each message,
not one per turn; nothing here mutates them.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

Messages = tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class StoredResponse:
    messages: Messages
    """The whole conversation up to and including this response's output."""
    stored_at: float


@dataclass(frozen=True, slots=True)
class StoreCounts:
    """How full the store is, for `/gateway/state`."""

    stored: int
    cap: int
    ttl_s: float

    def as_json(self) -> dict[str, Any]:
        return {"stored": self.stored, "cap": self.cap, "ttl_s": self.ttl_s}


class ResponseStore:
    """Response id -> conversation, in the order stored (so the oldest is always first).

    Args:
        ttl_s: How long a stored response can be continued.
        cap: At most this many are kept; storing one more drops the oldest.
    """

    def __init__(self, *, ttl_s: float, cap: int) -> None:
        if ttl_s <= 0 or cap < 1:
            raise ValueError("ttl_s must be above 0 and cap at least 1")
        self.ttl_s = ttl_s
        self.cap = cap
        self._entries: OrderedDict[str, StoredResponse] = OrderedDict()

    def put(self, response_id: str, messages: Messages, *, now: float) -> None:
        self._expire(now)
        self._entries.pop(response_id, None)
        self._entries[response_id] = StoredResponse(messages, now)
        while len(self._entries) > self.cap:
            self._entries.popitem(last=False)

    def get(self, response_id: str, *, now: float) -> Messages | None:
        """The conversation behind `response_id`, or None if it was never stored or expired."""
        self._expire(now)
        entry = self._entries.get(response_id)
        return None if entry is None else entry.messages

    def counts(self, *, now: float) -> StoreCounts:
        self._expire(now)
        return StoreCounts(len(self._entries), self.cap, self.ttl_s)

    def _expire(self, now: float) -> None:
        # One TTL for all and insertion in time order: the expired ones are all at the front.
        entries = self._entries
        while entries:
            oldest = next(iter(entries.values()))
            if now < oldest.stored_at + self.ttl_s:
                return
            entries.popitem(last=False)
