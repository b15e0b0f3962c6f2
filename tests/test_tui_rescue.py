"""Rescuing a stall from the screen (issue 11): `!` finds the quietest request, `x` moves it on,
`b`/`B` ban what serves it; the palette and the detail screen do the same.

The first test runs a real gateway against the mock upstream, with timers long enough (30 s)
that only the key moves the request on. The others drive a state on a fake clock, whose requests
in flight have a stand-in for the proxy's mover, in the app without its server (`live=False`,
repainted by hand).
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from openai import AsyncOpenAI

from scripts.mock_upstream import RECEIVED
from tests.factories import API_KEY, FakeClock, make_settings, model
from tests.logged import logged
from tests.test_tui import ScreenClock, until
from tui_gateway.domain.flow import Flow
from tui_gateway.domain.state import GatewayState
from tui_gateway.server import Gateway, bind_socket
from tui_gateway.tui.app import GatewayApp
from tui_gateway.tui.commands import palette_commands
from tui_gateway.tui.screens import RequestDetailScreen
from tui_gateway.tui.screens.detail import attempts_text
from tui_gateway.tui.widgets import PoolsPane, RequestsPane

LONG_TIMERS = {"first_byte_timeout_s": 30, "stall_timeout_s": 30, "heartbeat_interval_s": 15}
STALLING = "mock/stall-after-first:after=2"
HELLO = [{"role": "user", "content": "hi"}]
NOW = 1_800_000_000.0


def stalling(pane: RequestsPane) -> bool:
    return str(pane.get_row_at(0)[6]) == "stalling"


def notes(app: GatewayApp) -> list[str]:
    return [n.message for n in app._notifications]


async def test_bang_then_x_moves_a_stalled_stream_on_and_the_answer_completes(
    tmp_path: Path, mock_url: str, mock_upstream: TestServer
) -> None:
    settings = make_settings(
        mock_url, [model("mock", STALLING[5:]), model("mock", "ok")], streaming=LONG_TIMERS
    )
    sock = bind_socket("127.0.0.1", 0)
    gateway = Gateway(settings, api_key=API_KEY, db_path=tmp_path / "t.db", sock=sock)
    clock = ScreenClock(gateway.state.clock)
    app = GatewayApp(gateway, clock=clock)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = app.query_one(RequestsPane)
        app.query_one(PoolsPane).focus()  # focus elsewhere: `!` brings it back
        async with AsyncOpenAI(base_url=gateway.base_url, api_key=API_KEY, max_retries=0) as sdk:
            stream = await sdk.chat.completions.create(model="auto", messages=HELLO, stream=True)
            chunks = []
            async with asyncio.timeout(10):
                async for chunk in stream:
                    chunks.append(chunk)
                    if len(chunks) != 2:
                        continue
                    # The stalling model's two chunks: it is silent from here on. On the
                    # screen's clock 16 s pass (more than half its 30 s limit, as it has no
                    # history), and the row says so.
                    [flow] = gateway.state.active.values()
                    assert flow.last_chunk_at is not None
                    clock.at = flow.last_chunk_at + 16
                    await until(pilot, lambda: pane.request_ids != [] and stalling(pane))
                    await pilot.press("exclamation_mark")
                    assert pane.has_focus and not pane.follow
                    assert pane.request_id_at_cursor() == flow.id
                    assert notes(app)[-1] == f"{flow.id}: quiet 16.0 s on {STALLING}. x moves it on"
                    await pilot.press("x")
                    assert notes(app)[-1] == f"moved {flow.id} on from {STALLING}"
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "lorem ipsum dolor sit amet consectetur adipiscing elit", "nothing twice"
        assert chunks[-1].choices[0].finish_reason == "stop"
        [row] = await logged(gateway.request_log)
        assert [(a.model, a.error_kind) for a in row.attempts] == [
            (STALLING, "skipped"),
            ("mock/ok", None),
        ]
        # The stalled attempt was closed upstream, not left hanging.
        await until(pilot, lambda: mock_upstream.app[RECEIVED][0].disconnected, seconds=5)
        detail = gateway.state.find_request(row.id)
        assert detail is not None
        # The detail screen reads the skip as the user's, and where the next model took over.
        skipped, decision, finished, trail = attempts_text(detail).plain.splitlines()
        assert trail == f"trail  {STALLING}:skipped, mock/ok:ok"
        assert skipped.startswith(f"#1  {STALLING} (mock)  cut off  moved on by you  ")
        assert "longest gap" in skipped and decision.endswith("moved on by the user")
        assert finished.startswith("#2  mock/ok (mock)  HTTP 200  ")
        assert finished.endswith(f"  continues from char {len('begun begun')}")


# --- on a fake clock --------------------------------------------------------------------------


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    taken: list[socket.socket] = []
    yield taken
    for sock in taken:
        sock.close()


class Rescue:
    """A state on a fake clock in the app without its server; requests with a fake mover."""

    def __init__(self, tmp_path: Path, sockets: list[socket.socket]) -> None:
        settings = make_settings(
            providers=[{"name": "a", "kind": "simulated"}, {"name": "b", "kind": "simulated"}],
            models=[model("a", "1"), model("a", "2"), model("b", "3")],
        )
        self.clock = FakeClock(NOW)
        self.state = GatewayState(
            settings, clock=self.clock, rng=random.Random(1), ids=random.Random(2)
        )
        sockets.append(bind_socket("127.0.0.1", 0))
        gateway = Gateway(settings, api_key=API_KEY, db_path=tmp_path / "r.db", sock=sockets[-1])
        gateway.state = self.state
        self.app = GatewayApp(gateway, live=False)
        self.moved: list[str] = []
        self.waiting = True
        """What a mover answers: True while an attempt is under way to cut."""

    def request(self, key: str, *, started_ago: float, quiet_for: float | None = None) -> Flow:
        """A request in flight on `key`; with `quiet_for`, streaming, its last chunk then."""
        now = self.clock.now
        self.clock.now = now - started_ago
        flow = self.state.begin_request(session=key, requested_model="auto", stream=True)
        self.state.begin_attempt(flow, model=key, provider=key.split("/")[0])
        if quiet_for is not None:
            self.clock.now = now - quiet_for
            flow.chunks_relayed(3)
        self.clock.now = now

        def mover() -> bool:
            self.moved.append(flow.id)
            return self.waiting

        flow.mover = mover
        return flow

    def repaint(self) -> None:
        self.app._refresh()

    @property
    def pane(self) -> RequestsPane:
        return self.app.query_one(RequestsPane)


@pytest.fixture
def rescue(tmp_path: Path, sockets: list[socket.socket]) -> Rescue:
    return Rescue(tmp_path, sockets)


async def test_bang_with_nothing_in_flight_says_so(rescue: Rescue) -> None:
    async with rescue.app.run_test(size=(100, 30)) as pilot:
        await pilot.press("exclamation_mark")
        assert notes(rescue.app) == ["no request in flight"]
        assert rescue.pane.follow


async def test_bang_picks_the_request_silent_longest_and_keeps_it_under_the_cursor(
    rescue: Rescue,
) -> None:
    older = rescue.request("a/1", started_ago=30, quiet_for=1)
    quietest = rescue.request("a/2", started_ago=20, quiet_for=12)
    rescue.request("b/3", started_ago=5)  # no byte yet: quiet for its 5 s
    async with rescue.app.run_test(size=(100, 30)) as pilot:
        pane = rescue.pane
        assert pane.request_id_at_cursor() != quietest.id  # following the newest
        await pilot.press("exclamation_mark")
        assert pane.request_id_at_cursor() == quietest.id and pane.cursor_row == 1
        assert not pane.follow and "follow: off" in str(pane.border_subtitle)
        # Rows move (an older request finishes and leaves, a new one comes): the cursor stays
        # on the same request, so `x` acts on the row the user chose.
        rescue.state.finish_request(older)
        rescue.clock.advance(10)
        rescue.request("a/1", started_ago=0)
        rescue.repaint()
        assert pane.request_ids.index(quietest.id) == 0 == pane.cursor_row
        await pilot.press("x")
        assert rescue.moved == [quietest.id]
        assert notes(rescue.app)[-1] == f"moved {quietest.id} on from a/2"
        await pilot.press("f")
        rescue.repaint()
        assert pane.cursor_row == len(pane.request_ids) - 1  # following the newest again


async def test_x_says_when_a_request_is_between_attempts_or_already_finished(
    rescue: Rescue,
) -> None:
    flow = rescue.request("a/1", started_ago=3)
    rescue.waiting = False
    async with rescue.app.run_test(size=(100, 30)) as pilot:
        await pilot.press("x")
        assert notes(rescue.app)[-1] == f"{flow.id} is between attempts: nothing to cut right now"
        flow.attempt_succeeded()
        rescue.state.finish_request(flow)  # it lingers on screen a moment
        await pilot.press("x")
        assert notes(rescue.app)[-1] == f"{flow.id} already finished"
        assert rescue.moved == [flow.id]  # asked once: a finished request has no mover to ask


async def test_row_keys_are_greyed_out_without_a_request_under_the_cursor(
    rescue: Rescue,
) -> None:
    async with rescue.app.run_test(size=(100, 30)) as pilot:
        pane = rescue.pane
        for action in ("skip", "ban_model", "ban_provider"):
            assert pane.check_action(action, ()) is None
        assert pane.check_action("skip", ("abc",)) is True  # the palette names its request
        await pilot.press("x", "b", "B")
        assert notes(rescue.app) == [] and rescue.state.controls.banned_models == set()
        rescue.request("a/1", started_ago=1)
        rescue.repaint()
        assert pane.check_action("skip", ()) is True


async def test_b_and_shift_b_ban_the_model_and_provider_serving_the_row(rescue: Rescue) -> None:
    flow = rescue.request("a/2", started_ago=8, quiet_for=6)
    async with rescue.app.run_test(size=(100, 30)) as pilot:
        await pilot.press("b")
        assert rescue.state.controls.banned_models == {"a/2"}
        assert rescue.moved == [flow.id]  # the ban moved its request on at once
        assert notes(rescue.app)[-1] == "banned a/2: its request in flight moves on"
        rescue.repaint()
        await pilot.press("b")
        assert notes(rescue.app)[-1] == "a/2 is already banned (the pools pane unbans it)"
        await pilot.press("B")
        assert rescue.state.controls.banned_providers == {"a"}
        assert notes(rescue.app)[-1] == "banned provider a: its request in flight moves on"
        assert rescue.moved == [flow.id, flow.id]


async def test_bang_clears_a_filter_that_hides_the_quietest_request(rescue: Rescue) -> None:
    quiet = rescue.request("a/1", started_ago=9)
    rescue.request("b/3", started_ago=2)
    async with rescue.app.run_test(size=(100, 30)) as pilot:
        await pilot.press("slash", *"b/3", "enter")
        rescue.repaint()
        assert len(rescue.pane.request_ids) == 1
        await pilot.press("exclamation_mark")
        assert rescue.pane.filter_text == ""
        assert rescue.pane.request_id_at_cursor() == quiet.id


async def test_bang_from_the_detail_screen_goes_back_to_the_quietest_row(rescue: Rescue) -> None:
    quiet = rescue.request("a/1", started_ago=9)
    other = rescue.request("b/3", started_ago=2)
    async with rescue.app.run_test(size=(100, 30)) as pilot:
        await rescue.app.push_screen(RequestDetailScreen(other.id))
        await pilot.press("exclamation_mark")
        assert len(rescue.app.screen_stack) == 1
        assert rescue.pane.request_id_at_cursor() == quiet.id


async def test_the_detail_screen_moves_its_request_on_while_it_runs(rescue: Rescue) -> None:
    flow = rescue.request("a/1", started_ago=9, quiet_for=7)
    flow.expect(limit_s=4.0, usual_s=0.5)
    async with rescue.app.run_test(size=(120, 36)) as pilot:
        screen = RequestDetailScreen(flow.id)
        await rescue.app.push_screen(screen)
        await pilot.pause()
        attempts = str(screen.query_one("#detail-attempts").render())
        assert "#1  a/1 (a)  streaming  quiet 7.00 s (usual 0.50 s, allowed 4.00 s)" in attempts
        await pilot.press("x")
        assert rescue.moved == [flow.id]
        assert notes(rescue.app)[-1] == f"moved {flow.id} on from a/1"
        flow.attempt_succeeded()
        rescue.state.finish_request(flow)
        await pilot.pause(0.3)  # the screen's own refresh sees it finished
        assert screen.check_action("skip", ()) is None


async def test_the_palette_moves_on_the_quietest_request_or_one_it_names(rescue: Rescue) -> None:
    quiet = rescue.request("a/1", started_ago=9)
    other = rescue.request("b/3", started_ago=4, quiet_for=2)
    async with rescue.app.run_test(size=(120, 36)) as pilot:
        commands = {c.name: c for c in palette_commands(rescue.app.screen)}
        assert "App: Quietest" in commands and "Requests: Move on" in commands
        named = [n for n in commands if n.startswith("Requests: Move ") and "(" in n]
        assert named == [
            f"Requests: Move {quiet.id} on (a/1, quiet 9.0 s)",
            f"Requests: Move {other.id} on (b/3, quiet 2.0 s)",
        ]
        await commands["Requests: Move the quietest request on"].run()
        await commands[named[1]].run()
        await pilot.pause()
        assert rescue.moved == [quiet.id, other.id]
        assert notes(rescue.app)[-1] == f"moved {other.id} on from b/3"


async def test_help_lists_the_rescue_keys(rescue: Rescue) -> None:
    from tui_gateway.tui.help import HelpScreen

    rescue.request("a/1", started_ago=1)
    async with rescue.app.run_test(size=(120, 36)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(rescue.app.screen, HelpScreen)
        text = rescue.app.screen.markdown
        assert "| `x` | Move on |" in text and "| `!` | Quietest |" in text
        # Kept out of the footer, not out of help: listed before the cursor keys.
        assert "Also: `b` Ban model, `B` Ban provider, `↑` Cursor up" in text
        assert "| `v` | Timers/odds |" in text
