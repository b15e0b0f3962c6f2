"""SSE decoding, chunk scanning and the watchdog, without sockets."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tui_gateway.domain.errors import WrappedError
from tui_gateway.providers.base import wrapped_error
from tui_gateway.providers.sse import DONE, MAX_EVENT_BYTES, EventTooLarge, SSEBatch, SSEDecoder
from tui_gateway.proxy.chunks import StreamScan, _objects_only
from tui_gateway.proxy.watchdog import Heartbeat, Watchdog


def chunk(text: str, finish: str | None = None) -> bytes:
    return json.dumps(
        {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}
    ).encode()


def decode_all(reads: list[bytes]) -> list[bytes]:
    decoder = SSEDecoder()
    out: list[bytes] = []
    for read in reads:
        batch = decoder.feed(read)
        if batch is not None:
            out += batch.payloads()
    rest = decoder.flush()
    return out + (rest.payloads() if rest else [])


PAYLOADS = [chunk("a"), chunk("b"), chunk("", "stop")]
WIRE = b"".join(b"data: " + p + b"\n\n" for p in PAYLOADS) + b"data: [DONE]\n\n"


def test_canonical_read_is_forwarded_untouched() -> None:
    batch = SSEDecoder().feed(WIRE)
    assert batch is not None and batch.framed is WIRE
    assert batch.count == 3 and batch.done


def test_comments_fields_and_crlf_are_dropped_and_reframed() -> None:
    wire = (
        b": keep-alive\r\n\r\nevent: message\r\ndata: "
        + PAYLOADS[0]
        + b"\r\n\r\ndata:"
        + PAYLOADS[1]
        + b"\n\n"
    )
    batch = SSEDecoder().feed(wire)
    assert batch is not None
    assert batch.payloads() == PAYLOADS[:2]
    assert batch.framed == b"data: " + PAYLOADS[0] + b"\n\ndata: " + PAYLOADS[1] + b"\n\n"


def test_nothing_after_done_is_read() -> None:
    decoder = SSEDecoder()
    batch = decoder.feed(
        b"data: " + PAYLOADS[0] + b"\n\ndata: [DONE]\n\ndata: " + PAYLOADS[1] + b"\n\n"
    )
    assert batch is not None and batch.payloads() == [PAYLOADS[0], DONE] and batch.done
    assert decoder.feed(b"data: more\n\n") is None


@given(st.lists(st.integers(min_value=1, max_value=len(WIRE) - 1), max_size=8))
def test_any_split_of_the_wire_gives_the_same_payloads(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    reads = [WIRE[a:b] for a, b in zip([0, *points], [*points, len(WIRE)], strict=True)]
    assert decode_all(reads) == [*PAYLOADS, DONE]


@given(st.lists(st.integers(min_value=1), max_size=60), st.sampled_from([b"\n", b"\r\n", b"\r"]))
def test_many_reads_and_any_line_end_give_the_same_payloads(
    cuts: list[int], newline: bytes
) -> None:
    """Reads that end no event are held and joined once one ends (not joined on every read)."""
    wire = WIRE.replace(b"\n", newline)
    points = sorted({1 + c % (len(wire) - 1) for c in cuts})
    reads = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]
    assert decode_all(reads) == [*PAYLOADS, DONE]


def test_an_event_that_never_ends_is_cut_off_and_a_long_one_is_whole() -> None:
    long_payload = b'{"x": "' + b"y" * (3 * 1024 * 1024) + b'"}'
    wire = b"data: " + long_payload + b"\n\n"
    reads = [wire[i : i + 65536] for i in range(0, len(wire), 65536)]
    assert decode_all(reads) == [long_payload]  # 3 MB in 49 reads: one event
    decoder = SSEDecoder()
    decoder.feed(b'data: {"x": "')
    with pytest.raises(EventTooLarge, match="over 16 MB"):
        for _ in range(MAX_EVENT_BYTES // 65536 + 1):
            decoder.feed(b"y" * 65536)


def test_wrapped_error_status_comes_from_the_body() -> None:
    assert wrapped_error(b'{"error": {"message": "busy", "code": 503}}').status == 503  # type: ignore[union-attr]
    assert wrapped_error(b'{"error": {"message": "x", "status": "429"}}').status == 429  # type: ignore[union-attr]
    assert wrapped_error(b'{"error": {"message": "x", "code": "oops"}}').status == 502  # type: ignore[union-attr]
    assert wrapped_error(b'{"error": "plain"}').message == "plain"  # type: ignore[union-attr]
    assert wrapped_error(chunk('the "error" key')) is None  # only a root-level error counts
    assert wrapped_error(b'{"choices": [], "x": {"error": {}}}') is None


def test_scan_finds_finish_usage_and_errors_in_any_chunk() -> None:
    scan = StreamScan()
    usage = b'{"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}}'
    scan.scan(SSEBatch.of([PAYLOADS[0]]))
    assert not scan.finished
    scan.scan(SSEBatch.of([PAYLOADS[2], usage, DONE]))
    assert scan.finished and scan.done and scan.chunks == 3
    assert (scan.prompt_tokens, scan.completion_tokens) == (7, 3)
    with pytest.raises(WrappedError):
        StreamScan().scan(SSEBatch.of([PAYLOADS[0], b'{"error": {"message": "late"}}']))


class FakeLoopTime:
    """Replaces the running loop's clock, so timers fire when the test says, not after sleeps."""

    def __init__(self, loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = loop.time()
        monkeypatch.setattr(loop, "time", lambda: self.now)

    async def advance(self, seconds: float) -> None:
        self.now += seconds
        for _ in range(5):
            await asyncio.sleep(0)


async def test_watchdog_fires_only_after_the_limit_without_progress(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeLoopTime(asyncio.get_running_loop(), monkeypatch)
    outcome: list[str] = []

    async def guarded(dog_holder: list[Watchdog]) -> None:
        try:
            async with Watchdog(10.0) as dog:
                dog_holder.append(dog)
                await asyncio.Event().wait()
        except TimeoutError:
            outcome.append("timeout")

    holder: list[Watchdog] = []
    task = asyncio.get_running_loop().create_task(guarded(holder))
    await clock.advance(0)
    await clock.advance(9.0)
    holder[0].feed(limit_s=5.0)  # progress: the clock restarts with the between-chunks limit
    await clock.advance(4.9)
    assert outcome == []
    await clock.advance(0.2)
    assert outcome == ["timeout"] and holder[0].expired
    await task


async def test_watchdog_fed_with_a_shorter_limit_fires_at_the_new_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A learned stall limit can be shorter than the first-byte one: it must not fire late."""
    clock = FakeLoopTime(asyncio.get_running_loop(), monkeypatch)
    outcome: list[str] = []
    holder: list[Watchdog] = []

    async def guarded() -> None:
        try:
            async with Watchdog(10.0) as dog:
                holder.append(dog)
                await asyncio.Event().wait()
        except TimeoutError:
            outcome.append("timeout")

    task = asyncio.get_running_loop().create_task(guarded())
    await clock.advance(0)
    await clock.advance(0.5)
    holder[0].feed(limit_s=2.0)  # the first byte; this model never pauses for long
    await clock.advance(1.9)
    assert outcome == []
    await clock.advance(0.2)
    assert outcome == ["timeout"], "at 2.5 s, not at the first limit's 10 s"
    await task


async def test_watchdog_fire_cuts_short_and_is_harmless_after_exit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    FakeLoopTime(asyncio.get_running_loop(), monkeypatch)
    dog = Watchdog(60.0)
    with pytest.raises(TimeoutError):
        async with dog:
            asyncio.get_running_loop().call_soon(dog.fire)
            await asyncio.Event().wait()
    dog.fire()  # after the block: nothing to cut, nothing raised


async def test_watchdog_heartbeats_while_quiet_without_resetting_the_stall_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeLoopTime(asyncio.get_running_loop(), monkeypatch)
    beats: list[float] = []
    outcome: list[str] = []

    start = clock.now
    heartbeat = Heartbeat(3.0, start)

    async def attempt() -> None:
        try:
            async with Watchdog(
                10.0, heartbeat=heartbeat, on_quiet=lambda: beats.append(clock.now)
            ):
                await asyncio.Event().wait()
        except TimeoutError:
            outcome.append("stalled")

    async def two_attempts() -> None:
        await attempt()
        await attempt()  # the next candidate: the client's silence goes on counting

    task = asyncio.get_running_loop().create_task(two_attempts())
    await clock.advance(0)
    for _ in range(21):
        await clock.advance(1.0)
    # A beat every 3 s of silence across both attempts; the beats never counted as progress.
    assert [round(b - start) for b in beats] == [3, 6, 9, 12, 15, 18]
    assert outcome == ["stalled", "stalled"]
    await task


def test_aiohttp_still_has_the_switch_that_sends_headers_with_the_first_event() -> None:
    # relay._EventStream turns it off to save a send per stream; if aiohttp renames it the
    # headers would still go out (a second send), so say so here instead of silently.
    from aiohttp import web

    from tui_gateway.proxy.client_stream import _EventStream

    assert web.StreamResponse._send_headers_immediately is True
    assert _EventStream._send_headers_immediately is False


def test_a_canonical_read_says_whether_its_events_are_objects() -> None:
    """The decoder's counts answer the scan's question too, so the scan does not count again."""
    batch = SSEDecoder().feed(WIRE)
    assert batch is not None and batch.objects and batch.done and batch.count == 3
    odd = SSEDecoder().feed(b"data: " + PAYLOADS[0] + b"\n\ndata: [1]\n\ndata: x}\n\n")
    assert odd is not None and odd.objects is False and odd.count == 3
    scan = StreamScan()
    assert scan.scan(odd).payloads() == [PAYLOADS[0]] and scan.malformed == 2


@given(
    st.lists(st.sampled_from([PAYLOADS[0], b"[1]", b"x}", b"{}", b"null"]), min_size=1),
    st.booleans(),
)
def test_the_decoders_objects_flag_matches_a_count_of_its_own(
    payloads: list[bytes], done: bool
) -> None:
    wire = b"".join(b"data: " + p + b"\n\n" for p in payloads) + (
        b"data: [DONE]\n\n" if done else b""
    )
    batch = SSEDecoder().feed(wire)
    assert batch is not None and (batch.count, batch.done) == (len(payloads), done)
    assert batch.objects == _objects_only(SSEBatch(batch.framed, batch.count, batch.done))
