"""A request log that cannot write is visible: `/gateway/state`, the event log and the status line.

Regression tests for issue 8: the store keeps rows while SQLite refuses them, and the user can
see that it is behind or failing instead of finding out from a missing history later.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from openai import OpenAI
from textual.widgets import RichLog

from tests.conftest import GatewayFactory
from tests.factories import API_KEY, gateway_stderr, headless_gateway, make_settings, model
from tests.logged import logged
from tests.test_tui import make_gateway, until
from tui_gateway.cli import _report_unwritten
from tui_gateway.domain.events import Event, LogHealthChanged
from tui_gateway.domain.records import LogHealth
from tui_gateway.server import Gateway
from tui_gateway.tui.app import GatewayApp
from tui_gateway.tui.widgets import StatusBar

AUTH = {"Authorization": f"Bearer {API_KEY}"}
HELLO = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}


async def eventually(condition: Callable[[], Any], *, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    assert condition()


async def state_json(session: aiohttp.ClientSession, gateway: Gateway) -> dict[str, Any]:
    async with session.get(gateway.base_url.removesuffix("/v1") + "/gateway/state") as resp:
        return dict(await resp.json())


async def set_read_only(gateway: Gateway, on: bool) -> None:
    """Tests run as root, where chmod stops no write: SQLite's own switch refuses them instead."""
    await gateway.request_log.db.execute(f"PRAGMA query_only = {'ON' if on else 'OFF'}")


async def test_a_failing_log_shows_in_the_state_and_the_event_log_and_loses_no_row(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok")]))
    events: list[Event] = []
    gateway.state.subscribe(events.append, kinds=[LogHealthChanged])
    await set_read_only(gateway, True)
    async with aiohttp.ClientSession(headers=AUTH) as session:
        for _ in range(3):
            async with session.post(gateway.base_url + "/chat/completions", json=HELLO) as resp:
                assert resp.status == 200  # the client never notices the log's trouble
        await eventually(lambda: gateway.request_log.health().failing)
        log = (await state_json(session, gateway))["log"]
        assert log["failing"] and log["behind"] and log["pending"] == 3
        assert "readonly" in log["last_error"]
        assert "request log cannot write" in events[-1].text
        await set_read_only(gateway, False)
        await eventually(lambda: not gateway.request_log.health().failing)  # the writer retries
        log = (await state_json(session, gateway))["log"]
    assert log == log | {"failing": False, "pending": 0, "written": 3, "dropped": 0}
    assert events[-1].text == "request log writing again"
    assert len(await logged(gateway.request_log, 10)) == 3


async def test_the_status_line_says_when_the_log_is_failing(tmp_path: Path) -> None:
    gateway = make_gateway(tmp_path)
    app = GatewayApp(gateway)
    async with app.run_test(size=(120, 36)) as pilot:
        status = app.query_one(StatusBar)
        assert "log" not in str(status.render()).split("err")[1]
        await set_read_only(gateway, True)
        async with aiohttp.ClientSession(headers=AUTH) as session:
            async with session.post(gateway.base_url + "/chat/completions", json=HELLO) as resp:
                assert resp.status == 200
        await until(pilot, lambda: "log failing: attempt to write a readonly database (1 waiting)"
                    in str(status.render()), seconds=5)  # fmt: skip
        events = app.query_one("#events", RichLog)
        await until(pilot, lambda: any("request log cannot write" in str(line.text)
                                       for line in events.lines))  # fmt: skip
        await set_read_only(gateway, False)
        await until(pilot, lambda: "log failing" not in str(status.render()), seconds=5)


@pytest.mark.parametrize("pending", [0, 5])
def test_rows_the_log_could_not_write_at_exit_are_reported(
    pending: int, capsys: pytest.CaptureFixture[str]
) -> None:
    _report_unwritten(LogHealth(pending=pending, last_error="database is locked"))
    err = capsys.readouterr().err
    expected = "tui-gateway: 5 request log rows could not be written (database is locked)"
    assert (expected in err) == bool(pending)


def test_sigterm_exits_promptly_while_the_database_is_locked_and_says_what_was_lost(
    tmp_path: Path,
) -> None:
    """Shutdown is bounded: a database another process holds locked cannot keep it running."""
    with headless_gateway(tmp_path) as (proc, url, db):
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # every write of the gateway now waits on this lock
        try:
            with OpenAI(base_url=url, api_key="cli-key", max_retries=0) as client:
                for _ in range(3):
                    client.chat.completions.create(
                        model="auto", messages=[{"role": "user", "content": "hi"}]
                    )
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
            assert time.monotonic() - started < 10  # the grace period is not needed: none in flight
            assert "3 request log rows could not be written" in gateway_stderr(tmp_path)
        finally:
            holder.close()
