"""Which conversation a request belongs to, from its history, when the client does not say.

A conversation is keyed by its history, not by its first user message: aider opens every
conversation with the same example exchange and Qwen Code with the same environment preamble,
so a first-message key made all of them one session, pinned to one model.

The rule: a request continues the conversation whose earlier request ended where this one's
history, up to its last user turn, ends. Each request registers the state it reaches (its
system and user turns, through the last user turn); the next turn of the same conversation sends
that history plus the reply and a new user turn, and finds it. A new conversation that starts
with the same preamble has no earlier request ending at the preamble, so it gets a key of its
own, made from its whole history.

Only system and user turns count: replies and tool results are not known when a request is
registered, and clients echo them back reformatted. Each turn is summarised by its role, its
length and its first and last 256 characters, so the cost grows with the number of turns, not
with their size. Bounded like sticky sessions: an entry lives `ttl_s` after its last use, and at
most `cap` are kept.

Shared between gateways (changes.py), so the next turn finds its conversation whichever
gateway gets it: each state registered here is reported, kept for `ttl_s`.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from .changes import Change, Reporting
from .sessions import flatten_content

_COUNTED_ROLES = frozenset({"system", "developer", "user"})
_EDGE = 256


def _turn_summary(role: str, text: str) -> bytes:
    edges = text if len(text) <= 2 * _EDGE else text[:_EDGE] + text[-_EDGE:]
    return f"{role}\x00{len(text)}\x00{edges}\x01".encode("utf-8", "replace")


def history_states(mode: str, messages: Sequence[Mapping[str, Any]]) -> tuple[str | None, str]:
    """(the state the history reached before its last user turn, the state through it).

    The first is None when there is no user turn before the last one: a conversation's
    first request, which continues nothing.
    """
    running = hashlib.blake2b(mode.encode("utf-8", "replace"), digest_size=16)
    before_last: str | None = None
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    seen_user = False
    for i, message in enumerate(messages):
        role = message.get("role")
        if role not in _COUNTED_ROLES:
            continue
        if i == last_user:
            before_last = running.hexdigest() if seen_user else None
        seen_user = seen_user or role == "user"
        running.update(_turn_summary(str(role), flatten_content(message.get("content"))))
    return before_last, running.hexdigest()


class ConversationIndex(Reporting):
    """History states -> the session they belong to, least recently used first.

    Args:
        ttl_s: A state is forgotten this long after its last use (the sticky TTL).
        cap: At most this many states are kept.
    """

    PART = "conversation"

    def __init__(self, *, ttl_s: float, cap: int) -> None:
        if ttl_s <= 0 or cap < 1:
            raise ValueError("ttl_s must be positive and cap at least 1")
        self.ttl_s = ttl_s
        self.cap = cap
        self._states: OrderedDict[str, tuple[str, float]] = OrderedDict()
        """state -> (session key, last used)."""

    def __len__(self) -> int:
        return len(self._states)

    def session_for(self, mode: str, messages: Sequence[Mapping[str, Any]], now: float) -> str:
        """The session key of this request's conversation; registers the state it reaches."""
        before, through = history_states(mode, messages)
        session = self._live(before, now) if before is not None else None
        if session is None:
            session = through[:16]  # a new conversation, named by its whole history
        self._states[through] = (session, now)
        self._states.move_to_end(through)
        self._prune(now)
        if self.listener is not None:
            self._report(through, {"session": session, "used": now}, now + self.ttl_s)
        return session

    def apply(self, change: Change) -> None:
        """A state registered on another gateway (none is ever removed on purpose)."""
        if change.value is not None:
            self._states[change.key] = (str(change.value["session"]), float(change.value["used"]))
            self._states.move_to_end(change.key)

    def changes(self, now: float) -> list[Change]:
        """Every live state as a change: what a fresh shared store is seeded with."""
        return [
            Change(self.PART, state, {"session": session, "used": used}, used + self.ttl_s)
            for state, (session, used) in self._states.items()
            if now < used + self.ttl_s
        ]

    def _live(self, state: str, now: float) -> str | None:
        found = self._states.get(state)
        if found is None:
            return None
        session, used = found
        if now >= used + self.ttl_s:
            del self._states[state]
            return None
        return session

    def _prune(self, now: float) -> None:
        states = self._states
        while states:
            oldest, (_, used) = next(iter(states.items()))
            if len(states) <= self.cap and now < used + self.ttl_s:
                return
            del states[oldest]
