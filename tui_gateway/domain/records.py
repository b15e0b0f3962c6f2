"""What the request log keeps: one row per client request, one per upstream attempt.

msgspec Structs rather than frozen dataclasses: one of each is built on every request, and a
frozen dataclass's `__init__` (an `object.__setattr__` a field) costs about 2.5 µs for an
`AttemptRecord` where a Struct's costs 0.2.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

import msgspec


class AttemptRecord(msgspec.Struct, frozen=True):
    attempt: int
    """1 for the first upstream tried, 2 for the first fallback, ..."""
    provider: str
    model: str
    started: float
    latency_ms: float
    status: int | None = None
    """HTTP status from the upstream; None when no response arrived."""
    error_kind: str | None = None
    error: str | None = None
    ttfb_ms: float | None = None
    max_gap_ms: float | None = None
    """The longest silence between two reads of a streamed reply (None: not streamed)."""
    text_from: int | None = None
    """A continuation: characters of the answer the client had when this attempt began."""


def fallback_trail(attempts: Sequence[AttemptRecord], running: str | None = None) -> str:
    """Each attempt as `provider/model:outcome`, in order: `ok`, or the kind of its error
    (`5xx`, `stall`, `rate_limited`...); `running` is the model of an attempt under way, shown
    as `model:streaming`. What the `X-Fallback-Trail` header and the request detail say."""
    parts = [f"{a.model}:{a.error_kind or 'ok'}" for a in attempts]
    if running is not None:
        parts.append(f"{running}:streaming")
    return ", ".join(parts)


class RequestRecord(msgspec.Struct, frozen=True):
    id: str
    started: float
    session: str
    requested_model: str
    streamed: bool
    status: int
    """The status the client saw (200 even for a stream that ended with an error event)."""
    latency_ms: float
    provider: str | None = None
    model: str | None = None
    error_kind: str | None = None
    error: str | None = None
    ttfb_ms: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    attempts: tuple[AttemptRecord, ...] = ()
    dialect: str = "chat"
    """The API the client spoke: chat, messages (Anthropic) or responses (OpenAI Responses)."""
    client: str | None = None
    """The `[[clients]]` name of the key it came with; None for `server.api_key` (and old rows)."""


class LogHealth(msgspec.Struct, frozen=True):
    """How the request log's writer is doing, for the status line and the event log."""

    pending: int = 0
    """Rows waiting to be written (including a batch being written now)."""
    written: int = 0
    """Rows written since the log was opened."""
    repaired: int = 0
    """Rows written with values SQLite could not store replaced (lone surrogates, huge ints)."""
    dropped: int = 0
    """Oldest rows given up on because the backlog was full (or, rarer, beyond repair)."""
    failing: bool = False
    """The last write attempt failed at the database level; rows are kept and retried."""
    last_error: str | None = None
    """The most recent write error, e.g. "database is locked"; kept after recovery."""
    failing_since: float | None = None
    """Wall-clock time (`time.time()`) of the first failure of the current episode."""

    BEHIND_AT: ClassVar[int] = 1000
    """More rows waiting than this and the writer is behind even when nothing fails."""

    @property
    def behind(self) -> bool:
        """Worth showing: failing, or many rows waiting."""
        return self.failing or self.pending > self.BEHIND_AT

    def as_json(self) -> dict[str, Any]:
        return {
            "pending": self.pending,
            "written": self.written,
            "repaired": self.repaired,
            "dropped": self.dropped,
            "failing": self.failing,
            "last_error": self.last_error,
            "failing_since": self.failing_since,
            "behind": self.behind,
        }


class LoggedRequest(Protocol):
    """What the request log writes of one request: a finished `Flow`, or a `RequestRecord` for
    a request refused before routing (both have these attributes)."""

    @property
    def id(self) -> str: ...
    @property
    def started(self) -> float: ...
    @property
    def session(self) -> str: ...
    @property
    def requested_model(self) -> str: ...
    @property
    def streamed(self) -> bool: ...
    @property
    def status(self) -> int: ...
    @property
    def latency_ms(self) -> float: ...
    @property
    def provider(self) -> str | None: ...
    @property
    def model(self) -> str | None: ...
    @property
    def error_kind(self) -> str | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def ttfb_ms(self) -> float | None: ...
    @property
    def tokens_in(self) -> int | None: ...
    @property
    def tokens_out(self) -> int | None: ...
    @property
    def attempts(self) -> Sequence[AttemptRecord]: ...
    @property
    def dialect(self) -> str: ...
    @property
    def client(self) -> str | None: ...
