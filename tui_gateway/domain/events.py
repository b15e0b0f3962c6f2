"""What the state announces: small typed events that carry what changed, and the bus they go on.

As mitmproxy's view signals carry the flow, each event carries its subject (a request id, a
model, a provider, the log's health), and `text` renders the event log's line from it only when
someone reads it. `topic` names the pane that cares. A plain success is announced too, but its
`text` is empty: the panes repaint, the event log stays quiet.

Publishing is guarded by `wants()`, so only the kinds someone listens to are built: a headless
run at `--log-level info` builds one `RequestFinished` a request (its log line) and nothing else
on the request path; at `debug` also the "began" events; the screen only those with a line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import ClassVar

import msgspec

from .records import LogHealth

__all__ = [
    "AttemptBegan",
    "AttemptFailed",
    "ClientRejected",
    "ClusterHealthChanged",
    "ContinuationBegan",
    "ControlsChanged",
    "CooldownsCleared",
    "DemoToggled",
    "Event",
    "EventBus",
    "KeyRejected",
    "KeyRestored",
    "LogHealthChanged",
    "Note",
    "PrefillRefused",
    "RequestBegan",
    "RequestFinished",
    "SessionsCleared",
    "Subscriber",
    "WITH_LINES",
]


class Event(msgspec.Struct, frozen=True):
    """Something changed; `text` is the event log's line ("" for nothing worth a line)."""

    topic: ClassVar[str] = "requests"

    @property
    def text(self) -> str:
        return ""


class RequestBegan(Event, frozen=True):
    request_id: str
    session: str


class AttemptBegan(Event, frozen=True):
    request_id: str
    model: str
    provider: str


class RequestFinished(Event, frozen=True):
    request_id: str
    status: int
    error_kind: str | None
    model: str | None
    attempts: int

    @property
    def text(self) -> str:
        if self.error_kind is None and self.attempts <= 1:
            return ""  # a plain success
        fault = f" {self.error_kind}" if self.error_kind else ""
        served = f" via {self.model}" if self.model else ""
        tries = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        return f"{self.request_id} {self.status}{fault}{served}{tries}"


class AttemptFailed(Event, frozen=True):
    request_id: str
    model: str
    kind: str
    outcome: str
    """What went wrong and what routing did: `m failed (…); cooling 15 s; conversation unpinned`."""

    @property
    def text(self) -> str:
        return f"{self.request_id} {self.outcome}"


class ContinuationBegan(Event, frozen=True):
    request_id: str
    failed_model: str
    reason: str

    @property
    def text(self) -> str:
        return f"{self.request_id} continuing after {self.failed_model} broke off ({self.reason})"


class PrefillRefused(Event, frozen=True):
    """A model answered a prefilled continuation with a 400: it continues by instruction now,
    in this run and the next (the refusal is saved)."""

    model: str
    reason: str = ""

    @property
    def text(self) -> str:
        return f"{self.model} refuses an assistant prefill; it continues by instruction from now on"


class ControlsChanged(Event, frozen=True):
    """The user changed the pools, the bans or a protection level: saved for the next run."""

    topic: ClassVar[str] = "pools"
    line: str = ""

    @property
    def text(self) -> str:
        return self.line


class KeyRejected(Event, frozen=True):
    topic: ClassVar[str] = "keys"
    key_id: str
    masked: str
    provider: str
    status: int | None
    provider_out: bool
    """It was the provider's last valid key: its models are out of routing until a key check
    passes (`tui-gateway keys check`, `POST /gateway/keys/check`, `[health]`)."""

    @property
    def text(self) -> str:
        code = "" if self.status is None else f" ({self.status})"
        text = f"{self.key_id} ({self.masked}) rejected by {self.provider}{code}"
        text += ": not used again until a key check passes"
        if self.provider_out:
            text += f"; {self.provider} has no valid key left: its models are out"
        return text


class KeyRestored(Event, frozen=True):
    """A key check passed on a key the upstream had rejected: it is sent again."""

    topic: ClassVar[str] = "keys"
    key_id: str
    masked: str
    provider: str
    provider_back: bool
    """The provider had no valid key before: its models are back in routing."""

    @property
    def text(self) -> str:
        text = f"{self.key_id} ({self.masked}) passed a key check: {self.provider} uses it again"
        if self.provider_back:
            text += f"; {self.provider}'s models are back"
        return text


class SessionsCleared(Event, frozen=True):
    topic: ClassVar[str] = "sessions"
    count: int
    session: str | None = None
    """The one session cleared, or None when all were."""

    @property
    def text(self) -> str:
        if self.session is not None:
            return f"session {self.session[:8]} cleared"
        return f"{self.count} sessions cleared"


class CooldownsCleared(Event, frozen=True):
    topic: ClassVar[str] = "cooldowns"
    count: int
    model: str | None = None

    @property
    def text(self) -> str:
        return f"{self.count} cooldowns cleared"


class LogHealthChanged(Event, frozen=True):
    topic: ClassVar[str] = "log"
    health: LogHealth

    @property
    def text(self) -> str:
        health = self.health
        if health.failing:
            text = f"request log cannot write ({health.last_error}); {health.pending} rows kept"
        else:
            text = "request log writing again"
        if health.dropped:
            text += f"; {health.dropped} oldest rows dropped (backlog full)"
        if health.repaired:
            text += f"; {health.repaired} rows stored with unstorable text replaced"
        return text


class ClusterHealthChanged(Event, frozen=True):
    """The shared store (Redis) was lost, or reached again and the state resynced."""

    topic: ClassVar[str] = "cluster"
    url: str
    """Masked."""
    connected: bool
    error: str | None = None

    @property
    def text(self) -> str:
        if self.connected:
            return f"cluster: redis at {self.url} connected, shared state in sync"
        return f"cluster: redis unreachable ({self.error}), running on local state"


class ClientRejected(Event, frozen=True):
    line: str

    @property
    def text(self) -> str:
        return self.line


class Note(Event, frozen=True):
    """A line for the event log that changes nothing else."""

    line: str

    @property
    def text(self) -> str:
        return self.line


class DemoToggled(Event, frozen=True):
    topic: ClassVar[str] = "demo"
    paused: bool

    @property
    def text(self) -> str:
        return f"demo traffic {'paused' if self.paused else 'resumed'}"


Subscriber = Callable[[Event], None]


WITH_LINES: tuple[type[Event], ...] = (
    RequestFinished, AttemptFailed, ContinuationBegan, PrefillRefused, ControlsChanged,
    KeyRejected, KeyRestored, SessionsCleared, CooldownsCleared, LogHealthChanged,
    ClientRejected, Note, DemoToggled, ClusterHealthChanged,
)  # fmt: skip
"""The events that may have a line for the event log: what the screen subscribes to. The others
(a request or an attempt began) only say so, and are not built when nobody else listens."""


class EventBus:
    """Subscribers for every event, or for some event types only."""

    def __init__(self) -> None:
        self._everything: list[Subscriber] = []
        self._by_type: dict[type[Event], list[Subscriber]] = {}

    def subscribe(
        self, subscriber: Subscriber, *, kinds: Iterable[type[Event]] | None = None
    ) -> Callable[[], None]:
        """Call `subscriber` on every event (or only on these types); returns the unsubscribe."""
        lists = [self._by_type.setdefault(k, []) for k in kinds] if kinds else [self._everything]
        for subscribers in lists:
            subscribers.append(subscriber)

        def unsubscribe() -> None:
            for subscribers in lists:
                subscribers.remove(subscriber)

        return unsubscribe

    def wants(self, kind: type[Event]) -> bool:
        """Someone would hear an event of this type: worth building it (one truth test when not)."""
        return bool(self._everything or self._by_type.get(kind))

    def publish(self, event: Event) -> None:
        for subscriber in [*self._everything, *self._by_type.get(type(event), ())]:
            subscriber(event)
