"""Trying candidates in order until one answers: non-streaming and streaming (SSE)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from ..config import ModelSettings, Settings
from ..domain.errors import ErrorKind, Stalled, Unavailable, UpstreamError
from ..domain.state import GatewayState
from ..providers import Upstream
from .chunks import StreamScan
from .errors import APIError
from .trace import CallTrace
from .validation import ChatCall
from .watchdog import Watchdog

_STALL_KINDS = frozenset({ErrorKind.TIMEOUT, ErrorKind.STALL})


@dataclass(slots=True, eq=False)
class Relay:
    """One client request's journey through its candidates."""

    request: web.Request
    call: ChatCall
    state: GatewayState
    upstreams: dict[str, Upstream]
    settings: Settings
    trace: CallTrace
    stopping: bool = False
    """Set by `cut()`: the gateway is shutting down and this request must end now."""
    _dog: Watchdog | None = None

    def cut(self) -> None:
        """End this request promptly (gateway shutdown): the waiting read raises, nothing leaks."""
        self.stopping = True
        if self._dog is not None:
            self._dog.fire()

    def _begin(self, key: str) -> tuple[ModelSettings, Upstream]:
        model = self.state.catalog.models[key]
        self.state.begin_attempt(self.trace.active, model=key, provider=model.provider)
        self.trace.start_attempt(provider=model.provider, model=key)
        return model, self.upstreams[model.provider]

    def _failed(self, exc: UpstreamError) -> None:
        self.trace.attempt_failed(exc)
        self.state.record_attempt_failure(self.trace.active, exc.describe())

    def _headers(self, model: ModelSettings) -> dict[str, str]:
        return {
            "X-Gateway-Provider": model.provider,
            "X-Gateway-Model": model.key,
            "X-Gateway-Attempts": str(len(self.trace.attempts) + 1),
            "X-Request-Id": self.trace.active.id,
        }

    # --- non-streaming --------------------------------------------------------------------

    async def once(self, candidates: list[str]) -> web.Response:
        timeout = self.settings.routing.request_timeout_s
        for key in candidates:
            if self.stopping:
                break
            model, upstream = self._begin(key)
            try:
                async with Watchdog(timeout) as self._dog:
                    reply = await upstream.complete(self.call.body, model)
            except TimeoutError:
                if self.stopping:
                    raise self._shut_down() from None
                self._failed(Stalled(f"no reply within {timeout:g} s", kind=ErrorKind.TIMEOUT))
                continue
            except UpstreamError as exc:
                self._failed(exc)
                if not exc.retryable:
                    raise self._refused(exc) from None
                continue
            finally:
                self._dog = None
            self.trace.first_byte_seen()
            headers = self._headers(model)
            self.trace.attempt_succeeded()
            self.trace.tokens_in, self.trace.tokens_out = (
                reply.prompt_tokens,
                reply.completion_tokens,
            )
            if _client_gone(self.request):
                self.trace.fail(499, ErrorKind.CLIENT_CLOSED, "client closed the connection")
            return web.Response(body=reply.body, content_type="application/json", headers=headers)
        raise self._exhausted()

    # --- streaming ------------------------------------------------------------------------

    async def stream(self, candidates: list[str]) -> web.StreamResponse:
        response: web.StreamResponse | None = None
        streaming = self.settings.streaming
        for key in candidates:
            if self.stopping:
                break
            model, upstream = self._begin(key)
            scan = StreamScan()
            try:
                async with Watchdog(streaming.first_byte_timeout_s) as self._dog:
                    dog = self._dog
                    async with upstream.stream(self.call.body, model) as chunks:
                        async for batch in chunks:
                            scan.scan(batch)  # raises on an error dressed as a chunk
                            if response is None:
                                if scan.done and scan.chunks == 0:
                                    raise Unavailable("empty stream", kind=ErrorKind.TRUNCATED)
                                response = await self._commit(model)
                            if not dog.fed:
                                self.trace.first_byte_seen()
                            dog.feed(limit_s=streaming.stall_timeout_s)
                            self.state.record_chunks(self.trace.active, batch.count)
                            await response.write(batch.framed)
                self._dog = None
                if not (scan.finished or scan.done):
                    raise Unavailable(
                        "stream ended without a final chunk", kind=ErrorKind.TRUNCATED
                    )
            except TimeoutError:
                if self.stopping:
                    if response is None:
                        raise self._shut_down() from None
                    await _write_quietly(response, self._shut_down().sse_event())
                    return response
                limit = streaming.stall_timeout_s if dog.fed else streaming.first_byte_timeout_s
                where = "between chunks" if dog.fed else "before the first chunk"
                kind = ErrorKind.STALL if dog.fed else ErrorKind.TIMEOUT
                exc: UpstreamError = Stalled(f"no data for {limit:g} s {where}", kind=kind)
            except UpstreamError as failure:
                exc = failure
            except ConnectionResetError:
                # The client hung up; leaving the `async with` above already aborted the upstream.
                self.trace.attempt_interrupted(ErrorKind.CLIENT_CLOSED)
                self.trace.fail(499, ErrorKind.CLIENT_CLOSED, "client closed the connection")
                return response or web.Response(status=499)
            else:
                assert response is not None  # scan.finished implies at least one payload
                self.trace.attempt_succeeded()
                self.trace.tokens_in = scan.prompt_tokens
                self.trace.tokens_out = scan.completion_tokens or scan.chunks
                await _write_quietly(response, b"" if scan.done else b"data: [DONE]\n\n")
                return response
            self._failed(exc)
            if response is not None:
                # Bytes already reached the client: it cannot silently start over elsewhere.
                self.trace.fail(200, exc.kind, exc.message)
                await _write_quietly(response, self._mid_stream_error(exc).sse_event())
                return response
            if not exc.retryable:
                raise self._refused(exc)
        if self.stopping:
            raise self._shut_down()
        raise self._exhausted()

    async def _commit(self, model: ModelSettings) -> web.StreamResponse:
        """Send status and headers: from here on, failures are stream events, not HTTP errors."""
        response = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                **self._headers(model),
            },
        )
        await response.prepare(self.request)
        return response

    # --- errors the client sees -----------------------------------------------------------

    def _refused(self, exc: UpstreamError) -> APIError:
        """A 4xx that every upstream would give: return the provider's reason, do not retry."""
        status = exc.status or 400
        self.trace.fail(status, exc.kind, exc.message)
        return APIError(status, exc.message, code=exc.code or "upstream_rejected")

    def _exhausted(self) -> APIError:
        failures = self.trace.failures
        kinds = {exc.kind for _, exc in failures}
        if kinds == {ErrorKind.RATE_LIMITED}:
            status, code = 429, "rate_limit_exceeded"
        elif kinds and kinds <= _STALL_KINDS:
            status, code = 504, "upstream_timeout"
        else:
            status, code = 502, "all_candidates_failed"
        tried = "; ".join(f"{model} ({exc.describe()})" for model, exc in failures)
        message = f"all {len(failures)} candidates failed: {tried}"
        self.trace.fail(status, kinds.pop() if len(kinds) == 1 else "upstream_error", message)
        headers = {}
        waits = [e.retry_after_s for _, e in failures if e.retry_after_s is not None]
        if status == 429 and waits:
            headers["Retry-After"] = str(max(1, round(min(waits))))
        return APIError(status, message, type="upstream_error", code=code, headers=headers)

    def _shut_down(self) -> APIError:
        self.trace.attempt_interrupted(ErrorKind.SHUTDOWN)
        self.trace.fail(503, ErrorKind.SHUTDOWN, "the gateway shut down during the request")
        return APIError(
            503, "the gateway is shutting down", type="server_shutdown", code="shutdown"
        )

    def _mid_stream_error(self, exc: UpstreamError) -> APIError:
        kind = "stream_timeout" if exc.kind in _STALL_KINDS else "upstream_error"
        message = f"{self.trace.model} failed after the stream started: {exc.describe()}"
        return APIError(502, message, type=kind, code=str(exc.kind))


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _write_quietly(response: web.StreamResponse, data: bytes) -> None:
    """Final bytes of a stream: the client may already be gone, which is fine here."""
    try:
        await response.write_eof(data)
    except (ConnectionResetError, RuntimeError):
        pass
