"""One client request and everything that happened to it: the one record per request.

The relay updates it as attempts start, stream and end; the state indexes it (in flight, then
recently finished); the request log writes it (its attributes are the log row's columns); the
screen reads copies of it (`FlowView`, `FlowDetail`, see views.py). Every time on it comes from
one injected clock, so tests drive a request's whole life with a fake one.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ErrorKind, UpstreamError
from .records import AttemptRecord

TIMELINE_LIMIT = 2000
"""Chunk batches remembered per request: enough for the detail screen, bounded for long streams."""

Clock = Callable[[], float]


@dataclass(slots=True)
class _Attempt:
    number: int
    """Its place in the order attempts began (1, 2, ...), which a race's ending may not keep."""
    provider: str
    model: str
    started: float
    first_byte_at: float | None = None
    text_from: int | None = None
    """A continuation: characters of the answer the client had when this attempt began."""
    last_read: float | None = None
    max_gap: float = 0.0
    """The longest silence between two upstream reads so far, in seconds."""


@dataclass(slots=True, eq=False)
class Flow:
    """Mutated by the proxy (through its own methods and the state's verbs) while it runs."""

    id: str
    session: str
    requested_model: str
    stream: bool
    started: float
    clock: Clock = field(repr=False)
    dialect: str = "chat"
    """The client's API: chat (OpenAI chat completions), messages (Anthropic), responses."""
    client: str | None = None
    """The name of the `[[clients]]` key it came with; None for `server.api_key`."""
    body: Mapping[str, Any] | None = field(default=None, repr=False)
    """The request as the client sent it (the detail screen's summary and its curl copy)."""
    provider: str | None = None
    model: str | None = None
    phase: str = "waiting"
    """waiting | streaming | heartbeat (upstream quiet, keep-alives going out) | fallback (a failed
    attempt is being replaced) | hedging (a second candidate races a late first byte) |
    continuing (a broken stream resumes on another model) | done."""
    first_byte_at: float | None = None
    last_chunk_at: float | None = None
    chunks: int = 0
    heartbeats: int = 0
    attempts: list[AttemptRecord] = field(default_factory=list)
    """Attempts that ended, in the order they began; the one under way is `current`."""
    current: _Attempt | None = None
    hedge: _Attempt | None = None
    """The candidate racing `current` to a first byte (`[routing] hedge`), while it races."""
    failures: list[tuple[str, UpstreamError]] = field(default_factory=list)
    """(model, error) per failed attempt: what the client's error is built from."""
    decisions: list[str] = field(default_factory=list)
    """One line per failed attempt: the model, why, and what routing did about it."""
    quota_tokens: int = 0
    """The request's token estimate, which a model's token limits must still take (set only
    when some model has `limits`)."""
    passed_over: list[str] = field(default_factory=list)
    """Models and keys routing left out for their quota (`limits`), one line each, with when
    they free: no upstream call was made to find out."""
    timeline: list[tuple[float, int]] = field(default_factory=list)
    """(time, chunks) per upstream read relayed, for the detail screen's gaps."""
    status: int = 200
    """The status the client saw (200 even for a stream that ended with an error event)."""
    error_kind: str | None = None
    error: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    finished_at: float | None = None
    limit_s: float | None = None
    """How long the attempt under way may stay silent now (its first byte, then between
    chunks): the model's learned timeout, or the configured one."""
    usual_s: float | None = None
    """The model's usual silence at this point (first byte, then longest gap); None if unknown.
    Silence past it is unusual: the screen says `stalling`."""
    mover: Callable[[], bool] | None = field(default=None, repr=False)
    """Set by the proxy: cuts the attempt under way short so the request moves on (True if one
    was waiting). The state's `skip_request` and bans call it."""

    # --- as the relay goes ------------------------------------------------------------------

    @property
    def attempt(self) -> int:
        """Attempts begun so far (1 while the first is under way, 2 while a second races it)."""
        return len(self.attempts) + (self.current is not None) + (self.hedge is not None)

    def start_attempt(self, *, provider: str, model: str, text_from: int | None = None) -> None:
        if self.current is not None:  # a caller forgot to close it: close it as interrupted
            self.attempt_interrupted(ErrorKind.SHUTDOWN)
        self.current = _Attempt(
            self.attempt + 1, provider, model, self.clock(), text_from=text_from
        )
        self.provider, self.model = provider, model
        self.phase = "waiting"

    def start_hedge(self, *, provider: str, model: str) -> None:
        """Another candidate starts alongside the attempt under way (the race to a first byte)."""
        self.hedge = _Attempt(self.attempt + 1, provider, model, self.clock())
        self.phase = "hedging"

    def hedge_read(self) -> None:
        """The racing candidate's first events came: when it won, its time to first byte."""
        if self.hedge is not None and self.hedge.first_byte_at is None:
            self.hedge.first_byte_at = self.clock()

    def hedge_takes_over(self) -> None:
        """The racing candidate becomes the attempt under way (the one before it has ended)."""
        if self.current is not None:
            self.attempt_interrupted(ErrorKind.SHUTDOWN)
        self.current, self.hedge = self.hedge, None
        assert self.current is not None, "no hedge racing"
        self.provider, self.model = self.current.provider, self.current.model
        self.phase = "waiting"

    def hedge_failed(self, exc: UpstreamError) -> AttemptRecord:
        """The racing candidate failed, or lost (`exc` of kind `hedged`): logged, not racing."""
        hedge, self.hedge = self.hedge, None
        assert hedge is not None, "no hedge racing"
        record = self._record(hedge, status=exc.status, error_kind=str(exc.kind), error=exc.message)
        self.failures.append((record.model, exc))
        if self.phase == "hedging":
            self.phase = "waiting"
        return record

    def first_byte_seen(self) -> None:
        now = self.clock()
        if self.current is not None and self.current.first_byte_at is None:
            self.current.first_byte_at = now
        if self.first_byte_at is None:
            self.first_byte_at = now

    def expect(self, *, limit_s: float, usual_s: float | None) -> None:
        """The silence the attempt is allowed now, and what is usual for its model."""
        self.limit_s, self.usual_s = limit_s, usual_s

    def upstream_read(self) -> None:
        """Hot path: a read of the upstream's stream made progress (relayed or held back)."""
        now = self.clock()
        attempt = self.current
        if attempt is not None:
            last = attempt.last_read
            if last is None:
                if attempt.first_byte_at is None:
                    attempt.first_byte_at = now
            elif now - last > attempt.max_gap:
                attempt.max_gap = now - last
            attempt.last_read = now
        if self.first_byte_at is None:
            self.first_byte_at = now
        self.last_chunk_at = now

    def chunks_relayed(self, count: int) -> None:
        """Hot path: no event, the screen reads counts from snapshots at its own pace."""
        now = self.clock()
        if self.phase != "streaming":
            self.phase = "streaming"
            if self.first_byte_at is None:
                self.first_byte_at = now
        self.last_chunk_at = now
        self.chunks += count
        if len(self.timeline) < TIMELINE_LIMIT:
            self.timeline.append((now, count))

    def heartbeat_sent(self) -> None:
        self.heartbeats += 1
        if self.phase not in ("continuing", "hedging"):  # those say more than a keep-alive
            self.phase = "heartbeat"

    def attempt_succeeded(self, status: int = 200) -> AttemptRecord:
        return self._close_attempt(status=status)

    def attempt_failed(self, exc: UpstreamError) -> AttemptRecord:
        record = self._close_attempt(status=exc.status, error_kind=str(exc.kind), error=exc.message)
        self.failures.append((record.model, exc))
        return record

    def attempt_interrupted(self, kind: ErrorKind) -> None:
        """The client left or the gateway stopped during this attempt: not the model's fault."""
        if self.current is not None:
            self._close_attempt(status=None, error_kind=str(kind), error=None)

    def fail(self, status: int, kind: ErrorKind | str, message: str) -> None:
        """What the client is told went wrong (the log row's status and error)."""
        self.status, self.error_kind, self.error = status, str(kind), message

    def finish(self) -> None:
        if self.current is not None:  # an exit path nobody named: still one row, still closed
            self.attempt_interrupted(ErrorKind.SHUTDOWN)
        if self.hedge is not None:
            self._record(self.hedge, status=None, error_kind=str(ErrorKind.SHUTDOWN), error=None)
            self.hedge = None
        self.phase = "done"
        self.finished_at = self.clock()
        self.mover = None  # nothing to move on; a finished flow must not keep its relay alive

    def _close_attempt(
        self, *, status: int | None, error_kind: str | None = None, error: str | None = None
    ) -> AttemptRecord:
        attempt = self.current
        assert attempt is not None, "no attempt in progress"
        self.current = None
        return self._record(attempt, status=status, error_kind=error_kind, error=error)

    def _record(
        self, attempt: _Attempt, *, status: int | None, error_kind: str | None, error: str | None
    ) -> AttemptRecord:
        first = attempt.first_byte_at
        record = AttemptRecord(
            attempt=attempt.number,
            provider=attempt.provider,
            model=attempt.model,
            started=attempt.started,
            latency_ms=round((self.clock() - attempt.started) * 1000, 2),
            status=status,
            error_kind=error_kind,
            error=error,
            ttfb_ms=None if first is None else round((first - attempt.started) * 1000, 2),
            max_gap_ms=None if attempt.last_read is None else round(attempt.max_gap * 1000, 2),
            text_from=attempt.text_from,
        )
        if self.attempts and self.attempts[-1].attempt > record.attempt:
            bisect.insort(self.attempts, record, key=lambda a: a.attempt)  # a race's first
        else:
            self.attempts.append(record)
        return record

    # --- as the log and the screen read it --------------------------------------------------

    @property
    def done(self) -> bool:
        return self.finished_at is not None

    @property
    def streamed(self) -> bool:
        return self.stream

    @property
    def latency_ms(self) -> float:
        end = self.finished_at if self.finished_at is not None else self.clock()
        return round((end - self.started) * 1000, 2)

    @property
    def ttfb_ms(self) -> float | None:
        first = self.first_byte_at
        return None if first is None else round((first - self.started) * 1000, 2)
