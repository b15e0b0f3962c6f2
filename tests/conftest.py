from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from hypothesis import settings as hypothesis_settings
from openai import AsyncOpenAI

from scripts.mock_upstream import make_app as make_mock_upstream
from tests.factories import API_KEY, start_gateway
from tests.redis_server import RedisServer
from tui_gateway.config import Settings
from tui_gateway.server import Gateway

# Property tests draw the same examples on every run, so CI cannot fail on a lucky draw.
hypothesis_settings.register_profile("repeatable", derandomize=True, database=None)
hypothesis_settings.load_profile("repeatable")


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the developer's real config, key or database."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


@pytest.fixture(autouse=True)
def _root_log_handlers() -> Iterator[None]:
    """A headless log a test attached and never detached leaves no handler on the root logger
    (it would take the next tests' warnings, on a loop that has closed)."""
    root = logging.getLogger()
    before = list(root.handlers)
    yield
    root.handlers[:] = before


@pytest.fixture
async def mock_upstream() -> AsyncIterator[TestServer]:
    """The fault-scenario upstream from scripts/, on a loopback port."""
    server = TestServer(make_mock_upstream(), host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
def mock_url(mock_upstream: TestServer) -> str:
    return str(mock_upstream.make_url("/v1"))


GatewayFactory = Callable[[Settings], Awaitable[Gateway]]


@pytest.fixture
async def gateway_factory(tmp_path: Path) -> AsyncIterator[GatewayFactory]:
    """Start gateways on port 0; each is stopped (and its log flushed) at teardown."""
    started: list[Gateway] = []

    async def start(settings: Settings) -> Gateway:
        gateway = await start_gateway(settings, tmp_path / f"gateway{len(started)}.db")
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        await gateway.stop()


SdkFactory = Callable[[Gateway], AsyncOpenAI]


@pytest.fixture
async def sdk() -> AsyncIterator[SdkFactory]:
    """Official `openai` async clients pointed at a gateway, closed at teardown."""
    made: list[AsyncOpenAI] = []

    def make(gateway: Gateway) -> AsyncOpenAI:
        client = AsyncOpenAI(base_url=gateway.base_url, api_key=API_KEY, max_retries=0)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A real redis-server on a free port (Debian's `redis-server`; `.ci/run` installs it)."""
    server = RedisServer(tmp_path)
    if server.binary is None:
        pytest.skip("redis-server is not installed (apt-get install -y redis-server)")
    await server.start()
    yield server
    server.kill()
