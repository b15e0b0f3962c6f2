"""What the request log keeps: one row per client request, one per upstream attempt."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AttemptRecord:
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


@dataclass(frozen=True, slots=True)
class RequestRecord:
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
