"""The analytics screen (issue 14): `a` opens it over the gateway's own log; `1`-`4` pick the range,
`v` the table; an attached screen reads the same figures from `GET /gateway/stats`."""

from __future__ import annotations

from pathlib import Path

import openai
from aiohttp.test_utils import TestServer
from textual.widgets import DataTable, Static

from tests.factories import API_KEY, make_settings, model, start_gateway
from tests.logged import logged
from tests.test_tui import until
from tui_gateway.config import Settings
from tui_gateway.remote.gateway import RemoteGateway
from tui_gateway.server import Gateway, bind_socket
from tui_gateway.tui.app import GatewayApp
from tui_gateway.tui.screens.analytics import AnalyticsScreen


def settings(mock_url: str) -> Settings:
    models = [model("mock", "error-500"), model("mock", "ok:chunks=3")]
    return make_settings(mock_url, models)


async def ask(gateway: Gateway, n: int) -> None:
    async with openai.AsyncOpenAI(base_url=gateway.base_url, api_key=API_KEY, max_retries=0) as sdk:
        for i in range(n):
            await sdk.chat.completions.create(
                model="auto", messages=[{"role": "user", "content": f"question {i}"}]
            )


def table_rows(screen: AnalyticsScreen) -> list[list[str]]:
    table = screen.query_one(DataTable)
    return [[str(cell) for cell in table.get_row_at(n)] for n in range(table.row_count)]


async def test_a_opens_the_logs_figures_and_the_keys_change_range_and_table(
    tmp_path: Path, mock_url: str, mock_upstream: TestServer
) -> None:
    gateway = Gateway(
        settings(mock_url), api_key=API_KEY, db_path=tmp_path / "a.db",
        sock=bind_socket("127.0.0.1", 0),
    )  # fmt: skip
    app = GatewayApp(gateway)
    async with app.run_test(size=(100, 30)) as pilot:
        await ask(gateway, 4)
        await gateway.request_log.flush()
        await pilot.press("a")
        screen = app.screen
        assert isinstance(screen, AnalyticsScreen)
        summary = screen.query_one("#summary", Static)
        await until(pilot, lambda: "4 requests" in str(summary.render()))
        text = str(summary.render())
        assert text.startswith("last 24 hours") and "100.0% ok" in text
        rows = table_rows(screen)
        assert [row[:3] for row in rows] == [["mock/ok:chunks=3", "4", "100.0"]]
        await pilot.press("v")
        assert [row[0] for row in table_rows(screen)] == ["mock"]
        await pilot.press("1")
        await until(pilot, lambda: str(summary.render()).startswith("last hour"))
        assert "4 requests" in str(summary.render())
        await pilot.press("escape")
        assert not isinstance(app.screen, AnalyticsScreen)


async def test_an_attached_screen_reads_the_figures_from_the_gateway(
    tmp_path: Path, mock_url: str, mock_upstream: TestServer
) -> None:
    gateway = await start_gateway(settings(mock_url), tmp_path / "a.db")
    remote = RemoteGateway(gateway.base_url, API_KEY)
    await remote.start()
    try:
        await ask(gateway, 3)
        await gateway.request_log.flush()
        figures = await remote.analytics("24h")
        rows = await logged(gateway.request_log)
    finally:
        await remote.stop()
        await gateway.stop()
    assert (figures.range, figures.requests, figures.succeeded) == ("24h", 3, 3)
    assert [u.model for u in figures.models] == ["mock/ok:chunks=3"]
    # The first model's 500 (then its cooldown) made a fallback: the provider's errors say so.
    failed = sum(a.error_kind == "5xx" for r in rows for a in r.attempts)
    assert failed >= 1
    assert figures.fallbacks == sum(len(r.attempts) > 1 for r in rows)
    [errors] = figures.errors
    assert (errors.provider, errors.counts["server"], errors.total) == ("mock", failed, failed)
