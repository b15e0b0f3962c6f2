"""One client request in flight, as the state API and the TUI see it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .records import RequestRecord

TIMELINE_LIMIT = 2000
"""Chunk batches remembered per request: enough for the detail screen, bounded for long streams."""


@dataclass(slots=True)
class ActiveRequest:
    """Mutated by the proxy through GatewayState only."""

    id: str
    session: str
    requested_model: str
    stream: bool
    started: float
    dialect: str = "chat"
    """The client's API: chat (OpenAI chat completions), messages (Anthropic), responses."""
    provider: str | None = None
    model: str | None = None
    attempt: int = 0
    phase: str = "waiting"
    """waiting | streaming | heartbeat (upstream quiet, keep-alives going out) | fallback (a failed
    attempt is being replaced) | continuing (a broken stream resumes on another model) | done."""
    first_byte_at: float | None = None
    last_chunk_at: float | None = None
    chunks: int = 0
    heartbeats: int = 0
    failures: list[str] = field(default_factory=list)
    """One line per failed attempt: the model, why, and what routing did about it."""
    timeline: list[tuple[float, int]] = field(default_factory=list)
    """(time, chunks) per upstream read relayed, for the detail screen's gaps."""
    body: dict[str, Any] | None = None
    """The request as the client sent it (the detail screen's summary and its curl copy)."""
    finished_at: float | None = None
    record: RequestRecord | None = None
    """The log row, once the request ended."""

    def as_json(self) -> dict[str, Any]:
        ttfb = None if self.first_byte_at is None else self.first_byte_at - self.started
        return {
            "id": self.id,
            "session": self.session,
            "requested_model": self.requested_model,
            "model": self.model,
            "provider": self.provider,
            "attempt": self.attempt,
            "state": self.phase,
            "stream": self.stream,
            "dialect": self.dialect,
            "started": self.started,
            "ttfb_ms": None if ttfb is None else round(ttfb * 1000, 1),
            "chunks": self.chunks,
            "heartbeats": self.heartbeats,
            "last_chunk_at": self.last_chunk_at,
            "failures": list(self.failures),
            "finished_at": self.finished_at,
            "status": None if self.record is None else self.record.status,
            "error_kind": None if self.record is None else self.record.error_kind,
        }
