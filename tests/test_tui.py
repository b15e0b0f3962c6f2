"""The Textual app and the proxy in one event loop: what the screen shows as requests flow."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from openai import AsyncOpenAI
from textual.pilot import Pilot
from textual.widgets import RichLog

from tests.factories import API_KEY, make_settings, model
from tui_gateway.server import Gateway, bind_socket
from tui_gateway.tui.app import GatewayApp
from tui_gateway.tui.widgets import RequestsPane, StatusBar
from tui_gateway.tui.widgets.requests import LINGER_S

SIM = [{"name": "sim", "kind": "simulated"}]


async def until(pilot: Pilot[None], condition: Callable[[], bool], *, seconds: float = 3.0) -> None:
    """Let the app repaint until `condition` holds (bounded: a failing test still ends)."""
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    assert condition()


class ScreenClock:
    """The screen's clock: the state's (real time: the proxy runs for real) until a test sets it."""

    def __init__(self, follow: Callable[[], float]) -> None:
        self.follow = follow
        self.at: float | None = None

    def __call__(self) -> float:
        return self.follow() if self.at is None else self.at


def make_gateway(tmp_path: Path, *, demo: bool = False, **simulate: float) -> Gateway:
    behaviour = {"first_token_ms": 0, "tokens_per_s": 50, "reply_tokens": 40, **simulate}
    settings = make_settings(providers=SIM, models=[model("sim", "steady", simulate=behaviour)])
    return Gateway(
        settings,
        api_key=API_KEY,
        db_path=tmp_path / "tui.db",
        sock=bind_socket("127.0.0.1", 0),
        demo=demo,
    )


async def test_screen_shows_a_streaming_request_while_it_runs_and_logs_it_after(
    tmp_path: Path,
) -> None:
    gateway = make_gateway(tmp_path)
    clock = ScreenClock(gateway.state.clock)
    app = GatewayApp(gateway, clock=clock)
    async with app.run_test(size=(120, 36)) as pilot:
        assert gateway.base_url in str(app.query_one(StatusBar).render())
        async with AsyncOpenAI(base_url=gateway.base_url, api_key=API_KEY) as client:
            stream = await client.chat.completions.create(
                model="auto", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            chunks = stream.__aiter__()
            await chunks.__anext__()  # the answer has started; the rest is still coming
            table = app.query_one(RequestsPane)
            await until(pilot, lambda: len(table.request_ids) == 1)
            row = table.get_row_at(0)
            assert [str(cell) for cell in row[2:7]] == [
                "chat",
                "sim/steady",
                "sim",
                "1",
                "streaming",
            ]
            text = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
            assert text
        # Finished: it lingers with its status for LINGER_S on the screen's clock, then leaves.
        await until(pilot, lambda: str(table.get_row_at(0)[6]) == "200")
        [done] = gateway.state.snapshot(intervals=False).recent
        assert done.finished_at is not None
        clock.at = done.finished_at + LINGER_S - 0.05
        await pilot.pause(0.3)  # a few repaints
        assert len(table.request_ids) == 1 and str(table.get_row_at(0)[6]) == "200"
        clock.at = done.finished_at + LINGER_S + 0.01
        await until(pilot, lambda: table.request_ids == [])
        assert all(str(cell) == "" for cell in table.get_row_at(0))  # a blank slot for the next
        assert "done 1" in str(app.query_one(StatusBar).render())
        clock.at += 5.0  # quiet for a while: the slot goes too
        await until(pilot, lambda: table.row_count == 0)
    assert gateway.state.active == {}


async def test_p_pauses_and_resumes_demo_traffic(tmp_path: Path) -> None:
    gateway = make_gateway(tmp_path, demo=True)
    app = GatewayApp(gateway)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("P")
        assert gateway.state.demo_paused
        await until(pilot, lambda: "demo: paused" in str(app.query_one(StatusBar).render()))
        await pilot.press("P")
        assert not gateway.state.demo_paused


async def test_quitting_stops_the_server_and_flushes_the_log(tmp_path: Path) -> None:
    gateway = make_gateway(tmp_path)
    app = GatewayApp(gateway)
    async with app.run_test(size=(100, 30)) as pilot:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as session:
            async with session.post(
                gateway.base_url + "/chat/completions",
                json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
            ) as resp:
                assert resp.status == 200
        await pilot.press("q")
    assert gateway.base_url.endswith(f":{gateway.port}/v1")  # still known after the socket closed
    import sqlite3

    with sqlite3.connect(tmp_path / "tui.db") as db:
        assert db.execute("SELECT count(*) FROM requests").fetchone() == (1,)


async def test_fallbacks_reach_the_event_log_and_plain_successes_do_not(tmp_path: Path) -> None:
    settings = make_settings(
        providers=SIM,
        models=[
            model("sim", "broken", simulate={"first_token_ms": 0, "error_rate": 1.0}),
            model("sim", "steady", simulate={"first_token_ms": 0, "tokens_per_s": 5000}),
        ],
    )
    gateway = Gateway(
        settings, api_key=API_KEY, db_path=tmp_path / "t.db", sock=bind_socket("127.0.0.1", 0)
    )
    app = GatewayApp(gateway)
    async with app.run_test(size=(120, 36)) as pilot:
        async with AsyncOpenAI(base_url=gateway.base_url, api_key=API_KEY, max_retries=0) as client:
            await client.chat.completions.create(
                model="sim/steady", messages=[{"role": "user", "content": "a"}]
            )
            await client.chat.completions.create(
                model="auto", messages=[{"role": "user", "content": "b"}]
            )
        log = app.query_one("#events", RichLog)
        await until(pilot, lambda: len(log.lines) >= 2)
        lines = [line.text for line in log.lines]
        assert any("sim/broken failed (503 5xx" in line for line in lines), lines
        assert any(line.endswith("200 via sim/steady after 2 attempts") for line in lines), lines
        assert len(lines) == 2, lines  # the plain success of "a" made no line


async def test_a_warning_logged_anywhere_in_the_process_reaches_the_event_log(
    tmp_path: Path,
) -> None:
    """Textual captures stderr: a warning from logging (a cluster change skipped, an unhandled
    error) was seen nowhere. Now it is a line, with the exception's last line."""
    app = GatewayApp(make_gateway(tmp_path))
    async with app.run_test(size=(120, 36)) as pilot:
        logger = logging.getLogger("tui_gateway.cluster")
        logger.warning("cluster: change to controls all skipped")
        try:
            raise KeyError("picture")
        except KeyError:
            logger.exception("unhandled error in POST /v1/chat/completions")
        logger.info("not a line: below a warning")
        log = app.query_one("#events", RichLog)
        await until(pilot, lambda: len(log.lines) >= 2)
        lines = [line.text for line in log.lines]
        assert lines[0].endswith("warning: cluster: change to controls all skipped"), lines
        assert lines[1].endswith(
            "error: unhandled error in POST /v1/chat/completions (KeyError: 'picture')"
        ), lines
        assert len(lines) == 2, lines


async def test_slash_filters_requests_and_escape_clears(tmp_path: Path) -> None:
    gateway = make_gateway(tmp_path, tokens_per_s=20)
    app = GatewayApp(gateway)
    async with app.run_test(size=(120, 36)) as pilot:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as session:
            async with session.post(
                gateway.base_url + "/chat/completions",
                json={
                    "model": "auto",
                    "stream": True,
                    "messages": [{"role": "user", "content": "x"}],
                },
            ) as resp:
                await resp.content.readline()
                table = app.query_one(RequestsPane)
                await until(pilot, lambda: len(table.request_ids) == 1)
                await pilot.press("slash", *"nomatch")
                await until(pilot, lambda: table.request_ids == [])
                await pilot.press("escape")
                await until(pilot, lambda: len(table.request_ids) == 1)
                assert table.has_focus


async def test_t_switches_theme_and_e_copies_the_client_env(tmp_path: Path) -> None:
    app = GatewayApp(make_gateway(tmp_path))
    async with app.run_test(size=(100, 30)) as pilot:
        assert app.theme == "gateway-dark"
        await pilot.press("t")
        assert app.theme == "gateway-light"
        await pilot.press("e")
        assert app.clipboard == "\n".join(app.gateway.client_env()) + "\n"
        assert app.clipboard.startswith("OPENAI_BASE_URL=http://127.0.0.1:")


@pytest.mark.parametrize(
    ("requested", "started", "warned"),
    [("no-such-theme", "gateway-dark", True), ("textual-light", "textual-light", False)],
)
async def test_the_theme_flag_picks_a_theme_and_an_unknown_one_falls_back_with_a_warning(
    tmp_path: Path, requested: str, started: str, warned: bool
) -> None:
    app = GatewayApp(make_gateway(tmp_path), theme=requested)
    async with app.run_test(size=(100, 30)):
        assert app.theme == started
        assert [requested in p for p in app.theme_problems] == ([True] if warned else [])


async def test_question_mark_shows_every_key_of_the_screen(tmp_path: Path) -> None:
    from tui_gateway.tui.help import HelpScreen, collect_help

    app = GatewayApp(make_gateway(tmp_path))
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        owners = collect_help(app.screen_stack[0])
        listed = {k.action for owner in owners for k in owner.keys}
        for wanted in (
            "move(-1)",
            "ban_model",
            "ban_provider",
            "cycle_protection",
            "clear",
            "open",
            "quit",
            "skip",
            "quietest",
            "toggle_timers",
        ):
            assert any(action.startswith(wanted) for action in listed), (wanted, listed)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


def test_every_binding_resolves_to_an_action() -> None:
    """mitmproxy-style: a key bound to a missing action would fail silently at run time."""
    from textual.binding import Binding

    from tui_gateway.tui.help import HelpScreen
    from tui_gateway.tui.screens import RequestDetailScreen
    from tui_gateway.tui.widgets import (
        ConfirmScreen,
        CooldownsPane,
        PoolsPane,
        PosteriorsPane,
        SessionsPane,
    )

    owners = [GatewayApp, RequestsPane, PoolsPane, SessionsPane, CooldownsPane, PosteriorsPane,
              RequestDetailScreen, HelpScreen, ConfirmScreen]  # fmt: skip
    for owner in owners:
        for binding in owner.BINDINGS:
            assert isinstance(binding, Binding)
            action = binding.action.split("(")[0].removeprefix("app.").removeprefix("screen.")
            target = GatewayApp if binding.action.startswith("app.") else owner
            assert hasattr(target, f"action_{action}"), (
                f"{owner.__name__}: {binding.key} -> {action}"
            )


async def test_a_ban_from_the_pools_pane_survives_a_restart(tmp_path: Path) -> None:
    from tui_gateway.tui.widgets import PoolsPane

    gateway = make_gateway(tmp_path)
    app = GatewayApp(gateway)
    async with app.run_test(size=(120, 36)) as pilot:
        pools = app.query_one(PoolsPane)
        pools.focus()
        await until(pilot, lambda: pools.row_count > 0)
        await pilot.press("b")
        assert gateway.state.controls.banned_models == {"sim/steady"}
    again = make_gateway(tmp_path)
    await again.start()
    try:
        assert again.state.controls.banned_models == {"sim/steady"}
        assert not again.state.is_usable("sim/steady")
    finally:
        await again.stop()


async def test_the_main_screen_keeps_repainting_under_a_detail_screen(tmp_path: Path) -> None:
    """Repaints look up the main screen's panes, not whatever screen is on top."""
    from tui_gateway.tui.screens import RequestDetailScreen

    gateway = make_gateway(tmp_path, tokens_per_s=5000)
    app = GatewayApp(gateway)
    async with app.run_test(size=(120, 36)) as pilot:
        async with AsyncOpenAI(base_url=gateway.base_url, api_key=API_KEY, max_retries=0) as client:
            await client.chat.completions.create(
                model="auto", messages=[{"role": "user", "content": "a"}]
            )
            table = app.query_one(RequestsPane)
            await until(pilot, lambda: len(table.request_ids) == 1)
            await pilot.press("enter")
            assert isinstance(app.screen, RequestDetailScreen)
            await client.chat.completions.create(
                model="auto", messages=[{"role": "user", "content": "b"}]
            )
            status = app.screen_stack[0].query_one(StatusBar)
            await until(pilot, lambda: "done 2" in str(status.render()))
        await pilot.press("escape")
        assert not isinstance(app.screen, RequestDetailScreen)
