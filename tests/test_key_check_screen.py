"""`K` on the screen (issue 14): check every key now; a key a 401 took out comes back when it
passes, in-process and on a screen attached to a gateway elsewhere."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest
from aiohttp.test_utils import TestServer

from scripts.mock_upstream import REFUSED_KEYS
from scripts.mock_upstream import make_app as make_mock_upstream
from tests.factories import API_KEY, make_settings, model, start_gateway
from tests.test_tui import until
from tui_gateway.config import Settings
from tui_gateway.domain.keys import KeyCheck
from tui_gateway.remote.gateway import RemoteGateway
from tui_gateway.server import Gateway, bind_socket
from tui_gateway.tui.app import GatewayApp
from tui_gateway.tui.key_checks import key_check_summary
from tui_gateway.tui.widgets import PoolsPane

BAD = "sk-revoked-9876543210zyxwvuts"


@pytest.fixture
async def refusing() -> AsyncIterator[TestServer]:
    server = TestServer(make_mock_upstream(rejected_keys=frozenset({BAD})), host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


def settings(upstream: TestServer) -> Settings:
    provider = {"name": "mock", "kind": "openai", "base_url": str(upstream.make_url("/v1")),
                "api_keys": [BAD]}  # fmt: skip
    return make_settings(providers=[provider], models=[model("mock", "ok:text=hi")])


async def ask(gateway: Gateway) -> None:
    async with openai.AsyncOpenAI(base_url=gateway.base_url, api_key=API_KEY, max_retries=0) as sdk:
        await sdk.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "hello"}]
        )


async def test_k_brings_a_refused_key_back_and_says_so(
    tmp_path: Path, refusing: TestServer
) -> None:
    gateway = Gateway(
        settings(refusing), api_key=API_KEY, db_path=tmp_path / "k.db",
        sock=bind_socket("127.0.0.1", 0),
    )  # fmt: skip
    app = GatewayApp(gateway)
    async with app.run_test(size=(100, 30)) as pilot:
        pools = app.query_one(PoolsPane)
        with pytest.raises(openai.APIStatusError):
            await ask(gateway)
        flags = pools.get_column_index("flags")
        await until(pilot, lambda: pools.get_row("mock/ok:text=hi")[flags].plain[1] == "k")
        await pilot.press("K")  # the upstream still refuses it: it stays out
        await until(pilot, lambda: any("1 invalid" in n.message for n in app._notifications))
        del refusing.app[REFUSED_KEYS][BAD]  # the user fixed the key upstream
        await pilot.press("K")
        await until(pilot, lambda: any(n.message == "1 key: 1 ok" for n in app._notifications))
        await until(pilot, lambda: pools.get_row("mock/ok:text=hi")[flags].plain[1] == " ")
        await ask(gateway)


async def test_an_attached_screen_checks_through_the_gateway(
    tmp_path: Path, refusing: TestServer
) -> None:
    gateway = await start_gateway(settings(refusing), tmp_path / "k.db")
    remote = RemoteGateway(gateway.base_url, API_KEY)
    await remote.start()
    try:
        [check] = await remote.check_keys()
    finally:
        await remote.stop()
        await gateway.stop()
    assert (check.key_id, check.status, check.http_status) == ("mock#1", "invalid", 401)
    assert check.masked == "sk-rev…vuts"


def test_the_summary_names_each_failing_key_masked() -> None:
    ok = KeyCheck("a", "a#1", "sk-a…1111", "ok", 200, 12, "")
    bad = KeyCheck("b", "b#1", "sk-b…2222", "invalid", 401, 30, "invalid api key")
    slow = KeyCheck("b", "b#2", "sk-c…3333", "timeout", None, 10_000, "no answer")
    assert key_check_summary([ok]) == ("1 key: 1 ok", False)
    assert key_check_summary([bad, ok, slow]) == (
        "3 keys: 1 ok, 1 invalid, 1 timeout — b#1 sk-b…2222: 401; b#2 sk-c…3333: timeout",
        True,
    )
