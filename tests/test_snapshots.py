"""What the user sees, pinned as SVG snapshots: the main screen and one request's detail.

Deterministic by construction: a fake clock, seeded ids and draws, simulated providers, a fixed
URL and key, UTC for the clock times, and the app in `live=False` mode (no server, no timers).
Update after an intended change with `pytest tests/test_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.factories import FakeClock, make_settings, model
from tui_gateway.domain.errors import ErrorKind, Stalled
from tui_gateway.domain.posteriors import Outcome
from tui_gateway.domain.state import GatewayState
from tui_gateway.server import Gateway, bind_socket
from tui_gateway.tui.app import GatewayApp
from tui_gateway.tui.screens import RequestDetailScreen
from tui_gateway.tui.widgets import PosteriorsPane

NOW = 1_800_000_000.0
SIZE = (120, 36)


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    """The listening sockets the (never started) gateways took, closed at teardown."""
    taken: list[socket.socket] = []
    yield taken
    for sock in taken:
        sock.close()


def build(
    tmp_path: Path, sockets: list[socket.socket]
) -> tuple[GatewayApp, GatewayState, dict[str, str]]:
    providers = [
        {"name": "swift", "kind": "simulated"},
        {"name": "flaky", "kind": "simulated", "protection": "provider-ban"},
        {"name": "sage", "kind": "simulated"},
    ]
    models = [
        model("swift", "mini", "fast"),
        model("flaky", "flash", "fast"),
        model("swift", "13b"),
        model("flaky", "70b"),
        model("sage", "large", "smart", intelligence=9, continuation="none"),
    ]
    settings = make_settings(providers=providers, models=models)
    clock = FakeClock(NOW)
    state = GatewayState(settings, clock=clock, rng=random.Random(1), ids=random.Random(2))
    sockets.append(bind_socket("127.0.0.1", 0))
    gateway = Gateway(
        settings, api_key="tgw-snapshot-key-0000", db_path=tmp_path / "s.db", sock=sockets[-1]
    )
    gateway.state, gateway.port = state, 4141
    app = GatewayApp(gateway, live=False)
    ids = populate(state, clock)
    return app, state, ids


def populate(state: GatewayState, clock: FakeClock) -> dict[str, str]:
    """A moment in a busy afternoon: streams, a stall, a fallback, bans, cooldowns, history."""
    for _ in range(12):
        state.book.record(Outcome("swift/13b", NOW - 3600, True, 300.0, 80.0))
        state.book.record(Outcome("sage/large", NOW - 7200, True, 1200.0, 30.0))
    for _ in range(6):
        state.book.record(Outcome("flaky/70b", NOW - 600, False))
    for _ in range(10):  # what the stream timers learned: swift is quick, sage/large thinks
        state.timers.observe("swift/mini", first_byte_s=0.25, max_gap_s=0.05)
        state.timers.observe("swift/13b", first_byte_s=0.3, max_gap_s=0.4)
        state.timers.observe("sage/large", first_byte_s=1.2, max_gap_s=0.9)
    state.refuse_prefill("flaky/70b", "400: assistant prefill is not supported")
    body = {
        "model": "auto",
        "stream": True,
        "messages": [{"role": "user", "content": "Why does my parser hang?"}],
    }

    def begin(session: str, key: str, started_ago: float) -> Any:
        clock.now = NOW - started_ago
        state.sessions.open(session, mode="auto", preview="Why does my parser hang?", now=clock.now)
        request = state.begin_request(
            session=session, requested_model="auto", stream=True, body=body
        )
        state.begin_attempt(request, model=key, provider=key.split("/")[0])
        return request

    done = begin("s-done", "flaky/70b", 20.0)
    clock.now = NOW - 16
    stalled = done.attempt_failed(Stalled("no data for 20 s", kind=ErrorKind.STALL))
    state.record_failure(
        done, stalled, key_id="flaky#1", kind=ErrorKind.STALL,
        decision=state.decide("flaky/70b", ErrorKind.STALL, after_first_byte=False),
        reason="no data for 20 s between chunks",
    )  # fmt: skip
    state.begin_attempt(done, model="swift/13b", provider="swift")
    clock.now = NOW - 15.9
    done.first_byte_seen()
    for step in range(6):
        clock.now = NOW - 16 + step * 0.4
        done.upstream_read()
        done.chunks_relayed(8)
    clock.now = NOW - 12
    done.tokens_in, done.tokens_out = 12, 48
    done.attempt_succeeded()
    state.finish_request(done)
    state.sessions.pin("s-done", "swift/13b", "swift#1", NOW - 12)

    streaming = begin("s-live", "sage/large", 4.0)
    streaming.expect(limit_s=2.7, usual_s=0.9)  # its learned stall limit, and its usual gap
    for step in range(5):
        clock.now = NOW - 2.8 + step * 0.5
        streaming.chunks_relayed(5)
    stalling = begin("s-stall", "flaky/flash", 12.0)
    state.cooldowns.record_failure(
        model="flaky/70b", provider="flaky", kind="5xx", key_id="flaky#1", now=NOW - 5
    )
    state.ban_model("flaky/flash")
    clock.now = NOW
    return {"done": done.id, "streaming": streaming.id, "stalling": stalling.id}


def test_main_screen(snap_compare: Any, tmp_path: Path, sockets: list[socket.socket]) -> None:
    app, _, _ = build(tmp_path, sockets)
    assert snap_compare(app, terminal_size=SIZE)


def test_main_screen_at_100_by_30(
    snap_compare: Any, tmp_path: Path, sockets: list[socket.socket]
) -> None:
    app, _, _ = build(tmp_path, sockets)
    assert snap_compare(app, terminal_size=(100, 30))


def test_posteriors_timers_at_100_by_30(
    snap_compare: Any, tmp_path: Path, sockets: list[socket.socket]
) -> None:
    """The posteriors pane's second view (`v`): each model's learned first byte and gap."""
    app, _, _ = build(tmp_path, sockets)

    async def show_timers(pilot: Any) -> None:
        pilot.app.query_one(PosteriorsPane).focus()
        await pilot.press("v")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(100, 30), run_before=show_timers)


def test_request_detail_screen(
    snap_compare: Any, tmp_path: Path, sockets: list[socket.socket]
) -> None:
    app, _, ids = build(tmp_path, sockets)

    async def open_detail(pilot: Any) -> None:
        await pilot.app.push_screen(RequestDetailScreen(ids["done"]))
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=open_detail)


def _analytics_log(path: Path) -> None:
    """A day of a small log, fixed: two providers, a fallback, a continuation, a few errors."""
    import sqlite3

    from tui_gateway.store.schema import sql_migrations

    db = sqlite3.connect(path)
    db.executescript(sql_migrations())
    rows, attempts = [], []
    for n in range(240):
        started = NOW - 86_000 + n * 358.0
        failed = n % 9 == 0
        provider, name = ("swift", "swift/13b") if n % 3 else ("sage", "sage/large")
        latency = 400.0 + (n % 7) * 150.0
        rows.append(
            (
                f"r{n}",
                started,
                f"s{n % 5}",
                "auto",
                provider,
                name,
                502 if failed else 200,
                "5xx" if failed else None,
                None,
                latency,
                120.0 + n % 5 * 20,
                30 + n % 4,
                0 if failed else 60 + n % 6,
                1,
                "chat",
            )
        )
        if n % 20 == 0:  # a fallback: the first attempt stalled
            attempts.append(
                (
                    f"r{n}",
                    1,
                    "flaky",
                    "flaky/70b",
                    started,
                    None,
                    "stall",
                    "quiet",
                    100.0,
                    None,
                    None,
                )
            )
            attempts.append(
                (
                    f"r{n}",
                    2,
                    provider,
                    name,
                    started + 0.1,
                    502 if failed else 200,
                    "5xx" if failed else None,
                    None,
                    latency,
                    120.0,
                    5 if n % 40 == 0 else None,
                )
            )
        else:
            attempts.append(
                (
                    f"r{n}",
                    1,
                    provider,
                    name,
                    started,
                    502 if failed else 200,
                    "5xx" if failed else None,
                    None,
                    latency,
                    120.0,
                    None,
                )
            )
    db.executemany(
        "INSERT INTO requests (id, started, session, requested_model, provider, model, status,"
        " error_kind, error, latency_ms, ttfb_ms, tokens_in, tokens_out, streamed, dialect)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows,
    )  # fmt: skip
    db.executemany(
        "INSERT INTO attempts (request_id, attempt, provider, model, started, status,"
        " error_kind, error, latency_ms, ttfb_ms, text_from) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        attempts,
    )  # fmt: skip
    db.commit()
    db.close()


def test_analytics_at_100_by_30(
    snap_compare: Any, tmp_path: Path, sockets: list[socket.socket]
) -> None:
    import asyncio

    import aiosqlite

    from tui_gateway.store.analytics import analytics
    from tui_gateway.tui.screens.analytics import AnalyticsScreen

    _analytics_log(tmp_path / "a.db")

    async def figures() -> Any:
        async with aiosqlite.connect(tmp_path / "a.db") as db:
            return await analytics(db, range_name="24h", now=NOW)

    shown = asyncio.run(figures())
    app, _, _ = build(tmp_path, sockets)

    async def open_it(pilot: Any) -> None:
        await pilot.app.push_screen(AnalyticsScreen(figures=shown))
        await pilot.pause()

    assert snap_compare(app, terminal_size=(100, 30), run_before=open_it)
