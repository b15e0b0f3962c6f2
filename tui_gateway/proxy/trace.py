"""What happened to one client request, collected as it goes and turned into its log row."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..domain.errors import ErrorKind, UpstreamError
from ..domain.records import AttemptRecord, RequestRecord
from ..domain.state import ActiveRequest


@dataclass(slots=True)
class _Attempt:
    provider: str
    model: str
    started_wall: float
    started: float
    first_byte: float | None = None


@dataclass(slots=True)
class CallTrace:
    """Timing and attempts of one request; `record()` is its one log row."""

    active: ActiveRequest
    started: float = field(default_factory=time.perf_counter)
    attempts: list[AttemptRecord] = field(default_factory=list)
    failures: list[tuple[str, UpstreamError]] = field(default_factory=list)
    current: _Attempt | None = None
    status: int = 200
    error_kind: str | None = None
    error: str | None = None
    provider: str | None = None
    model: str | None = None
    first_byte: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None

    def start_attempt(self, *, provider: str, model: str) -> None:
        self.current = _Attempt(provider, model, time.time(), time.perf_counter())

    def first_byte_seen(self) -> None:
        now = time.perf_counter()
        if self.current is not None and self.current.first_byte is None:
            self.current.first_byte = now
        if self.first_byte is None:
            self.first_byte = now

    def attempt_succeeded(self, status: int = 200) -> None:
        attempt = self._close_attempt(status=status)
        self.provider, self.model = attempt.provider, attempt.model

    def attempt_failed(self, exc: UpstreamError) -> None:
        attempt = self._close_attempt(
            status=exc.status, error_kind=str(exc.kind), error=exc.message
        )
        self.failures.append((attempt.model, exc))
        self.provider, self.model = attempt.provider, attempt.model

    def attempt_interrupted(self, kind: ErrorKind) -> None:
        """The client left or the gateway stopped during this attempt: not the model's fault."""
        if self.current is not None:
            attempt = self._close_attempt(status=None, error_kind=str(kind), error=None)
            self.provider, self.model = attempt.provider, attempt.model

    def fail(self, status: int, kind: ErrorKind | str, message: str) -> None:
        self.status, self.error_kind, self.error = status, str(kind), message

    def _close_attempt(
        self, *, status: int | None, error_kind: str | None = None, error: str | None = None
    ) -> AttemptRecord:
        attempt = self.current
        assert attempt is not None, "no attempt in progress"
        self.current = None
        now = time.perf_counter()
        record = AttemptRecord(
            attempt=len(self.attempts) + 1,
            provider=attempt.provider,
            model=attempt.model,
            started=attempt.started_wall,
            latency_ms=round((now - attempt.started) * 1000, 2),
            status=status,
            error_kind=error_kind,
            error=error,
            ttfb_ms=None
            if attempt.first_byte is None
            else round((attempt.first_byte - attempt.started) * 1000, 2),
        )
        self.attempts.append(record)
        return record

    def record(self) -> RequestRecord:
        if self.current is not None:  # an exit path nobody named: still one row, still closed
            self.attempt_interrupted(ErrorKind.SHUTDOWN)
        now = time.perf_counter()
        ttfb = None if self.first_byte is None else (self.first_byte - self.started) * 1000
        return RequestRecord(
            id=self.active.id,
            started=self.active.started,
            session=self.active.session,
            requested_model=self.active.requested_model,
            streamed=self.active.stream,
            dialect=self.active.dialect,
            status=self.status,
            latency_ms=round((now - self.started) * 1000, 2),
            provider=self.provider,
            model=self.model,
            error_kind=self.error_kind,
            error=self.error,
            ttfb_ms=None if ttfb is None else round(ttfb, 2),
            tokens_in=self.tokens_in,
            tokens_out=self.tokens_out,
            attempts=tuple(self.attempts),
        )
