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
from tui_gateway.domain.active import ActiveRequest
from tui_gateway.domain.errors import ErrorKind
from tui_gateway.domain.records import AttemptRecord, RequestRecord
from tui_gateway.domain.state import GatewayState
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


def fail(state: GatewayState, request: ActiveRequest, key: str, reason: str) -> None:
    decision = state.decide(key, ErrorKind.SERVER, after_first_byte=False)
    state.record_failure(
        request, model=key, key_id=None, started=state.clock(), kind=ErrorKind.SERVER,
        decision=decision, reason=reason,
    )  # fmt: skip


def attempt(n: int, key: str, **extra: Any) -> AttemptRecord:
    return AttemptRecord(attempt=n, provider="sim", model=key, started=0.0, **extra)


def record_for(request: ActiveRequest, **extra: Any) -> RequestRecord:
    fields: dict[str, Any] = {
        "id": request.id, "started": request.started, "session": request.session,
        "requested_model": request.requested_model, "streamed": request.stream, "status": 200,
        "latency_ms": 14_600.0, "provider": "sim", "model": "sim/c", "ttfb_ms": 600.0,
        "tokens_in": 21, "tokens_out": 9,
        "attempts": (
            attempt(1, "sim/a", latency_ms=120.0, status=503, error_kind="5xx", error="HTTP 503: overloaded"),
            attempt(2, "sim/b", latency_ms=80.0, status=502, error_kind="5xx", error="HTTP 502: bad gateway"),
            attempt(3, "sim/c", latency_ms=14_400.0, status=200, ttfb_ms=400.0),
        ),
    }  # fmt: skip
    return RequestRecord(**{**fields, **extra})


def two_failures_then_a_gappy_stream(state: GatewayState, clock: FakeClock) -> ActiveRequest:
    """sim/a and sim/b fail with 5xx; sim/c streams, with a 12 s silence in the middle."""
    request = state.begin_request(session="s" * 16, requested_model="auto", stream=True, body=BODY)
    for key in ("sim/a", "sim/b"):
        state.begin_attempt(request, model=key, provider="sim")
        clock.advance(0.1)
        fail(state, request, key, "HTTP 5xx: boom; retrying (next candidate)")
    state.begin_attempt(request, model="sim/c", provider="sim")
    for delay, chunks in [(0.4, 3), (0.1, 5), (12.0, 2), (0.1, 4), (0.1, 1)]:
        clock.advance(delay)
        state.record_chunks(request, chunks)
    return request


def test_attempts_show_each_failure_with_routings_decision() -> None:
    clock = FakeClock()
    state = make_state(clock)
    request = two_failures_then_a_gappy_stream(state, clock)
    live = attempts_text(request).plain
    assert "#1  failed" in live and "#2  failed" in live
    assert "sim/a failed (HTTP 5xx: boom; retrying (next candidate)); cooling 15 s" in live
    assert "#3  sim/c (sim)  streaming" in live

    state.finish_request(request, record_for(request))
    done = attempts_text(request).plain.splitlines()
    assert done[0] == "#1  sim/a (sim)  HTTP 503  5xx: HTTP 503: overloaded  0.12 s  first byte –"
    assert done[1].startswith("    → sim/a failed (HTTP 5xx: boom") and "cooling 15 s" in done[1]
    assert done[2].startswith("#2  sim/b (sim)  HTTP 502  5xx")
    assert done[3].startswith("    → sim/b failed")
    assert done[4] == "#3  sim/c (sim)  HTTP 200  14.40 s  first byte 0.40 s"
    header = header_text(request, now=clock()).plain
    assert "auto → sim/c via sim" in header and "status 200" in header
    assert "total 14.60 s   first byte 0.60 s   tokens 21 in / 9 out" in header
    assert error_text(request.record) is None


def test_timeline_shows_gaps_and_marks_the_longest_against_the_stall_timeout() -> None:
    clock = FakeClock()
    state = make_state(clock)
    request = two_failures_then_a_gappy_stream(state, clock)
    rows = batches(request.started, request.timeline)
    assert [round(b.gap_s, 2) for b in rows] == [0.6, 0.1, 12.0, 0.1, 0.1]
    lines = timeline_text(request, now=clock(), stall_s=20.0).plain.splitlines()
    assert lines[0] == "15 chunks in 5 batches, first at t+0.60 s, last at t+12.90 s"
    assert lines[1].startswith("t+0 ") and "·" in lines[1]  # the silence shows in the strip
    assert lines[2] == (
        "longest gap 12.00 s before t+12.70 s: approached a stall (60% of the 20 s stall timeout)"
    )
    assert lines[3] == "quiet for 0.00 s now"  # still in flight
    marked = [line for line in lines if line.endswith("◀")]
    assert marked == ["t+  12.70 s  +2    chunks  (gap 12.00 s)  ◀"]
    assert "(first byte)" in lines[4]
    calm = timeline_text(request, now=clock(), stall_s=60.0).plain
    assert "well clear of a stall (20% of the 60 s stall timeout)" in calm


def test_a_long_timeline_lists_its_ends_and_its_big_gaps_not_every_batch() -> None:
    clock = FakeClock()
    state = make_state(clock)
    request = state.begin_request(session="s", requested_model="auto", stream=True)
    state.begin_attempt(request, model="sim/a", provider="sim")
    for n in range(1000):
        clock.advance(25.0 if n == 500 else 0.05)
        state.record_chunks(request, 1)
    lines = timeline_text(request, now=clock(), stall_s=20.0).plain.splitlines()
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
    def __init__(
        self, settings: Settings, request_log: RequestLog | BrokenLog | None = None
    ) -> None:
        self.base_url = BASE_URL
        self.settings = settings
        self.request_log = request_log


class DetailApp(App[None]):
    """Just enough of `GatewayApp` for the screen: `state` and `gateway`."""

    def __init__(self, state: GatewayState, gateway: FakeGateway) -> None:
        super().__init__()
        self.state = state
        self.gateway = gateway


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
    request = two_failures_then_a_gappy_stream(state, clock)
    settings = make_settings(providers=SIM, models=[model("sim", "a")])
    app = DetailApp(state, FakeGateway(settings))
    async with app.run_test(size=(120, 50)) as pilot:
        await app.push_screen(RequestDetailScreen(request.id))
        await pilot.pause()
        assert isinstance(app.screen, RequestDetailScreen)
        assert "streaming (attempt 3)" in shown(app, "#detail-header")
        assert "first user  Why is the sky blue?…" in shown(app, "#detail-messages")
        assert "approached a stall" in shown(app, "#detail-timeline")
        assert not app.screen.query_one("#detail-error").display

        clock.advance(0.5)  # the stream goes on, then ends with an error event
        state.record_chunks(request, 7)
        await until(pilot, lambda: "22 chunks in 6 batches" in shown(app, "#detail-timeline"))
        record = record_for(request, error_kind="stall", error="upstream went quiet")
        state.finish_request(request, record)
        await until(pilot, lambda: "status 200" in shown(app, "#detail-header"))
        assert "→ sim/b failed" in shown(app, "#detail-attempts")
        assert shown(app, "#detail-error") == "HTTP 200  stall: upstream went quiet"

        await pilot.press("c")
        assert app.clipboard == as_curl(BASE_URL, BODY)
        await pilot.press("escape")
        assert not isinstance(app.screen, RequestDetailScreen)

        await app.push_screen(RequestDetailScreen(request.id))
        await pilot.press("q")
        assert not isinstance(app.screen, RequestDetailScreen)


async def test_screen_loads_an_old_request_from_the_log_in_a_worker(tmp_path: Path) -> None:
    state = make_state(FakeClock())
    log = RequestLog(tmp_path / "log.db")
    await log.open()
    try:
        old = RequestRecord(
            id="0123456789ab", started=1_000.0, session="old-session", requested_model="auto",
            streamed=False, status=502, latency_ms=300.0, provider="sim", model="sim/a",
            error_kind="5xx", error="every candidate failed",
            attempts=(attempt(1, "sim/a", latency_ms=300.0, status=502, error_kind="5xx", error="bad"),),
        )  # fmt: skip
        log.append(old)  # not flushed yet: `get` flushes first
        app = DetailApp(state, FakeGateway(make_settings(providers=SIM), log))
        async with app.run_test(size=(120, 40)) as pilot:
            await app.push_screen(RequestDetailScreen(old.id))
            await until(pilot, lambda: "status 502" in shown(app, "#detail-header"))
            assert "#1  sim/a (sim)  HTTP 502  5xx: bad" in shown(app, "#detail-attempts")
            assert shown(app, "#detail-error") == "HTTP 502  5xx: every candidate failed"
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
    app = DetailApp(make_state(FakeClock()), FakeGateway(make_settings(providers=SIM), BrokenLog()))
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
        request = two_failures_then_a_gappy_stream(make_state(clock), clock)
        record = record_for(request)
        log.append(record)
        assert await log.get(record.id) == record
        assert await log.get("missing") is None
    finally:
        await log.close()
