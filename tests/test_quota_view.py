"""Quotas on the screen and in the API (issue 13): `/gateway/state`, the pools pane's quotas
view, the `q` flag, and the request detail naming a model skipped for its quota."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import openai
from aiohttp.test_utils import TestServer

from tests.factories import API_KEY, FakeClock, make_settings, model, start_gateway
from tests.test_tui import until
from tui_gateway.config import Settings
from tui_gateway.domain.views import Snapshot
from tui_gateway.server import Gateway, bind_socket
from tui_gateway.tui.app import GatewayApp
from tui_gateway.tui.screens.detail_text import attempts_text
from tui_gateway.tui.widgets import PoolsPane

LIMITED, SPARE = "ok:chunks=2", "ok:chunks=3"
SECRETS = ["sk-first-secret-aaaa1111", "sk-second-secret-bbbb2222"]


def settings(mock_url: str, *, limits: dict[str, int] | None = None) -> Settings:
    provider = {"name": "mock", "kind": "openai", "base_url": mock_url, "api_keys": SECRETS}
    models = [
        model("mock", LIMITED, limits=limits or {"rpm": 2, "tpd": 100_000}),
        model("mock", SPARE),
    ]
    return make_settings(mock_url, models, providers=[provider])


async def ask(gateway: Gateway, n: int) -> str:
    sdk = openai.AsyncOpenAI(base_url=gateway.base_url, api_key=API_KEY, max_retries=0)
    try:
        reply = await sdk.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": f"question {n}"}]
        )
    finally:
        await sdk.close()
    return reply.model


async def gateway_state(gateway: Gateway) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    url = gateway.base_url.removesuffix("/v1") + "/gateway/state"
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as response:
        assert response.status == 200
        body: dict[str, Any] = await response.json()
    return body


async def test_gateway_state_shows_each_keys_use_and_the_model_at_quota(
    tmp_path: Path, mock_url: str, mock_upstream: TestServer
) -> None:
    clock = FakeClock()
    gateway = await start_gateway(settings(mock_url), tmp_path / "q.db", clock)
    try:
        before = await gateway_state(gateway)
        # Listed before any use: every key of the provider, nothing counted yet.
        assert [(q["key_id"], [w["used"] for w in q["windows"]]) for q in before["quotas"]] == [
            ("mock#1", [0, 0]),
            ("mock#2", [0, 0]),
        ]
        served = [await ask(gateway, n) for n in range(5)]
        after = await gateway_state(gateway)
    finally:
        await gateway.stop()
    assert served == [LIMITED] * 4 + [SPARE]  # 2 a minute on each of the two keys
    quotas = after["quotas"]
    assert [q["masked"] for q in quotas] == ["sk-fir…1111", "sk-sec…2222"]
    assert all(secret not in str(after) for secret in SECRETS), "a secret never leaves"
    for quota in quotas:
        assert quota["model"] == f"mock/{LIMITED}" and quota["blocked"] is True
        rpm, tpd = quota["windows"]
        assert (rpm["name"], rpm["used"], rpm["limit"], rpm["lowered"]) == ("rpm", 2, 2, False)
        assert 0 < rpm["frees_in_s"] <= 60
        assert tpd["name"] == "tpd" and 0 < tpd["used"] < 100_000
    [entry] = [e for e in after["pools"]["balanced"] if e["model"] == f"mock/{LIMITED}"]
    assert entry["at_quota"] is True and entry["cooling"] is False
    # An attached screen reads the same JSON into its Snapshot: the quotas come through.
    decoded = msgspec.json.decode(msgspec.json.encode(after), type=Snapshot)
    assert decoded.quotas[1].windows[0].used == 2


async def test_the_detail_says_which_model_was_skipped_for_its_quota(
    tmp_path: Path, mock_url: str, mock_upstream: TestServer
) -> None:
    gateway = await start_gateway(
        settings(mock_url, limits={"rpm": 1}), tmp_path / "q.db", FakeClock()
    )
    try:
        assert [await ask(gateway, n) for n in range(3)] == [LIMITED, LIMITED, SPARE]
        third = gateway.state.snapshot().recent[-1]
        detail = gateway.state.find_request(third.id)
    finally:
        await gateway.stop()
    assert detail is not None
    text = attempts_text(detail).plain
    assert (
        f"skipped for quota  mock/{LIMITED}: at its quota (rpm 1/1 on mock#1, rpm 1/1 on mock#2)"
        in text
    )
    assert f"#1  mock/{SPARE}" in text


async def test_the_pools_pane_flags_the_model_and_v_shows_the_quotas(
    tmp_path: Path, mock_url: str, mock_upstream: TestServer
) -> None:
    gateway = Gateway(
        settings(mock_url, limits={"rpm": 1}),
        api_key=API_KEY,
        db_path=tmp_path / "tui.db",
        sock=bind_socket("127.0.0.1", 0),
        clock=FakeClock(),
    )
    app = GatewayApp(gateway)
    async with app.run_test(size=(100, 30)) as pilot:
        pools = app.query_one(PoolsPane)
        pools.focus()
        await until(pilot, lambda: pools.row_count > 0)
        for n in range(2):
            await ask(gateway, n)
        limited = f"mock/{LIMITED}"
        flags = pools.get_column_index("flags")
        await until(pilot, lambda: pools.get_row(limited)[flags].plain[2] == "q")
        await pilot.press("v")
        assert pools.quotas_view
        await until(pilot, lambda: pools.row_count == 4)  # per key: its row and its rpm's
        rows = [[cell.plain for cell in pools.get_row_at(n)] for n in range(pools.row_count)]
        assert rows[0][-1] == "mock#1 sk-fir…1111"
        assert rows[1][:2] == ["rpm", "1/1"] and rows[1][-1] == LIMITED
        assert rows[1][3].endswith("s")  # the time until the minute frees up
        assert rows[3][1] == "1/1"
        # The keys act on the row's model: `b` bans the limited model from here.
        pools.move_cursor(row=1)
        await pilot.press("b")
        assert gateway.state.controls.banned_models == {limited}
        await pilot.press("v")
        assert not pools.quotas_view
        await until(pilot, lambda: pools.get_row(limited)[flags].plain[1] == "b")
