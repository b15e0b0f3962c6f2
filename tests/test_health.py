"""Issue 12: `GET /livez` and `GET /readyz` for supervisors (no key, nothing revealed) and the
keyed `GET /gateway/info` that `tui-gateway service status` reads."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import aiohttp
from aiohttp.test_utils import make_mocked_request

from tests.conftest import GatewayFactory
from tests.factories import API_KEY, make_settings, model
from tui_gateway.domain.state import GatewayState
from tui_gateway.proxy.app import make_app
from tui_gateway.proxy.health import readyz
from tui_gateway.server import Gateway
from tui_gateway.store import RequestLog

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def _root(gateway: Gateway) -> str:
    return gateway.base_url.removesuffix("/v1")


async def test_livez_and_readyz_answer_without_a_key_and_say_only_up_and_ready(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok")]))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{_root(gateway)}/livez") as live:
            assert live.status == 200
            assert await live.json() == {"status": "up"}
        async with http.get(f"{_root(gateway)}/readyz") as ready:
            assert ready.status == 200
            assert await ready.json() == {"status": "ready"}
            assert "X-Gateway-Model" not in ready.headers


async def test_readyz_is_503_once_shutdown_has_begun_while_livez_stays_up(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok")]))
    await gateway.app.on_shutdown.send(gateway.app)  # what stop() runs first, before the drain
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{_root(gateway)}/readyz") as ready:
            assert ready.status == 503
            assert await ready.json() == {"status": "stopping"}
        async with http.get(f"{_root(gateway)}/livez") as live:
            assert live.status == 200


async def test_readyz_is_503_before_start_up_has_finished(tmp_path: Path) -> None:
    settings = make_settings("http://127.0.0.1:9/v1", [model("mock", "ok")])
    state = GatewayState(settings)
    app = make_app(state, settings, RequestLog(tmp_path / "log.db"), api_key=API_KEY)
    response = await readyz(make_mocked_request("GET", "/readyz", app=app))
    assert response.status == 503
    assert response.text == '{"status": "starting"}'


async def test_gateway_info_needs_the_key_and_says_version_start_uptime_url_pid(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok")]))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{_root(gateway)}/gateway/info") as refused:
            assert refused.status == 401
        async with http.get(f"{_root(gateway)}/gateway/info", headers=AUTH) as answered:
            assert answered.status == 200
            info = await answered.json()
    assert set(info) == {"version", "started_at", "uptime_s", "base_url", "pid", "demo"}
    assert info["base_url"] == gateway.base_url
    assert info["pid"] == os.getpid()
    assert info["demo"] is False
    assert 0 <= info["uptime_s"] < 60
    started = datetime.fromisoformat(info["started_at"])
    assert abs(datetime.now(started.tzinfo).timestamp() - started.timestamp()) < 60
    assert isinstance(info["version"], str) and info["version"]
