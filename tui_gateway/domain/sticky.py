"""Sticky sessions: a conversation stays on the model that last served it.

A session is keyed by the id a client sends (`X-Session-Id`, Claude Code's and Codex's own
headers) or else by its history (see `conversations.py`).
It lives `ttl_s` after its last use; at most `cap` are kept, the least recently used going first.
Each session also remembers the providers banned for it (`provider-ban` protection), each ban
lasting `ban_ttl_s`.

Expiry is exclusive: a session last used at `t` is live while `now < t + ttl_s` and gone at
`t + ttl_s`; a ban made at `b` is active while `now < b + ban_ttl_s`.

Shared between gateways (changes.py): a session opened, pinned, unpinned, banned from or
cleared here is reported whole, kept until it would expire; a turn that only reuses a session
is not (its pin, at the end of the turn, is). Evictions past `cap` stay local.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from .changes import Change, Reporting


def provider_of(model: str) -> str:
    """The provider part of a `provider/id` model key (ids may contain further slashes)."""
    return model.split("/", 1)[0]


@dataclass(slots=True)
class SessionEntry:
    """One conversation, as routing remembers it."""

    key: str
    mode: str
    """Routing mode the client asked for: `auto`, `auto-smart`, or a model key."""
    preview: str
    """First words of the first user message, for display."""
    created: float
    last_used: float
    model: str | None = None
    """The sticky model: the one that last served this session."""
    api_key_id: str | None = None
    """Which of the provider's keys served it last."""
    turns: int = 0
    """Successful answers given in this session."""
    source: str = "history"
    """Where the key came from: the header the client named it in, or `history`."""
    banned: dict[str, float] = field(default_factory=dict)
    """Provider -> time it was banned for this session."""

    def expires(self, ttl_s: float) -> float:
        """When this session is forgotten unless it is used again."""
        return self.last_used + ttl_s

    def active_bans(self, now: float, ban_ttl_s: float) -> dict[str, float]:
        """Provider -> seconds left, for the bans still in force at `now`."""
        return {p: t + ban_ttl_s - now for p, t in self.banned.items() if now < t + ban_ttl_s}

    def as_json(self, now: float, *, ttl_s: float, ban_ttl_s: float) -> dict[str, Any]:
        """A snapshot for the TUI and the admin API; times are seconds left."""
        return {
            "key": self.key,
            "mode": self.mode,
            "preview": self.preview,
            "model": self.model,
            "api_key_id": self.api_key_id,
            "turns": self.turns,
            "source": self.source,
            "banned": {p: round(s, 1) for p, s in self.active_bans(now, ban_ttl_s).items()},
            "expires_in": round(max(0.0, self.expires(ttl_s) - now), 1),
        }


_FIELDS = tuple(f.name for f in fields(SessionEntry))


class StickySessions(Reporting):
    """Sessions in least-recently-used order, each O(1) per request except `entries`.

    Args:
        ttl_s: A session is forgotten this long after its last use.
        cap: At most this many sessions are kept; opening one more evicts the least recently used.
        ban_ttl_s: How long a provider ban lasts within a session.
    """

    PART = "session"

    def __init__(
        self, *, ttl_s: float = 1800.0, cap: int = 10_000, ban_ttl_s: float = 180.0
    ) -> None:
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        if cap < 1:
            raise ValueError(f"cap must be at least 1, got {cap}")
        if ban_ttl_s < 0:
            raise ValueError(f"ban_ttl_s must not be negative, got {ban_ttl_s}")
        self.ttl_s = ttl_s
        self.cap = cap
        self.ban_ttl_s = ban_ttl_s
        self._sessions: OrderedDict[str, SessionEntry] = OrderedDict()
        """Least recently used first."""

    def __len__(self) -> int:
        return len(self._sessions)

    def _expired(self, entry: SessionEntry, now: float) -> bool:
        return now >= entry.expires(self.ttl_s)

    def get(self, key: str, now: float) -> SessionEntry | None:
        """The live session for `key`, or None.

        An expired session is dropped. Reading does not extend the TTL nor count as use.
        """
        entry = self._sessions.get(key)
        if entry is None:
            return None
        if self._expired(entry, now):
            del self._sessions[key]
            return None
        return entry

    def open(
        self,
        key: str,
        *,
        mode: str,
        preview: str | Callable[[], str],
        now: float,
        source: str = "history",
    ) -> SessionEntry:
        """Get or create the session for a new request, and mark it used now.

        An expired session is replaced by a fresh one. Expired sessions at the old end are pruned,
        then the least recently used are evicted until at most `cap` remain. `preview` may be a
        function: it is only called when the session is new.
        """
        entry = self.get(key, now)
        if entry is None:
            text = preview if isinstance(preview, str) else preview()
            entry = SessionEntry(
                key=key, mode=mode, preview=text, created=now, last_used=now, source=source
            )
            self._sessions[key] = entry
            self._changed(entry)
        else:
            entry.last_used = now
            self._sessions.move_to_end(key)
        self._prune_oldest(now)
        while len(self._sessions) > self.cap:
            self._sessions.popitem(last=False)
        return entry

    def _prune_oldest(self, now: float) -> None:
        """Drop expired sessions from the old end; stops at the first live one (amortised O(1))."""
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if not self._expired(oldest, now):
                return
            self._sessions.popitem(last=False)

    def pin(self, key: str, model: str, api_key_id: str | None, now: float) -> None:
        """Record a success: `model` served this session, which now sticks to it.

        A session cleared (or evicted) while its request ran is not brought back: the user's clear
        wins. A session that outlived its TTL during a long answer is kept, since it was in use.
        """
        entry = self._sessions.get(key)
        if entry is None:
            return
        entry.model = model
        entry.api_key_id = api_key_id
        entry.turns += 1
        entry.last_used = now
        self._sessions.move_to_end(key)
        self._changed(entry)

    def unpin(self, key: str) -> None:
        """Forget the session's sticky model; its bans stay."""
        entry = self._sessions.get(key)
        if entry is not None:
            entry.model = None
            entry.api_key_id = None
            self._changed(entry)

    def ban_provider(self, key: str, provider: str, now: float) -> None:
        """Ban `provider` for this session (renewing a ban restarts it).

        If the session was pinned to one of that provider's models, the pin goes too.
        """
        entry = self._sessions.get(key)
        if entry is None:
            return
        entry.banned[provider] = now
        if entry.model is not None and provider_of(entry.model) == provider:
            entry.model = None
            entry.api_key_id = None
        self._changed(entry)

    def banned_providers(self, key: str, now: float) -> set[str]:
        """Providers banned for this session at `now`; expired bans are pruned."""
        entry = self.get(key, now)
        if entry is None:
            return set()
        for provider, at in list(entry.banned.items()):
            if now >= at + self.ban_ttl_s:
                del entry.banned[provider]
        return set(entry.banned)

    def clear(self, key: str) -> bool:
        """Forget one session; True if it was there."""
        if self._sessions.pop(key, None) is None:
            return False
        self._report(key, None)
        return True

    def clear_all(self) -> int:
        """Forget every session; returns how many there were."""
        count = len(self._sessions)
        if self.listener is not None:
            for key in self._sessions:
                self._report(key, None)
        self._sessions.clear()
        return count

    def entries(self, now: float) -> list[SessionEntry]:
        """Live sessions, most recently used first. Prunes every expired one (O(n))."""
        for key in [k for k, e in self._sessions.items() if self._expired(e, now)]:
            del self._sessions[key]
        return list(reversed(self._sessions.values()))

    # --- shared with other gateways -------------------------------------------------------

    def _changed(self, entry: SessionEntry) -> None:
        if self.listener is not None:
            self._report(entry.key, _value(entry), entry.expires(self.ttl_s))

    def apply(self, change: Change) -> None:
        """A session changed on another gateway: the next turn here continues it."""
        if change.value is None:
            self._sessions.pop(change.key, None)
            return
        theirs = SessionEntry(**change.value)
        entry = self._sessions.get(change.key)
        if entry is None:
            self._sessions[change.key] = theirs
        else:  # in place: a request in flight here holds this object
            for name in _FIELDS:
                setattr(entry, name, getattr(theirs, name))
            self._sessions.move_to_end(change.key)
        while len(self._sessions) > self.cap:
            self._sessions.popitem(last=False)

    def changes(self, now: float) -> list[Change]:
        """Every live session as a change: what a fresh shared store is seeded with."""
        return [
            Change(self.PART, e.key, _value(e), e.expires(self.ttl_s)) for e in self.entries(now)
        ]


def _value(entry: SessionEntry) -> dict[str, Any]:
    """A session as a change carries it (by hand: `asdict` costs several times more, per turn)."""
    value = {f: getattr(entry, f) for f in _FIELDS}
    value["banned"] = dict(entry.banned)
    return value
