"""Trying candidates in order until one answers: non-streaming and streaming (SSE)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web

from ..asyncio_utils import spawn
from ..config import ModelSettings, Settings
from ..domain.attempts import AttemptPlan
from ..domain.errors import ErrorKind, Stalled, Unavailable, UpstreamError
from ..domain.flow import Flow
from ..domain.routing import Candidate, Plan
from ..domain.state import GatewayState
from ..providers import Upstream
from .chunks import (
    StreamScan,
    as_continuation,
    continuation_body,
    first_chunk_id,
    owes_usage,
    usage_event,
)
from .dialects import Dialect, StreamEncoder
from .dialects.chat import CHAT_STREAM
from .errors import APIError
from .outcomes import exhausted, mid_stream_error, refused, shut_down
from .validation import ChatCall
from .watchdog import Heartbeat, Watchdog


@dataclass(slots=True)
class _Attempt:
    """One try of one candidate: which model, on which key, since when."""

    candidate: Candidate
    model: ModelSettings
    upstream: Upstream
    key_id: str
    api_key: str


@dataclass(slots=True, eq=False)
class Relay:
    """One client request's journey through its candidates."""

    request: web.Request
    call: ChatCall
    state: GatewayState
    upstreams: dict[str, Upstream]
    settings: Settings
    flow: Flow
    pool: str
    """The pool the request routes through (named in errors about what it left out)."""
    dialect: Dialect
    """The client's API: what the reply and the stream's events are translated into."""
    out: StreamEncoder = CHAT_STREAM
    """This request's stream encoder, made when the stream starts."""
    stopping: bool = False
    """Set by `cut()`: the gateway is shutting down and this request must end now."""
    client_gone: bool = False
    """A heartbeat found the client gone: the waiting read is cut short."""
    _dog: Watchdog | None = None
    _response: web.StreamResponse | None = None
    _prepared: asyncio.Event | None = None
    _beat_model: ModelSettings | None = None

    def cut(self) -> None:
        """End this request promptly (gateway shutdown): the waiting read raises, nothing leaks."""
        self.stopping = True
        if self._dog is not None:
            self._dog.fire()

    def _plan(self, plan: Plan) -> AttemptPlan:
        routing = self.settings.routing
        head, rest = plan
        return AttemptPlan(
            list(head),
            max_attempts=routing.max_attempts,
            max_retry_after_wait_s=routing.max_retry_after_wait_s,
            more=rest,
            keys_rejected=self.state.keys.all_invalid,
        )

    async def _next(self, plan: AttemptPlan) -> _Attempt | None:
        step = None if self.stopping else plan.next()
        if step is None:
            return None
        candidate, wait_s = step
        if wait_s > 0:
            await asyncio.sleep(wait_s)  # a short Retry-After on the preferred model
        model = self.state.catalog.models[candidate.model]
        if candidate.reason == "cooling":
            self.state.note(
                f"{candidate.model} is cooling down but nothing else is left: trying it"
            )
        key_id, api_key = self.state.pick_key(candidate.model)
        self.state.begin_attempt(self.flow, model=candidate.model, provider=model.provider)
        upstream = self.upstreams[model.provider]
        return _Attempt(candidate, model, upstream, key_id, api_key)

    def _failed(
        self, plan: AttemptPlan, attempt: _Attempt, exc: UpstreamError, *, after_first_byte: bool
    ) -> None:
        key = attempt.candidate.model
        if exc.kind == ErrorKind.KEY_REJECTED:
            # Before other_key_free below, so the retry goes to a key still accepted.
            self.state.reject_key(attempt.key_id, status=exc.status, reason=exc.message)
        decision = self.state.decide(key, exc.kind, after_first_byte=after_first_byte)
        retry = None
        if not after_first_byte:
            retry = plan.failed(
                attempt.candidate,
                exc.kind,
                decision,
                retry_after_s=exc.retry_after_s,
                other_key_free=self.state.other_key_free(key, attempt.key_id),
            )
        self.state.record_failure(
            self.flow,
            self.flow.attempt_failed(exc),
            key_id=attempt.key_id,
            kind=exc.kind,
            decision=decision,
            reason=exc.describe() + (f"; retrying ({retry.why})" if retry else ""),
            retry_after_s=exc.retry_after_s,
            # The preferred model's first 5xx earns a retry, so it is not cooled down yet.
            cool_down=retry is None or retry.why != "first 5xx",
        )

    def _succeeded(self, attempt: _Attempt) -> None:
        self.state.record_success(self.flow, self.flow.attempt_succeeded(), key_id=attempt.key_id)

    def _headers(self, model: ModelSettings) -> dict[str, str]:
        return {
            "X-Gateway-Provider": model.provider,
            "X-Gateway-Model": model.key,
            "X-Gateway-Attempts": str(self.flow.attempt),
            "X-Request-Id": self.flow.id,
        }

    # --- non-streaming --------------------------------------------------------------------

    async def once(self, candidates: Plan) -> web.Response:
        timeout = self.settings.routing.request_timeout_s
        plan = self._plan(candidates)
        while (attempt := await self._next(plan)) is not None:
            try:
                async with Watchdog(timeout) as self._dog:
                    reply = await attempt.upstream.complete(
                        self.call.body, attempt.model, api_key=attempt.api_key
                    )
            except TimeoutError:
                if self.stopping:
                    raise shut_down(self.flow) from None
                exc: UpstreamError = Stalled(
                    f"no reply within {timeout:g} s", kind=ErrorKind.TIMEOUT
                )
            except UpstreamError as failure:
                exc = failure
            else:
                self.flow.first_byte_seen()
                headers = self._headers(attempt.model)
                self.flow.tokens_in = reply.prompt_tokens
                self.flow.tokens_out = reply.completion_tokens
                self._succeeded(attempt)
                if _client_gone(self.request):
                    self.flow.fail(499, ErrorKind.CLIENT_CLOSED, "client closed the connection")
                body = self.dialect.reply(self.call, reply.body)
                return web.Response(body=body, content_type="application/json", headers=headers)
            finally:
                self._dog = None
            self._failed(plan, attempt, exc, after_first_byte=False)
            if not exc.retryable:
                raise refused(self.flow, exc) from None
        if self.stopping:
            raise shut_down(self.flow)
        raise self._exhausted()

    # --- streaming ------------------------------------------------------------------------

    async def stream(self, candidates: Plan) -> web.StreamResponse:
        """Relay a stream; fail over silently before content, continue on another model after.

        Headers go out at the first content chunk or the first heartbeat, whichever is first.
        Before any content reached the client a failed attempt is replaced silently; after, the
        answer continues on the next candidate that accepts a prefill (the text so far as a
        trailing assistant message), and only the continuation is relayed.
        """
        streaming = self.settings.streaming
        plan = self._plan(candidates)
        out = self.out = self.dialect.encoder(self.call, self.flow.id)
        loop = asyncio.get_running_loop()
        beats = Heartbeat(streaming.heartbeat_interval_s, loop.time())
        delivered: list[bytes] = []
        """Framed batches that reached the client, for a continuation's prefill."""
        broke: UpstreamError | None = None
        """The failure that broke the answer off, if one did: the one the client is told about."""
        broke_model = ""
        answer_id: str | None = None
        while (attempt := await self._next(plan)) is not None:
            body = self.call.body if not delivered else continuation_body(self.call.body, delivered)
            scan = StreamScan()
            self._beat_model = attempt.model
            try:
                async with Watchdog(
                    streaming.first_byte_timeout_s, heartbeat=beats, on_quiet=self._on_quiet
                ) as self._dog:
                    dog = self._dog
                    async with attempt.upstream.stream(
                        body, attempt.model, api_key=attempt.api_key
                    ) as chunks:
                        async for received in chunks:
                            batch = scan.scan(received)  # raises on an error dressed as a chunk
                            if not batch.framed:
                                continue  # nothing but malformed events
                            if broke is not None:  # continuing someone else's answer
                                batch = as_continuation(batch, answer_id)
                            if scan.done and scan.chunks == 0 and not delivered:
                                raise Unavailable("empty stream", kind=ErrorKind.TRUNCATED)
                            if batch.done and owes_usage(self.call.body, scan):
                                batch = batch.without_done()  # usage goes before [DONE]
                            response = await self._commit(attempt.model)
                            if not dog.fed:
                                self.flow.first_byte_seen()
                            dog.feed(limit_s=streaming.stall_timeout_s)
                            self.flow.chunks_relayed(batch.count)
                            if batch.done:  # the last event: out with the stream's end, one send
                                await response.write_eof(out.events(batch.framed))
                            else:
                                await response.write(out.events(batch.framed))
                            beats.last = loop.time()
                            delivered.append(batch.framed)
                self._dog = None
                if not (scan.finished or scan.done):
                    raise Unavailable(
                        "stream ended without a final chunk", kind=ErrorKind.TRUNCATED
                    )
            except TimeoutError:
                if self.client_gone:
                    return self._client_left()
                if self.stopping:
                    if self._response is None:
                        raise shut_down(self.flow) from None
                    await _write_quietly(self._response, out.failed(shut_down(self.flow)))
                    return self._response
                limit = streaming.stall_timeout_s if dog.fed else streaming.first_byte_timeout_s
                where = "between chunks" if dog.fed else "before the first chunk"
                kind = ErrorKind.STALL if dog.fed else ErrorKind.TIMEOUT
                exc: UpstreamError = Stalled(f"no data for {limit:g} s {where}", kind=kind)
            except UpstreamError as failure:
                exc = failure
            except ConnectionResetError:
                # The client hung up; leaving the `async with` above already aborted the upstream.
                return self._client_left()
            else:
                assert self._response is not None  # scan.finished implies a payload went out
                if scan.malformed:
                    self.state.note(
                        f"{self.flow.id} dropped {scan.malformed} malformed event(s)"
                        f" from {attempt.candidate.model}"
                    )
                self.flow.tokens_in = scan.prompt_tokens
                self.flow.tokens_out = scan.completion_tokens or scan.chunks
                self._succeeded(attempt)
                owed = owes_usage(self.call.body, scan)
                tail = b"" if scan.done and not owed else b"data: [DONE]\n\n"
                if owed:
                    usage = usage_event(self.call.body, attempt.model.id, scan, self.flow.id)
                    tail = usage + tail
                await _write_quietly(self._response, out.events(tail))
                return self._response
            if not delivered:
                self._failed(plan, attempt, exc, after_first_byte=False)
                if not exc.retryable:
                    if self._response is None:
                        raise refused(self.flow, exc)
                    return await self._end_with(refused(self.flow, exc))
                continue
            if broke is not None and exc.kind == ErrorKind.REJECTED:
                # A 400 to a continuation: this provider does not take a prefill.
                self.state.refuse_prefill(attempt.model.provider)
            self._failed(plan, attempt, exc, after_first_byte=True)
            plan.exclude(attempt.candidate, self.state.decide(
                attempt.candidate.model, exc.kind, after_first_byte=True
            ))  # fmt: skip
            if broke is None:
                broke, broke_model = exc, attempt.candidate.model
                answer_id = first_chunk_id(delivered)
            plan.only = lambda c: self.state.can_continue(c.model)
            self.state.begin_continuation(self.flow, attempt.candidate.model, exc.describe())
        if self.stopping:
            if self._response is None:
                raise shut_down(self.flow)
            return await self._end_with(shut_down(self.flow))
        if broke is not None:
            assert self._response is not None
            # The answer broke off and nothing could continue it: say why, never `stop`.
            self.flow.fail(200, broke.kind, broke.message)
            error = mid_stream_error(broke, broke_model)
            await _write_quietly(self._response, out.failed(error))
            return self._response
        if self._response is not None:  # committed by a heartbeat: the error goes in-stream
            return await self._end_with(self._exhausted())
        raise self._exhausted()

    def _exhausted(self) -> APIError:
        """All candidates failed; the error also names providers left out for their keys."""
        return exhausted(self.flow, skipped=self.state.keys_rejected_notes(self.pool))

    async def _end_with(self, error: APIError) -> web.StreamResponse:
        """Headers already went out: the error becomes the stream's last event."""
        assert self._response is not None
        await _write_quietly(self._response, self.out.failed(error))
        return self._response

    def _client_left(self) -> web.StreamResponse:
        self.flow.attempt_interrupted(ErrorKind.CLIENT_CLOSED)
        self.flow.fail(499, ErrorKind.CLIENT_CLOSED, "client closed the connection")
        return self._response or web.Response(status=499)

    def _on_quiet(self) -> None:
        """Watchdog callback (must not raise): the upstream has been quiet for a heartbeat."""
        spawn(self._beat(), name=f"heartbeat-{self.flow.id}")

    async def _beat(self) -> None:
        try:
            assert self._beat_model is not None
            response = await self._commit(self._beat_model)
            await response.write(self.out.keepalive())
        except (ConnectionResetError, RuntimeError):
            # The client is gone (or the stream just ended): stop waiting for the upstream.
            self.client_gone = self._response is not None and _client_gone(self.request)
            if self.client_gone and self._dog is not None:
                self._dog.fire()
            return
        self.flow.heartbeat_sent()

    async def _commit(self, model: ModelSettings) -> web.StreamResponse:
        """Send status and headers once: from here on, failures are stream events."""
        if self._response is None:
            response = self._response = _EventStream(
                status=200,
                headers={
                    "Content-Type": "text/event-stream",
                    "Cache-Control": "no-cache",
                    **self._headers(model),
                },
            )
            self._prepared = asyncio.Event()
            await response.prepare(self.request)
            self._prepared.set()
        elif self._prepared is not None and not self._prepared.is_set():
            await self._prepared.wait()  # a heartbeat is sending the headers right now
        return self._response


class _EventStream(web.StreamResponse):
    """Headers go out with the first event, in one send instead of two.

    `prepare()` is always followed by a write here (an event or a keep-alive). The attribute is
    aiohttp's own switch (`web.Response` turns it off the same way); a test pins it.
    """

    _send_headers_immediately = False


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _write_quietly(response: web.StreamResponse, data: bytes) -> None:
    """Final bytes of a stream: the client may already be gone, which is fine here."""
    try:
        await response.write_eof(data)
    except (ConnectionResetError, RuntimeError):
        pass
