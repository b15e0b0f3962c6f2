"""`RemoteGateway`: a gateway running elsewhere, as the screen sees it (`tui-gateway attach`).

The app starts and stops it as it would the gateway in its own process; starting it opens the
feed (`feed.py`), which runs until the screen quits, reconnecting whenever the connection drops.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import quote

import aiohttp
import msgspec

from ..asyncio_utils import spawn
from ..config import StreamingSettings
from ..domain.keys import KeyCheck
from ..domain.views import FlowDetail, Snapshot
from ..store.analytics import Analytics
from .api import Api, RemoteError, root_of
from .feed import Feed, Handlers, Hello
from .state import RemoteState


class RemoteGateway:
    """Implements `tui/host.py`'s `GatewayView` for a gateway at `url`."""

    def __init__(self, url: str, api_key: str, *, interval_s: float | None = None) -> None:
        self.root = root_of(url)
        self.api_key = api_key
        self.demo = False
        """From the gateway's hello: whether it is `tui-gateway --demo`."""
        self.streaming = StreamingSettings()
        """The gateway's timeouts, from its hello: the screen colours silences against them."""
        self._interval_s = interval_s
        self._session: aiohttp.ClientSession | None = None
        self._feed: asyncio.Task[None] | None = None
        self._link = "connecting"
        self.state = RemoteState()

    @property
    def base_url(self) -> str:
        return self.root + "/v1"

    def client_env(self) -> list[str]:
        return [f"OPENAI_BASE_URL={self.base_url}", f"OPENAI_API_KEY={self.api_key}"]

    def link(self) -> str:
        return self._link

    async def request_detail(self, request_id: str) -> FlowDetail | None:
        return await self.state.request_detail(request_id)

    async def check_keys(self) -> list[KeyCheck]:
        """`POST /gateway/keys/check`: the gateway checks with its own keys (the secrets never
        leave it); raises RemoteError when it refuses or cannot be reached."""
        if self.state.api is None:
            raise RemoteError("not connected yet")
        answer = await self.state.api.call("POST", "/gateway/keys/check")
        return msgspec.convert(answer["checks"], list[KeyCheck])

    async def analytics(self, range_name: str) -> Analytics:
        """`GET /gateway/stats?range=…`: the figures of the gateway's own log."""
        if self.state.api is None:
            raise RemoteError("not connected yet")
        answer = await self.state.api.call("GET", f"/gateway/stats?range={quote(range_name)}")
        return msgspec.convert(answer, Analytics)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self.state.api = api = Api(self.root, self.api_key, self._session)
        handlers = Handlers(self._hello, self._snapshot, self._line, self._linked)
        self._feed = spawn(Feed(api, handlers, interval_s=self._interval_s).run(), name="feed")

    async def stop(self) -> None:
        feed, self._feed = self._feed, None
        if feed is not None:
            feed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feed
        if self._session is not None:
            await self._session.close()

    def _hello(self, hello: Hello) -> None:
        self.demo = hello.demo
        self.streaming = msgspec.convert(hello.streaming, StreamingSettings)

    def _snapshot(self, snapshot: Snapshot) -> None:
        self.state.received(snapshot)

    def _line(self, at: float, text: str) -> None:
        self.state.line(text)

    def _linked(self, link: str) -> None:
        if link == self._link:
            return  # a line per change, not per retry
        self._link = link
        self.state.line(f"attached to {self.root}" if link == "attached" else f"{link}; retrying")
