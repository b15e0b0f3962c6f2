"""The requests the gateway holds: in flight, recently finished, and who is busy where."""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Callable, Mapping
from typing import Any

from .events import AttemptBegan, EventBus, RequestBegan, RequestFinished
from .flow import Flow

RECENT_LIMIT = 200
"""Finished requests kept in memory, newest last: the screen lingers on them and opens them."""

_SEQUENCE_BITS = 32
_SPREAD = 0x9E37_79B9
"""Odd, so `sequence * _SPREAD` modulo 2**32 is a bijection: ids stay unique. None of its hex
digits is 0 or f, so two neighbours differ in every digit, and rows on the screen do not look
alike."""


def request_id(now: float, sequence: int) -> str:
    """16 hex digits: the second `now` falls in, then `sequence` spread over 2**32, 8 each.

    In order of the second, because the log's tables are keyed by it: a random key puts each
    row's index entries anywhere in the tree, which costs more the longer the log grows
    (docs/BENCHMARKS.md, "The request log's keys"); these land at its end.
    """
    second = int(now) & 0xFFFF_FFFF
    return f"{second:08x}{(sequence * _SPREAD) & 0xFFFF_FFFF:08x}"


class Flows:
    """Begins, indexes and ends `Flow`s; counts what finished and what failed."""

    def __init__(
        self, bus: EventBus, clock: Callable[[], float], ids: random.Random | None = None
    ) -> None:
        self._bus = bus
        self._clock = clock
        # The sequence starts at random (seeded from the OS; tests pass a seeded generator): two
        # runs that share a log, even at once, repeat an id only if their sequences, 2**32 long,
        # reach the same number in the same second. Ids must be unique, not secret.
        self._sequence = (ids or random.Random()).getrandbits(_SEQUENCE_BITS)
        self.active: dict[str, Flow] = {}
        self.recent: deque[Flow] = deque(maxlen=RECENT_LIMIT)
        self.busy: dict[str, Counter[str]] = {}
        """provider -> sessions with a request in flight on it (for the concurrency guard)."""
        self.finished = 0
        self.failed = 0

    def new_id(self, started: float) -> str:
        """The id (`request_id`) of a request that began at `started`, unique across runs
        (they share one log)."""
        self._sequence += 1
        return request_id(started, self._sequence)

    def begin(
        self,
        *,
        session: str,
        requested_model: str,
        stream: bool,
        body: Mapping[str, Any] | None,
        dialect: str,
        client: str | None = None,
    ) -> Flow:
        started = self._clock()
        flow = Flow(
            id=self.new_id(started),
            session=session,
            requested_model=requested_model,
            stream=stream,
            started=started,
            clock=self._clock,
            dialect=dialect,
            client=client,
            body=body,
        )
        self.active[flow.id] = flow
        if self._bus.wants(RequestBegan):
            self._bus.publish(RequestBegan(flow.id, session))
        return flow

    def move_on(self, request_id: str) -> bool | None:
        """Cut the request's attempt short (see `Flow.mover`); None if it is not in flight."""
        flow = self.active.get(request_id)
        if flow is None:
            return None
        return flow.mover is not None and flow.mover()

    def move_on_all(self, serving: Callable[[Flow], bool]) -> list[str]:
        """Move on every request whose attempt under way `serving` picks; returns their ids."""
        return [
            f.id
            for f in list(self.active.values())
            if f.current is not None and serving(f) and f.mover is not None and f.mover()
        ]

    def begin_attempt(
        self,
        flow: Flow,
        *,
        model: str,
        provider: str,
        text_from: int | None = None,
        hedge: bool = False,
    ) -> None:
        """An attempt starts; `hedge`: alongside the one under way, racing it to a first byte.

        A racing candidate's provider is not counted busy (the concurrency guard) until it wins:
        a race lasts a few seconds, and counting it would need a release on every way it ends.
        """
        if hedge:
            flow.start_hedge(provider=provider, model=model)
        else:
            self._release(flow)
            flow.start_attempt(provider=provider, model=model, text_from=text_from)
            self._occupy(flow)
        if self._bus.wants(AttemptBegan):
            self._bus.publish(AttemptBegan(flow.id, model, provider))

    def hedge_won(self, flow: Flow) -> None:
        """The racing candidate sent content first: it is the attempt under way now."""
        self._release(flow)
        flow.hedge_takes_over()
        self._occupy(flow)

    def _occupy(self, flow: Flow) -> None:
        assert flow.provider is not None
        sessions = self.busy.get(flow.provider)
        if sessions is None:
            sessions = self.busy[flow.provider] = Counter()
        sessions[flow.session] += 1

    def finish(self, flow: Flow) -> bool:
        """Move exactly this request from in flight to finished; False if it already was."""
        if self.active.pop(flow.id, None) is None:
            return False
        self._release(flow)
        flow.finish()
        self.recent.append(flow)
        self.finished += 1
        if flow.error_kind is not None:
            self.failed += 1
        if self._bus.wants(RequestFinished):
            self._bus.publish(
                RequestFinished(flow.id, flow.status, flow.error_kind, flow.model, flow.attempt)
            )
        return True

    def _release(self, flow: Flow) -> None:
        if flow.provider is None:
            return
        sessions = self.busy.get(flow.provider)
        if sessions is not None:
            sessions[flow.session] -= 1
            if sessions[flow.session] <= 0:
                del sessions[flow.session]

    def find(self, request_id: str) -> Flow | None:
        """A request in flight or recently finished."""
        found = self.active.get(request_id)
        if found is not None:
            return found
        recent = self.recent
        if recent and recent[-1].id == request_id:  # the one that just finished: the usual
            return recent[-1]
        return next((f for f in reversed(recent) if f.id == request_id), None)

    def provider_busy_elsewhere(self, provider: str, session: str) -> bool:
        """Another conversation has a request in flight on this provider."""
        sessions = self.busy.get(provider)
        return bool(sessions) and any(s != session for s in sessions)  # type: ignore[union-attr]

    def busy_providers(self) -> list[str]:
        """Providers with any request in flight."""
        return [p for p, sessions in self.busy.items() if sessions]
