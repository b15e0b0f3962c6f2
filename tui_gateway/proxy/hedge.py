"""Hedging (`[routing] hedge`, off by default): racing a late first byte with the next candidate.

When a stream's first byte is later than its model's usual time by the configured margin, the
next candidate in the plan starts alongside. Whichever sends content first is kept; the other is
closed upstream and logged: a late attempt outrun by its racer as `outrun` (the provider's: it
was slow, so its posterior learns it, though nothing is cooled down), a racer that lost as
`hedged` (nobody's: it only started later). Only before anything reached the client: after
that, a late chunk is a stall, and a stall is continued (continuation.py).

    hedge_after_s()   when a race starts, from the model's learned time to first byte
    open_stream()     the racing candidate's side: open its stream, wait for its first events
    Opened            a stream whose first events came, handed over to the relay to read on
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from ..config import RoutingSettings
from ..domain.errors import ErrorKind, Unavailable, UpstreamError
from ..domain.timers import LearnedTimers
from ..providers.sse import SSEBatch
from .chunks import StreamScan
from .relay import _Attempt


def hedge_after_s(
    routing: RoutingSettings, timers: LearnedTimers, model: str, first_byte_timeout_s: float
) -> float | None:
    """Seconds after an attempt begins at which a race starts; None: no race for this attempt.

    `hedge_margin` x the model's usual (0.95 quantile) time to first byte, not sooner than
    `hedge_min_s`; without enough history, half its first-byte timeout. A race that would start
    only when the timeout fires anyway is no race.
    """
    if not routing.hedge:
        return None
    usual = timers.usual_first_byte(model)
    if usual is None:
        after = first_byte_timeout_s / 2
    else:
        after = max(routing.hedge_min_s, routing.hedge_margin * usual)
    return after if after < first_byte_timeout_s else None


@dataclass(slots=True, eq=False)
class Opened:
    """An upstream stream whose first events came; the relay reads on from `reads`."""

    attempt: _Attempt
    reads: AsyncIterator[SSEBatch]
    """The first read again, then the rest of the stream."""
    exits: AsyncExitStack
    """Closes the upstream stream (releases or aborts its connection)."""


async def open_stream(attempt: _Attempt, body: dict[str, Any]) -> Opened | UpstreamError:
    """Open `attempt`'s stream and wait for its first events; its failure is returned, not
    raised (it is recorded by the relay, which may be busy with the other attempt).

    The first read is scanned here only to refuse an error dressed as a chunk or an empty
    stream; the relay scans it again with the rest, as if it had read it itself. Cancelled (the
    other attempt sent content first), the stream is closed on the way out.
    """
    exits = AsyncExitStack()
    try:
        stream = await exits.enter_async_context(
            attempt.upstream.stream(body, attempt.model, api_key=attempt.api_key)
        )
        reads = aiter(stream)
        async for received in reads:
            scan = StreamScan()
            if not scan.scan(received).framed:
                continue  # nothing but malformed events: not content yet
            if scan.done and scan.chunks == 0:
                raise Unavailable("empty stream", kind=ErrorKind.TRUNCATED)
            return Opened(attempt, _again(received, reads), exits)
        raise Unavailable("stream ended before any content", kind=ErrorKind.TRUNCATED)
    except UpstreamError as exc:
        await exits.aclose()
        return exc
    except BaseException:
        await exits.aclose()
        raise


async def _again(first: SSEBatch, rest: AsyncIterator[SSEBatch]) -> AsyncIterator[SSEBatch]:
    yield first
    async for batch in rest:
        yield batch
