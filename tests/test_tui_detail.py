"""The request detail screen: what it shows of a request, live or from the log, and its keys."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.app import App
from textual.pilot import Pilot
from textual.widgets import Static

from tests.factories import FakeClock, make_settings, model
from tui_gateway.config import Settings
from tui_gateway.domain.errors import ErrorKind, Stalled, Unavailable, UpstreamError
from tui_gateway.domain.flow import Flow
from tui_gateway.domain.records import RequestRecord
from tui_gateway.domain.snapshot import detail_of_row
from tui_gateway.domain.state import GatewayState
from tui_gateway.domain.views import FlowDetail
from tui_gateway.server import Gateway
from tui_gateway.store.log import RequestLog
from tui_gateway.tui.curl import as_curl
from tui_gateway.tui.screens import RequestDetailScreen
from tui_gateway.tui.screens.detail import (
    attempts_text,
    batches,
    error_text,
    header_text,
    messages_text,
    timeline_text,
)

SIM = [{"name": "sim", "kind": "simulated"}]
BASE_URL = "http://127.0.0.1:8400/v1"
BODY: dict[str, Any] = {
    "model": "auto",
    "stream": True,
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Why is the sky blue?\nExplain like I'm five."},
    ],
}


def make_state(clock: FakeClock) -> GatewayState:
    settings = make_settings(
        providers=SIM, models=[model("sim", "a"), model("sim", "b"), model("sim", "c")]
    )
    return GatewayState(settings, clock=clock)


def fail(
    state: GatewayState, flow: Flow, exc: UpstreamError, *, after_first_byte: bool = False
) -> None:
    """The current attempt fails as the relay reports it: closed, then learned from."""
    record = flow.attempt_failed(exc)
    retrying = "" if after_first_byte else "; retrying (next candidate)"
    state.record_failure(
        flow, record, kind=exc.kind, key_id=None,
        decision=state.decide(record.model, exc.kind, after_first_byte=after_first_byte),
        reason=exc.describe() + retrying,
    )  # fmt: skip


def detail(state: GatewayState, flow: Flow) -> FlowDetail:
    found = state.find_request(flow.id)
    assert found is not None
    return found


def two_failures_then_a_gappy_stream(state: GatewayState, clock: FakeClock) -> Flow:
    """sim/a and sim/b fail with 5xx; sim/c streams, with a 12 s silence in the middle."""
    flow = state.begin_request(session="s" * 16, requested_model="auto", stream=True, body=BODY)
    for key, took, status, message in [
        ("sim/a", 0.12, 503, "overloaded"),
        ("sim/b", 0.08, 502, "bad gateway"),
    ]:
        state.begin_attempt(flow, model=key, provider="sim")
        clock.advance(took)
        fail(state, flow, Unavailable(message, status=status))
    state.begin_attempt(flow, model="sim/c", provider="sim")
    for n, (delay, chunks) in enumerate([(0.4, 3), (0.1, 5), (12.0, 2), (0.1, 4), (0.1, 1)]):
        clock.advance(delay)
        if n == 0:
            flow.first_byte_seen()
        flow.chunks_relayed(chunks)
    return flow


def the_stream_ends(state: GatewayState, flow: Flow, clock: FakeClock) -> None:
    """sim/c answers in full 1.7 s after its last chunk: 14.4 s for it, 14.6 s in all."""
    clock.advance(1.7)
    flow.tokens_in, flow.tokens_out = 21, 9
    state.record_success(flow, flow.attempt_succeeded(), key_id=None)
    assert state.finish_request(flow)


def test_attempts_show_each_failure_with_routings_decision() -> None:
    clock = FakeClock()
    state = make_state(clock)
    flow = two_failures_then_a_gappy_stream(state, clock)
    live = attempts_text(detail(state, flow)).plain.splitlines()
    assert live[0] == "#1  sim/a (sim)  HTTP 503  5xx: overloaded  0.12 s  first byte –"
    assert live[1] == (
        "    → sim/a failed (503 5xx: overloaded; retrying (next candidate)); cooling 15 s"
    )
    assert live[2].startswith("#2  sim/b (sim)  HTTP 502  5xx: bad gateway")
    assert live[3].startswith("    → sim/b failed (502 5xx: bad gateway")
    assert live[4] == "#3  sim/c (sim)  streaming"  # the attempt under way, last
    assert live[5:] == ["trail  sim/a:5xx, sim/b:5xx, sim/c:streaming"]
    assert "status streaming (attempt 3)" in header_text(detail(state, flow), now=clock()).plain

    the_stream_ends(state, flow, clock)
    done = detail(state, flow)
    lines = attempts_text(done).plain.splitlines()
    assert lines[:4] == live[:4]  # the closed attempts and routing's decisions stay as they were
    assert lines[4:] == [
        "#3  sim/c (sim)  HTTP 200  14.40 s  first byte 0.40 s",
        "trail  sim/a:5xx, sim/b:5xx, sim/c:ok",
    ]
    header = header_text(done, now=clock()).plain
    assert "auto → sim/c via sim" in header and "status 200" in header
    assert "total 14.60 s   first byte 0.60 s   tokens 21 in / 9 out" in header
    assert error_text(done) is None


def test_timeline_shows_gaps_and_marks_the_longest_against_the_stall_timeout() -> None:
    clock = FakeClock()
    state = make_state(clock)
    flow = two_failures_then_a_gappy_stream(state, clock)
    live = detail(state, flow)
    assert live.timeline is not None
    rows = batches(live.view.started, live.timeline)
    assert [round(b.gap_s, 2) for b in rows] == [0.6, 0.1, 12.0, 0.1, 0.1]
    lines = timeline_text(live, now=clock(), stall_s=20.0).plain.splitlines()
    assert lines[0] == "15 chunks in 5 batches, first at t+0.60 s, last at t+12.90 s"
    assert lines[1].startswith("t+0 ") and "·" in lines[1]  # the silence shows in the strip
    assert lines[2] == (
        "longest gap 12.00 s before t+12.70 s: approached a stall (60% of the 20 s stall timeout)"
    )
    assert lines[3] == "quiet for 0.00 s now"  # still in flight
    marked = [line for line in lines if line.endswith("◀")]
    assert marked == ["t+  12.70 s  +2    chunks  (gap 12.00 s)  ◀"]
    assert "(first byte)" in lines[4]
    calm = timeline_text(live, now=clock(), stall_s=60.0).plain
    assert "well clear of a stall (20% of the 60 s stall timeout)" in calm

    clock.advance(3.0)
    quiet = timeline_text(detail(state, flow), now=clock(), stall_s=20.0).plain
    assert "quiet for 3.00 s now" in quiet
    the_stream_ends(state, flow, clock)
    done = timeline_text(detail(state, flow), now=clock(), stall_s=20.0).plain
    assert "quiet for" not in done and done.splitlines()[0] == lines[0]


def test_a_long_timeline_lists_its_ends_and_its_big_gaps_not_every_batch() -> None:
    clock = FakeClock()
    state = make_state(clock)
    flow = state.begin_request(session="s", requested_model="auto", stream=True)
    state.begin_attempt(flow, model="sim/a", provider="sim")
    for n in range(1000):
        clock.advance(25.0 if n == 500 else 0.05)
        flow.chunks_relayed(1)
    lines = timeline_text(detail(state, flow), now=clock(), stall_s=20.0).plain.splitlines()
    assert len(lines) < 100
    assert (
        "longest gap 25.00 s" in lines[2] and "stalled (125% of the 20 s stall timeout)" in lines[2]
    )
    assert [line for line in lines if line.endswith("◀")] == [
        "t+  50.00 s  +1    chunks  (gap 25.00 s)  ◀"
    ]
    assert [line for line in lines if "…" in line] == ["  … 460 batches …", "  … 459 batches …"]


def test_a_huge_body_is_summarised_not_dumped() -> None:
    essay = "word " * 200_000  # one 1 MB line
    messages: list[dict[str, Any]] = [{"role": "user", "content": essay}]
    for n in range(2000):
        messages.append({"role": "assistant" if n % 2 == 0 else "user", "content": "x" * 5000})
    messages.append(
        {"role": "user", "content": [{"type": "text", "text": "look\nhere"}, {"type": "image_url"}]}
    )
    text = messages_text({"messages": messages}).plain
    assert len(text) < 400, text
    lines = text.splitlines()
    assert lines[0] == "2002 messages: 1002 user, 1000 assistant"
    assert lines[1].startswith("first user  word word") and lines[1].endswith("…")
    assert lines[2] == "last (user)  look…"


def test_messages_summary_counts_roles_and_previews_first_lines() -> None:
    assert messages_text(BODY).plain.splitlines() == [
        "2 messages: 1 system, 1 user",
        "first user  Why is the sky blue?…",
        "last (user)  Why is the sky blue?…",
    ]
    assert messages_text(None).plain == "no messages"


def test_curl_round_trips_the_exact_body_through_shell_quoting() -> None:
    body = {"model": "auto", "messages": [{"role": "user", "content": 'it\'s $HOME `id` "q"\né'}]}
    command = as_curl(BASE_URL, body)
    assert "test-key" not in command and "$OPENAI_API_KEY" in command
    argv = [arg for arg in shlex.split(command) if arg != "\n"]  # shlex keeps `\`-newlines
    assert argv[:3] == ["curl", "-N", BASE_URL + "/chat/completions"]
    assert argv[argv.index("-d") + 1] == json.dumps(body, ensure_ascii=False)
    assert json.loads(argv[argv.index("-d") + 1]) == body


def test_curl_command_runs_in_a_real_shell_with_the_key_from_the_environment() -> None:
    body = {"messages": [{"role": "user", "content": "it's $(rm -rf /) \\ ok"}]}
    script = "curl() { printf '%s\\0' \"$@\"; }\n" + as_curl(BASE_URL, body, api_key_env="GW_KEY")
    env = {**os.environ, "GW_KEY": "sk-local"}
    out = subprocess.run(["bash", "-c", script], env=env, capture_output=True, check=True).stdout
    argv = out.decode().split("\0")[:-1]
    assert "Authorization: Bearer sk-local" in argv
    assert json.loads(argv[argv.index("-d") + 1]) == body
    assert "-g" in as_curl("http://[::1]:8400/v1", body).split()


class BrokenLog:
    async def get(self, request_id: str) -> RequestRecord | None:
        raise RuntimeError("database is locked")


class FakeGateway:
    """Just enough of `Gateway` for the screen, with its real `request_detail`."""

    def __init__(
        self,
        state: GatewayState,
        settings: Settings,
        request_log: RequestLog | BrokenLog | None = None,
    ) -> None:
        self.base_url = BASE_URL
        self.state = state
        self.streaming = settings.streaming
        self.request_log = request_log

    request_detail = Gateway.request_detail
    """The gateway's own lookup: the state's memory first, then the request log's row."""


class DetailApp(App[None]):
    """Just enough of `GatewayApp` for the screen: `state` and `gateway`."""

    def __init__(
        self, state: GatewayState, request_log: RequestLog | BrokenLog | None = None
    ) -> None:
        super().__init__()
        self.state = state
        self.gateway = FakeGateway(state, make_settings(providers=SIM), request_log)


def shown(app: App[None], selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def until(pilot: Pilot[None], condition: Callable[[], bool]) -> None:
    for _ in range(60):
        if condition():
            return
        await pilot.pause(0.05)
    assert condition()


async def test_screen_shows_a_request_live_copies_curl_and_goes_back() -> None:
    clock = FakeClock()
    state = make_state(clock)
    flow = two_failures_then_a_gappy_stream(state, clock)
    app = DetailApp(state)
    async with app.run_test(size=(120, 50)) as pilot:
        await app.push_screen(RequestDetailScreen(flow.id))
        await pilot.pause()
        assert isinstance(app.screen, RequestDetailScreen)
        assert "streaming (attempt 3)" in shown(app, "#detail-header")
        assert "first user  Why is the sky blue?…" in shown(app, "#detail-messages")
        assert "#3  sim/c (sim)  streaming" in shown(app, "#detail-attempts")
        assert "approached a stall" in shown(app, "#detail-timeline")
        assert not app.screen.query_one("#detail-error").display

        clock.advance(0.5)  # the stream goes on, then goes quiet and is cut off as stalled
        flow.chunks_relayed(7)
        await until(pilot, lambda: "22 chunks in 6 batches" in shown(app, "#detail-timeline"))
        clock.advance(20.0)
        fail(state, flow, Stalled("no data for 20 s between chunks"), after_first_byte=True)
        flow.fail(200, ErrorKind.STALL, "no data for 20 s between chunks")
        assert state.finish_request(flow)
        await until(pilot, lambda: "status 200" in shown(app, "#detail-header"))
        attempts = shown(app, "#detail-attempts")
        assert "→ sim/b failed" in attempts and "streaming" not in attempts
        assert "→ sim/c failed (stall: no data for 20 s between chunks)" in attempts
        assert shown(app, "#detail-error") == "HTTP 200  stall: no data for 20 s between chunks"
        assert app.screen.query_one("#detail-error").display

        await pilot.press("c")
        assert app.clipboard == as_curl(BASE_URL, BODY)
        await pilot.press("escape")
        assert not isinstance(app.screen, RequestDetailScreen)

        await app.push_screen(RequestDetailScreen(flow.id))  # finished, still in memory
        await pilot.pause()
        assert "status 200" in shown(app, "#detail-header")
        await pilot.press("q")
        assert not isinstance(app.screen, RequestDetailScreen)


def an_earlier_run_logs_a_failed_request(log: RequestLog) -> Flow:
    """A request of an earlier run: sim/a answers 502 and nothing else is tried."""
    clock = FakeClock(1_000.0)
    state = make_state(clock)
    flow = state.begin_request(session="old-session", requested_model="auto", stream=False)
    state.begin_attempt(flow, model="sim/a", provider="sim")
    clock.advance(0.3)
    fail(state, flow, Unavailable("bad", status=502))
    flow.fail(502, ErrorKind.SERVER, "every candidate failed")
    assert state.finish_request(flow)
    log.append(flow)  # not flushed yet: `get` flushes first
    return flow


async def test_screen_loads_an_old_request_from_the_log_in_a_worker(tmp_path: Path) -> None:
    log = RequestLog(tmp_path / "log.db")
    await log.open()
    try:
        old = an_earlier_run_logs_a_failed_request(log)
        state = make_state(FakeClock())  # this run has not seen it
        assert state.find_request(old.id) is None
        app = DetailApp(state, log)
        async with app.run_test(size=(120, 40)) as pilot:
            await app.push_screen(RequestDetailScreen(old.id))
            await until(pilot, lambda: "status 502" in shown(app, "#detail-header"))
            assert "auto → sim/a via sim" in shown(app, "#detail-header")
            attempts = shown(app, "#detail-attempts")
            assert attempts == "#1  sim/a (sim)  HTTP 502  5xx: bad  0.30 s  first byte –"
            assert shown(app, "#detail-error") == "HTTP 502  5xx: every candidate failed"
            assert "from the request log" in shown(app, "#detail-messages")
            assert not app.screen.query_one("#detail-timeline").display
            assert app.screen.check_action("copy_curl", ()) is None  # no body kept
            await pilot.press("c")
            assert app.clipboard == ""

            await pilot.press("escape")
            await app.push_screen(RequestDetailScreen("feedfacecafe"))
            await until(pilot, lambda: "not found" in shown(app, "#detail-header"))
    finally:
        await log.close()


async def test_a_log_that_fails_to_load_is_reported_on_the_screen() -> None:
    app = DetailApp(make_state(FakeClock()), BrokenLog())
    async with app.run_test(size=(120, 40)) as pilot:
        await app.push_screen(RequestDetailScreen("0123456789ab"))
        await until(pilot, lambda: "could not load" in shown(app, "#detail-header"))
        assert "database is locked" in shown(app, "#detail-header")
        assert isinstance(app.screen, RequestDetailScreen)  # still there: escape goes back


async def test_request_log_get_reads_one_request_with_its_attempts(tmp_path: Path) -> None:
    log = RequestLog(tmp_path / "log.db")
    await log.open()
    try:
        clock = FakeClock()
        state = make_state(clock)
        flow = two_failures_then_a_gappy_stream(state, clock)
        the_stream_ends(state, flow, clock)
        log.append(flow)
        row = await log.get(flow.id)
        assert row == RequestRecord(
            id=flow.id, started=flow.started, session="s" * 16, requested_model="auto",
            streamed=True, status=200, latency_ms=14_600.0, provider="sim", model="sim/c",
            ttfb_ms=600.0, tokens_in=21, tokens_out=9, attempts=tuple(flow.attempts),
        )  # fmt: skip
        assert [(a.model, a.status, a.error) for a in row.attempts] == [
            ("sim/a", 503, "overloaded"), ("sim/b", 502, "bad gateway"), ("sim/c", 200, None),
        ]  # fmt: skip
        # What the log kept shows the same attempts; only routing's decisions stay in memory.
        from_log = attempts_text(detail_of_row(row)).plain.splitlines()
        in_memory = attempts_text(detail(state, flow)).plain.splitlines()
        assert from_log == [line for line in in_memory if "→" not in line]
        assert await log.get("missing") is None
    finally:
        await log.close()


def test_a_race_shows_both_attempts_under_way_then_who_was_hedged() -> None:
    clock = FakeClock()
    state = make_state(clock)
    flow = state.begin_request(session="s" * 16, requested_model="auto", stream=True, body=BODY)
    state.begin_attempt(flow, model="sim/a", provider="sim")
    clock.advance(1.5)
    state.begin_attempt(flow, model="sim/b", provider="sim", hedge=True)
    live = attempts_text(detail(state, flow)).plain.splitlines()
    assert live == ["#1  sim/a (sim)  hedging", "#2  sim/b  racing it to the first byte"]
    clock.advance(0.2)
    flow.hedge_read()
    fail(state, flow, UpstreamError("late, and sim/b sent content first", kind=ErrorKind.OUTRUN))
    state.hedge_won(flow)
    the_stream_ends(state, flow, clock)
    lines = attempts_text(detail(state, flow)).plain.splitlines()
    assert lines[0] == (
        "#1  sim/a (sim)  no response  outrun: late, and sim/b sent content first  1.70 s"
        "  first byte –"
    )
    assert lines[2] == "#2  sim/b (sim)  HTTP 200  1.90 s  first byte 0.20 s"


def test_a_racer_closed_after_losing_is_shown_as_hedged() -> None:
    clock = FakeClock()
    state = make_state(clock)
    flow = state.begin_request(session="s" * 16, requested_model="auto", stream=True, body=BODY)
    state.begin_attempt(flow, model="sim/a", provider="sim")
    clock.advance(1.5)
    state.begin_attempt(flow, model="sim/b", provider="sim", hedge=True)
    clock.advance(0.2)
    flow.hedge_failed(UpstreamError("sim/a sent content first", kind=ErrorKind.HEDGED))
    flow.decisions.append("sim/b: hedged (sim/a sent content first)")
    flow.first_byte_seen()
    the_stream_ends(state, flow, clock)
    lines = attempts_text(detail(state, flow)).plain.splitlines()
    assert lines[0] == "#1  sim/a (sim)  HTTP 200  3.40 s  first byte 1.70 s"
    assert lines[1] == (
        "#2  sim/b (sim)  no response  hedged: sim/a sent content first  0.20 s  first byte –"
    )
