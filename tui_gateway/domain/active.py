"""One client request in flight, as the state API and the TUI see it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class ActiveRequest:
    """Mutated by the proxy through GatewayState only."""

    id: str
    session: str
    requested_model: str
    stream: bool
    started: float
    provider: str | None = None
    model: str | None = None
    attempt: int = 0
    phase: str = "waiting"
    """waiting | streaming | fallback (a failed attempt is being replaced) | done."""
    first_byte_at: float | None = None
    last_chunk_at: float | None = None
    chunks: int = 0
    failures: list[str] = field(default_factory=list)

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
            "started": self.started,
            "ttfb_ms": None if ttfb is None else round(ttfb * 1000, 1),
            "chunks": self.chunks,
            "last_chunk_at": self.last_chunk_at,
            "failures": list(self.failures),
        }
