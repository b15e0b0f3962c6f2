"""Trying candidates in order until one answers; here non-streamed, streamed in stream_relay.py.

`Relay` walks the request's plan (`AttemptPlan`): the next candidate and its key, what a failure
means (protection, cooldowns, statistics, through the state's verbs), and how the request ends
when nothing is left. The user (or shutdown) can cut the attempt under way short at any time.

Quotas: a candidate whose every key reached its quota since the plan was made is passed over
without a call; an attempt is counted when it is sent and settled when it ends. When nothing but
a model at its quota is left (reason `quota`), the request waits for its window up to
`max_quota_wait_s`, else it is answered 429 with when the quota comes back.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web

from ..config import ModelSettings, Settings
from ..domain.attempts import AttemptPlan
from ..domain.errors import ErrorKind, Stalled, UpstreamError
from ..domain.flow import Flow
from ..domain.protection import Decision
from ..domain.quotas import Reservation
from ..domain.records import fallback_trail
from ..domain.routing import Candidate, Plan, note_once
from ..domain.state import GatewayState
from ..providers import Upstream
from .client_stream import client_gone
from .dialects import Dialect
from .errors import APIError
from .outcomes import at_quota, exhausted, refused, shut_down
from .validation import ChatCall
from .watchdog import Heartbeat, Watchdog

CLIENT_CHECK_S = 0.25
"""How often a wait (a Retry-After, a quota about to free) or a whole reply's attempt looks
whether the client left."""


@dataclass(slots=True)
class _Attempt:
    """One try of one candidate: which model, on which key, since when."""

    candidate: Candidate
    model: ModelSettings
    upstream: Upstream
    key_id: str
    api_key: str
    quota: Reservation | None = None
    """Its count against the key's quota (None: the model has no limits)."""


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
    stopping: bool = False
    """Set by `cut()`: the gateway is shutting down and this request must end now."""
    skipping: bool = False
    """Set by `skip()`: the user moved the request on from its current attempt."""
    quota_frees_in_s: float | None = None
    """Set when a model is passed over for its quota: how long until the soonest one frees
    (the Retry-After, when nothing else could be tried)."""
    _dog: Watchdog | None = None

    def __post_init__(self) -> None:
        self.flow.mover = self.skip  # the screen's and the bans' way to move this request on

    def cut(self) -> None:
        """End this request promptly (gateway shutdown): the waiting read raises, nothing leaks."""
        self.stopping = True
        if self._dog is not None:
            self._dog.fire()

    def skip(self) -> bool:
        """Move on from the current attempt now, as a stall would; False if none is waiting.

        The attempt is closed upstream and logged as the user's skip, which says nothing about
        the model; the answer goes on from the next candidate (continued, if it had begun).
        """
        if self._dog is None or self.stopping:
            return False
        self.skipping = True
        self._dog.fire()
        return True

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

    async def _next(self, plan: AttemptPlan, *, text_from: int | None = None) -> _Attempt | None:
        # Nothing is tried for a client that left (the caller ends the request as its leaving).
        while (step := None if self.stopping or self._gone() else plan.next()) is not None:
            candidate, wait_s = step
            if candidate.reason == "quota":  # nothing else left: wait for its window, or end
                frees_in_s = self._frees_in(candidate.model)
                if frees_in_s > self.settings.routing.max_quota_wait_s:
                    self._pass_over(candidate.model)
                    return None
                self.state.note(f"{candidate.model} is at its quota: waiting {frees_in_s:.0f} s")
                wait_s = max(wait_s, frees_in_s)
            if wait_s > 0:
                await self._wait(wait_s)  # a short Retry-After, or a quota about to free
                if self._gone():
                    return None  # the caller ends the request as the client's leaving
            if (attempt := self._begin(candidate, text_from=text_from)) is not None:
                # A skip left set was of the step before (a wait, or an attempt that ended as
                # it came), never of this one.
                self.skipping = False
                return attempt
            plan.passed_over(candidate)  # at its quota since the plan was made: no call made
        return None

    def _frees_in(self, model: str) -> float:
        """Seconds until the model's quota takes this request (0: now)."""
        now = self.state.clock()
        return max(0.0, self.state.available_at(model, now, self.flow.quota_tokens) - now)

    def _pass_over(self, model: str) -> None:
        """Note why `model` was passed over (once); keeps the soonest time a quota frees, for
        the 429."""
        frees_in_s = self._frees_in(model)
        if self.quota_frees_in_s is None or frees_in_s < self.quota_frees_in_s:
            self.quota_frees_in_s = frees_in_s
        state, tokens = self.state, self.flow.quota_tokens
        note_once(
            self.flow.passed_over,
            model,
            lambda: state.router.quota_note(model, state.clock(), tokens),
        )

    async def _wait(self, seconds: float) -> None:
        """Sleep, but end early when the gateway shuts down (`cut`), the user moves the request
        on (`skip`) or the client leaves (looked at every `CLIENT_CHECK_S`: a wait for a quota
        may last many seconds, and nothing should be sent, or spent, for a client that left)."""
        if self.stopping or self.skipping or self._gone():
            return
        looks = Heartbeat(CLIENT_CHECK_S, asyncio.get_running_loop().time())
        try:
            async with Watchdog(seconds, heartbeat=looks, on_quiet=self._cut_if_gone) as self._dog:
                await asyncio.Event().wait()  # ended by the watchdog: its time, or a cut
        except TimeoutError:
            pass
        finally:
            self._dog = None

    def _gone(self) -> bool:
        """The client's connection is closed or closing."""
        return client_gone(self.request)

    def _cut_if_gone(self) -> None:
        """Watchdog callback (must not raise): end the attempt under way if the client left."""
        if self._dog is not None and self._gone():
            self._dog.fire()

    def _client_left(self, response: web.StreamResponse | None = None) -> web.StreamResponse:
        """The client hung up: the attempt under way (if any) is closed as its doing, and the
        request ends as 499, whatever answer is left unsent."""
        self.flow.attempt_interrupted(ErrorKind.CLIENT_CLOSED)
        self.flow.fail(499, ErrorKind.CLIENT_CLOSED, "client closed the connection")
        return response or web.Response(status=499)

    def _begin(
        self, candidate: Candidate, *, text_from: int | None = None, hedge: bool = False
    ) -> _Attempt | None:
        """Start an attempt on `candidate` (`hedge`: alongside the one under way); None when
        every key of it has reached its quota since the plan was made (it is passed over)."""
        state, tokens = self.state, self.flow.quota_tokens
        model = state.catalog.models[candidate.model]
        picked = state.pick_key(candidate.model, tokens)
        if picked is None:
            self._pass_over(candidate.model)
            return None
        if candidate.reason == "cooling":
            state.note(f"{candidate.model} is cooling down but nothing else is left: trying it")
        key_id, api_key = picked
        state.begin_attempt(
            self.flow, model=candidate.model, provider=model.provider, text_from=text_from,
            hedge=hedge,
        )  # fmt: skip
        upstream = self.upstreams[model.provider]
        quota = state.reserve_quota(key_id, candidate.model, tokens)
        return _Attempt(candidate, model, upstream, key_id, api_key, quota)

    def _failed(
        self,
        plan: AttemptPlan,
        attempt: _Attempt,
        exc: UpstreamError,
        *,
        after_first_byte: bool,
        hedge: bool = False,
    ) -> Decision:
        """Record the failure (`hedge`: of the candidate racing the attempt under way); returns
        what protection decided about it."""
        key = attempt.candidate.model
        if exc.kind == ErrorKind.RATE_LIMITED and attempt.quota is not None:
            exc.kind = ErrorKind.QUOTA  # a key with limits: its quota, not the model's fault
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
                other_key_free=self.state.other_key_free(
                    key, attempt.key_id, self.flow.quota_tokens
                ),
            )
        self.state.record_failure(
            self.flow,
            (self.flow.hedge_failed if hedge else self.flow.attempt_failed)(exc),
            key_id=attempt.key_id,
            kind=exc.kind,
            decision=decision,
            reason=exc.describe() + (f"; retrying ({retry.why})" if retry else ""),
            retry_after_s=exc.retry_after_s,
            # The preferred model's first 5xx earns a retry, so it is not cooled down yet.
            cool_down=retry is None or retry.why != "first 5xx",
            quota=attempt.quota,
        )
        return decision

    def _succeeded(self, attempt: _Attempt) -> None:
        self.state.record_success(
            self.flow, self.flow.attempt_succeeded(), key_id=attempt.key_id, quota=attempt.quota
        )

    def _headers(self, model: ModelSettings, *, streaming: bool = False) -> dict[str, str]:
        """The answer's headers; `X-Fallback-Trail` lists the attempts so far, the one that
        answers last (`ok`, or `streaming` for a stream: its headers go before its end)."""
        flow = self.flow
        trail = fallback_trail(flow.attempts, model.key if streaming else None)
        if not streaming:
            trail = f"{trail}, {model.key}:ok" if trail else f"{model.key}:ok"
        return {
            "X-Gateway-Provider": model.provider,
            "X-Gateway-Model": model.key,
            "X-Gateway-Attempts": str(flow.attempt),
            "X-Fallback-Trail": trail.encode("ascii", "backslashreplace").decode(),
            **dict.fromkeys(self.dialect.id_headers, flow.id),
        }

    # --- non-streaming --------------------------------------------------------------------

    async def once(self, candidates: Plan) -> web.StreamResponse:
        timeout = self.settings.routing.request_timeout_s
        plan = self._plan(candidates)
        loop = asyncio.get_running_loop()
        cut_if_gone = self._cut_if_gone
        while (attempt := await self._next(plan)) is not None:
            # Nothing goes to the client before the whole reply, so nothing would notice it
            # leave: the watchdog looks every CLIENT_CHECK_S, and cuts the attempt if it left.
            looks = Heartbeat(CLIENT_CHECK_S, loop.time())
            try:
                async with Watchdog(timeout, heartbeat=looks, on_quiet=cut_if_gone) as self._dog:
                    reply = await attempt.upstream.complete(
                        self.call.body, attempt.model, api_key=attempt.api_key
                    )
            except TimeoutError:
                if self.stopping:
                    raise shut_down(self.flow) from None
                if self._gone():
                    return self._client_left()
                exc: UpstreamError = self._skipped() or Stalled(
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
                if client_gone(self.request):
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
        if self._gone():
            return self._client_left()
        raise self._exhausted()

    def _skipped(self) -> UpstreamError | None:
        """The user's skip, if that is why the watchdog fired."""
        if not self.skipping:
            return None
        self.skipping = False
        return UpstreamError("moved on by the user", kind=ErrorKind.SKIPPED)

    def _exhausted(self) -> APIError:
        """All candidates failed; the error also names providers left out for their keys. With
        nothing tried because every model is at its quota: a 429 saying when it comes back."""
        if self.quota_frees_in_s is not None and not self.flow.failures:
            return at_quota(self.flow, self.pool, self.quota_frees_in_s)
        return exhausted(self.flow, skipped=self.state.keys_rejected_notes(self.pool))
