"""A streamed request: relayed as it comes, failed over before content, continued after.

    StreamRelay.stream()       attempts in plan order until one finishes the answer
      _stream_attempt()        one upstream stream: watchdog, scan, whole tool calls, the join
        _relay()               one batch to the client (ClientStream: headers once, events)

Before any content reached the client a failed attempt is replaced silently. After, the answer
goes on from the next candidate that can continue it (continuation.py: by prefill or by
instruction), and only what is new of the continuation is relayed (alignment.py). A user's skip
(`skip()`) ends the attempt under way as a stall would, without blaming the model.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..asyncio_utils import spawn
from ..config import Continuation, ModelSettings
from ..domain.attempts import AttemptPlan
from ..domain.errors import ErrorKind, Stalled, Unavailable, UpstreamError
from ..domain.protection import NOTHING
from ..domain.routing import Plan
from ..providers.base import ChunkStream
from ..providers.sse import SSEBatch
from .chunks import StreamScan, owes_usage, usage_event
from .client_stream import ClientStream
from .continuation import JOIN_FAILED, AnswerSoFar, Continued, Unaligned, refuses_prefill
from .errors import APIError
from .hedge import Opened, hedge_after_s, open_stream
from .outcomes import mid_stream_error, refused, shut_down
from .relay import Relay, _Attempt
from .watchdog import Heartbeat, Watchdog
from .whole_calls import WholeCalls


@dataclass(slots=True, eq=False)
class StreamRelay(Relay):
    """A `Relay` whose answer streams back to the client as server-sent events."""

    client_gone: bool = False
    """A heartbeat found the client gone: the waiting read is cut short."""
    client: ClientStream | None = None
    """The event stream to the client, made when the stream starts."""
    _beat_model: ModelSettings | None = None
    _attempts: AttemptPlan | None = None
    _racer: asyncio.Task[Opened | UpstreamError] | None = None
    """The candidate racing the attempt under way to a first byte (hedge.py), while it races."""
    _racer_attempt: _Attempt | None = None
    _racer_won: bool = False
    """The racer's first events came first: the attempt under way is cut, the racer goes on."""

    async def stream(self, candidates: Plan) -> web.StreamResponse:
        """Relay the stream (see `_stream`); a race still running when it ends is closed."""
        try:
            return await self._stream(candidates)
        finally:
            if self._racer is not None:
                kind = ErrorKind.HEDGED
                if self.client_gone or self.stopping:
                    kind = ErrorKind.CLIENT_CLOSED if self.client_gone else ErrorKind.SHUTDOWN
                self._close_racer("the request ended first", kind)

    async def _stream(self, candidates: Plan) -> web.StreamResponse:
        """Relay a stream; fail over silently before content, continue on another model after.

        Headers go out at the first content chunk or the first heartbeat, whichever is first.
        Before any content reached the client a failed attempt is replaced silently; after, the
        answer continues on the next candidate that can continue it (continuation.py), and only
        what is new of the continuation is relayed. Tool calls go out whole (whole_calls.py).
        """
        streaming = self.settings.streaming
        plan = self._attempts = self._plan(candidates)
        client = self.client = ClientStream(
            self.request, self.dialect.encoder(self.call, self.flow.id)
        )
        loop = asyncio.get_running_loop()
        beats = Heartbeat(streaming.heartbeat_interval_s, loop.time())
        delivered: list[bytes] = []
        """Framed batches that reached the client: what a continuation goes on from."""
        broke: UpstreamError | None = None
        """The failure that broke the answer off, if one did: the one the client is told about."""
        broke_model = ""
        answer: AnswerSoFar | None = None
        while (attempt := await self._next_or_racer(plan, answer)) is not None:
            how = None if answer is None else self.state.continuation(attempt.candidate.model)
            try:
                done = await self._stream_attempt(attempt, beats, delivered, answer, how)
            except UpstreamError as failure:
                exc = failure
            except Unaligned:
                assert broke is not None
                self.state.record_failure(
                    self.flow,
                    self.flow.attempt_failed(JOIN_FAILED),
                    key_id=attempt.key_id,
                    kind=ErrorKind.UNALIGNED,
                    decision=NOTHING,
                    reason=f"{JOIN_FAILED.describe()}; ending with the failure that broke it",
                )
                break
            except ConnectionResetError:
                # The client hung up; leaving the `async with` above already aborted the upstream.
                return self._client_left()
            else:
                if done is None:
                    return self._client_left()
                return done
            if not delivered:
                self._failed(plan, attempt, exc, after_first_byte=False)
                if not exc.retryable:
                    return await self._end_with(refused(self.flow, exc))
                continue
            decision = self._failed(plan, attempt, exc, after_first_byte=True)
            if how == "prefill" and refuses_prefill(exc):
                self.state.refuse_prefill(attempt.candidate.model, exc.message)
                plan.again(attempt.candidate, "prefill refused")  # by instruction this time
            else:
                plan.exclude(attempt.candidate, decision)
            if broke is None:
                broke, broke_model = exc, attempt.candidate.model
            answer = AnswerSoFar.of(delivered)
            plan.only = lambda c: self.state.can_continue(c.model)
            self.state.begin_continuation(self.flow, attempt.candidate.model, exc.describe())
        if self.stopping:
            return await self._end_with(shut_down(self.flow))
        if self.client_gone or self._gone():  # it left while the request waited (`_wait`)
            return self._client_left()
        if broke is not None:
            # The answer broke off and nothing could continue it: say why, never `stop`.
            self.flow.fail(200, broke.kind, broke.message)
            return await self._end_with(mid_stream_error(broke, broke_model))
        if client.open:  # committed by a heartbeat: the error goes in-stream
            return await self._end_with(self._exhausted())
        raise self._exhausted()

    async def _end_with(self, error: APIError) -> web.StreamResponse:
        """Before the headers, `error` is raised (the middleware answers it in the client's
        dialect). After them, went out as a 200, it is the stream's last event, and the log row
        keeps the 200 the client got, with the error it was told in the stream."""
        assert self.client is not None
        if not self.client.open:
            raise error
        self.flow.status = 200
        return await self.client.fail(error)

    async def _stream_attempt(
        self,
        attempt: _Attempt,
        beats: Heartbeat,
        delivered: list[bytes],
        answer: AnswerSoFar | None,
        how: Continuation | None,
    ) -> web.StreamResponse | None:
        """One attempt's stream, relayed; returns the finished response (None: the client left).

        Raises the attempt's `UpstreamError` (a stall, a cut, an error dressed as a chunk, the
        user's skip), or `Unaligned` when a continuation cannot be joined to the answer.
        """
        streaming = self.settings.streaming
        client = self.client
        assert client is not None
        body = (
            self.call.body if answer is None else answer.request(self.call.body, how or "instruct")
        )
        scan, whole = StreamScan(), WholeCalls()
        earlier = self.flow.chunks  # relayed by the attempts before: one token each, roughly
        joined = None if answer is None else Continued(answer, earlier_tokens=earlier)
        self._beat_model = attempt.model
        timers, key = self.state.timers, attempt.candidate.model
        first_s = timers.first_byte_timeout(key, streaming.first_byte_timeout_s)
        stall_s = timers.stall_timeout(key, streaming.stall_timeout_s)
        self.flow.expect(limit_s=first_s, usual_s=timers.usual_first_byte(key))
        race = None
        try:
            async with Watchdog(first_s, heartbeat=beats, on_quiet=self._on_quiet) as self._dog:
                dog = self._dog
                if self._racer_won:  # the racer came in while no attempt was waiting
                    dog.fire()
                elif not delivered and self._racer is None and self._racer_attempt is None:
                    race = self._arm_race(key, first_s)
                async with self._open(attempt, body) as chunks:
                    async for received in chunks:
                        batch = scan.scan(received)  # raises on an error dressed as a chunk
                        if not batch.framed:
                            continue  # nothing but malformed events
                        if scan.done and scan.chunks == 0 and not delivered:
                            raise Unavailable("empty stream", kind=ErrorKind.TRUNCATED)
                        self.flow.upstream_read()
                        if not dog.fed:  # the first byte: from now on, gaps between chunks
                            self.flow.expect(limit_s=stall_s, usual_s=timers.usual_gap(key))
                            if race is not None:
                                race.cancel()
                            if self._racer_won:  # the racer's came in the same moment: it won
                                raise self._lost_race()
                            if self._racer is not None:  # this attempt won the race
                                self._close_racer(f"{key} sent content first")
                        dog.feed(limit_s=stall_s)
                        batch = whole.through(batch)
                        if joined is not None:
                            batch = joined.feed(batch)
                        if batch.framed:
                            await self._relay(attempt, batch, scan, delivered, beats)
            if not (scan.finished or scan.done):
                raise Unavailable("stream ended without a final chunk", kind=ErrorKind.TRUNCATED)
            if joined is not None and (rest := joined.end()).framed:
                await self._relay(attempt, rest, scan, delivered, beats)
        except TimeoutError:
            if self.client_gone:
                return None
            if self.stopping:
                return await self._end_with(shut_down(self.flow))
            raise self._timed_out(dog) from None
        finally:
            self._dog = None
            if race is not None:
                race.cancel()
        if scan.malformed:
            self.state.note(
                f"{self.flow.id} dropped {scan.malformed} malformed event(s)"
                f" from {attempt.candidate.model}"
            )
        self.flow.tokens_in = scan.prompt_tokens
        self.flow.tokens_out = (scan.completion_tokens or scan.chunks) + earlier
        self._succeeded(attempt)
        owed = owes_usage(self.call.body, scan)
        tail = b"" if scan.done and not owed else b"data: [DONE]\n\n"
        if owed:
            usage = usage_event(
                self.call.body, attempt.model.id, scan.chunks + earlier, self.flow.id
            )
            tail = usage + tail
        return await client.end(tail)

    async def _relay(
        self,
        attempt: _Attempt,
        batch: SSEBatch,
        scan: StreamScan,
        delivered: list[bytes],
        beats: Heartbeat,
    ) -> None:
        """Send one batch of events to the client (the headers first, once)."""
        if batch.done and owes_usage(self.call.body, scan):
            batch = batch.without_done()  # usage goes before [DONE]
        client = self.client
        assert client is not None
        if not client.open:
            await client.start(self._headers(attempt.model, streaming=True))
        self.flow.chunks_relayed(batch.count)
        await client.send(batch.framed, last=batch.done)  # the last event ends the body too
        beats.last = asyncio.get_running_loop().time()
        delivered.append(batch.framed)

    # --- hedging (hedge.py): a second candidate races a late first byte ------------------

    async def _next_or_racer(
        self, plan: AttemptPlan, answer: AnswerSoFar | None
    ) -> _Attempt | None:
        """The next attempt: the racing candidate, when one is still racing, else the plan's."""
        racer = self._racer_attempt
        if racer is None or self.stopping:
            return await self._next(plan, text_from=_length(answer))
        self._racer_won = self.skipping = False  # a skip left set was of the attempt before
        self.state.hedge_won(self.flow)
        return racer

    def _open(
        self, attempt: _Attempt, body: dict[str, Any]
    ) -> AbstractAsyncContextManager[ChunkStream]:
        """The attempt's upstream stream: opened now, or handed over by the race it won (the
        adapter's own context as it is, in the common case: no extra layer per stream)."""
        racer = self._racer
        if racer is None or attempt is not self._racer_attempt:
            return attempt.upstream.stream(body, attempt.model, api_key=attempt.api_key)
        self._racer = self._racer_attempt = None
        return _handed_over(racer)

    def _arm_race(self, model: str, first_byte_timeout_s: float) -> asyncio.TimerHandle | None:
        """Start the next candidate alongside if this first byte is late (when hedging is on)."""
        after = hedge_after_s(self.settings.routing, self.state.timers, model, first_byte_timeout_s)
        if after is None:
            return None
        return asyncio.get_running_loop().call_later(after, self._start_racer)

    def _start_racer(self) -> None:
        """Timer callback (must not raise): the first byte is late, the next candidate starts."""
        plan = self._attempts
        if plan is None or self.stopping or self._dog is None or self._dog.fed:
            return
        step = plan.next()
        if step is None:
            return  # nothing left to race with
        candidate, _ = step  # no wait: a retry's is taken by the attempt under way
        attempt = self._racer_attempt = self._begin(candidate, hedge=True)
        if attempt is None:  # at its quota: no race this time
            plan.passed_over(candidate)
            return
        self.state.note(
            f"{self.flow.id} hedging: {self.flow.model} is late, {candidate.model} races it"
        )
        self._racer = spawn(open_stream(attempt, self.call.body), name=f"hedge-{self.flow.id}")
        self._racer.add_done_callback(self._racer_done)

    def _racer_done(self, task: asyncio.Task[Opened | UpstreamError]) -> None:
        """The racer's first events came, or it failed: cut the attempt it raced, or record."""
        if task.cancelled() or task is not self._racer:
            return
        result = task.result()
        attempt = self._racer_attempt
        assert attempt is not None
        if isinstance(result, UpstreamError):
            self._racer = self._racer_attempt = None
            assert self._attempts is not None
            phase = self.flow.phase
            self._failed(self._attempts, attempt, result, after_first_byte=False, hedge=True)
            self.flow.phase = "waiting" if phase == "hedging" else phase  # the other still waits
            return
        self.flow.hedge_read()
        self._racer_won = True
        if self._dog is not None:
            self._dog.fire()

    def _close_racer(self, why: str, kind: ErrorKind = ErrorKind.HEDGED) -> None:
        """End the race for the racer: closed upstream, logged as `hedged` (nobody's fault)."""
        racer, attempt = self._racer, self._racer_attempt
        self._racer = self._racer_attempt = None
        self._racer_won = False
        if racer is None or attempt is None:
            return
        if racer.done() and not racer.cancelled():
            opened = racer.result()
            if isinstance(opened, Opened):  # it had come in too: close what it opened
                spawn(opened.exits.aclose(), name=f"hedge-close-{self.flow.id}")
        racer.cancel()
        record = self.flow.hedge_failed(UpstreamError(why, kind=kind))
        self.flow.decisions.append(f"{record.model}: {kind} ({why})")

    def _lost_race(self) -> UpstreamError:
        assert self._racer_attempt is not None
        winner = self._racer_attempt.candidate.model
        return UpstreamError(f"late, and {winner} sent content first", kind=ErrorKind.OUTRUN)

    def _timed_out(self, dog: Watchdog) -> UpstreamError:
        """What the watchdog firing meant: the racer's win, the user's skip, or the silence."""
        if self._racer_won:
            return self._lost_race()
        where = "between chunks" if dog.fed else "before the first chunk"
        kind = ErrorKind.STALL if dog.fed else ErrorKind.TIMEOUT
        message = f"no data for {dog.limit_s:.3g} s {where}"
        if self.flow.usual_s is not None:
            usual = "longest gap" if dog.fed else "time to first byte"
            message += f"; this model's usual {usual} is {self.flow.usual_s:.2g} s"
        return self._skipped() or Stalled(message, kind=kind)

    def _client_left(self, response: web.StreamResponse | None = None) -> web.StreamResponse:
        # Named, not `super()`: a slots dataclass is a new class, which zero-argument super
        # does not know.
        return Relay._client_left(self, None if self.client is None else self.client.response)

    def _on_quiet(self) -> None:
        """Watchdog callback (must not raise): the upstream has been quiet for a heartbeat."""
        spawn(self._beat(), name=f"heartbeat-{self.flow.id}")

    async def _beat(self) -> None:
        assert self.client is not None and self._beat_model is not None
        try:
            await self.client.start(self._headers(self._beat_model, streaming=True))
            await self.client.keepalive()
        except (ConnectionResetError, RuntimeError):
            # The client is gone (or the stream just ended): stop waiting for the upstream.
            self.client_gone = self.client.open and self.client.gone
            if self.client_gone and self._dog is not None:
                self._dog.fire()
            return
        self.flow.heartbeat_sent()


def _length(answer: AnswerSoFar | None) -> int | None:
    """Where a continuation's text starts in the answer (None: not a continuation)."""
    return None if answer is None else len(answer.text)


@asynccontextmanager
async def _handed_over(racer: asyncio.Task[Opened | UpstreamError]) -> AsyncIterator[ChunkStream]:
    """The stream a race's winner opened, read on by the relay and closed when it is done."""
    opened = await racer  # under the attempt's watchdog: a timeout cancels the racer too
    if isinstance(opened, UpstreamError):
        raise opened  # the racer's own failure, recorded as this attempt's
    async with opened.exits:
        yield opened.reads
