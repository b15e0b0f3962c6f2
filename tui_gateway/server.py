"""The gateway's moving parts put together: state, log, web app, listening socket, demo traffic.

Both entry points use it: headless runs it under `asyncio.run`, the TUI starts it from `on_mount`
so the server shares Textual's event loop.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from .asyncio_utils import spawn
from .config import Settings, StreamingSettings
from .domain.keys import KeyCheck
from .domain.state import GatewayState
from .domain.views import FlowDetail
from .net import http_root
from .proxy import wire_errors
from .proxy.admin_keys import check_keys_now
from .proxy.app import make_app
from .proxy.watch import request_detail
from .store import RequestLog
from .store.analytics import Analytics


class BindError(Exception):
    """The listening address could not be taken; the message says what to do."""


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind before anything starts, so the URL is known up front and a busy port fails fast."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise BindError(
                f"port {port} on {host} is already in use;"
                " pass --port N (or --port 0 for any free port)"
            ) from None
        raise BindError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


class Gateway:
    """Owns one run of the gateway: start it, read its URL, stop it cleanly."""

    def __init__(
        self,
        settings: Settings,
        *,
        api_key: str,
        db_path: Path,
        sock: socket.socket,
        demo: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.api_key = api_key
        self.demo = demo
        self.state = GatewayState(settings, clock=clock)  # a test's clock moves quotas' windows
        self.request_log = RequestLog(db_path, on_health=self.state.log_health_changed)
        self.state.watch_log(self.request_log.health)
        self.app = make_app(self.state, settings, self.request_log, api_key=api_key, demo=demo)
        self._sock = sock
        # Read now: the socket is closed by stop(), and the URL is still printed after that.
        self.host: str = sock.getsockname()[0]
        self.port: int = sock.getsockname()[1]
        self._runner: web.AppRunner | None = None
        self._demo_task: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        return http_root(self.host, self.port) + "/v1"

    def client_env(self) -> list[str]:
        return [f"OPENAI_BASE_URL={self.base_url}", f"OPENAI_API_KEY={self.api_key}"]

    @property
    def streaming(self) -> StreamingSettings:
        return self.settings.streaming

    def link(self) -> str | None:
        """In-process: the screen is the gateway's own, there is no connection to lose."""
        return None

    async def request_detail(self, request_id: str) -> FlowDetail | None:
        """A copy of one request: from memory while it is recent, else what the log kept."""
        return await request_detail(self.state, self.request_log, request_id)

    async def check_keys(self) -> list[KeyCheck]:
        return await check_keys_now(self.app)

    async def analytics(self, range_name: str) -> Analytics:
        return await self.request_log.analytics(range_name, now=self.state.clock())

    async def start(self) -> None:
        self._runner = web.AppRunner(
            self.app,
            handle_signals=False,  # the CLI (headless) or Textual (TUI) owns the signals
            # In-flight requests are drained (and cut) by the app's on_shutdown; this is a backstop.
            shutdown_timeout=1.0,
            access_log=None,  # the request log is the access log; stderr belongs to the TUI
        )
        await self._runner.setup()
        wire_errors.install(self._runner)
        await web.SockSite(self._runner, self._sock).start()
        if self.demo:
            from .demo import DemoTraffic

            traffic = DemoTraffic(self.state, self.base_url, self.api_key)
            self._demo_task = spawn(traffic.run(), name="demo-traffic")

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (or cut them), flush the log."""
        demo_task, self._demo_task = self._demo_task, None
        if demo_task is not None:
            demo_task.cancel()
            await asyncio.gather(demo_task, return_exceptions=True)
        runner, self._runner = self._runner, None  # a second stop() finds nothing to do
        if runner is not None:
            await runner.cleanup()
