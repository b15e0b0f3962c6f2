"""`GET /gateway/events` read on and on: each `hello`, `snapshot` and `line` to its handler.

When the connection drops (the gateway restarts, the network goes), the feed says so through
`on_link`, waits a little longer each time (up to `RETRY_MAX_S`), and connects again; the screen
keeps the last picture meanwhile. A snapshot is a whole state, so nothing is lost by a gap but
the event-log lines sent during it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec

from ..domain.views import Snapshot
from .api import Api, RemoteError, refusal, unreachable

RETRY_FIRST_S = 0.5
RETRY_MAX_S = 5.0
SILENCE_S = 15.0
"""No byte for this long (snapshots come 4 times a second): the connection is dead, reconnect."""
_decode_snapshot = msgspec.json.Decoder(Snapshot).decode


@dataclass(frozen=True, slots=True)
class Hello:
    """What the gateway says of itself when a screen attaches."""

    demo: bool
    streaming: dict[str, Any]


@dataclass(slots=True)
class Handlers:
    on_hello: Callable[[Hello], None]
    on_snapshot: Callable[[Snapshot], None]
    on_line: Callable[[float, str], None]
    on_link: Callable[[str], None]
    """`attached`, or `disconnected: why` (the feed is retrying)."""


class Feed:
    def __init__(self, api: Api, handlers: Handlers, *, interval_s: float | None = None) -> None:
        self.api = api
        self.handlers = handlers
        self._attached = False
        self.path = "/gateway/events" + ("" if interval_s is None else f"?interval_s={interval_s}")

    async def run(self) -> None:
        """Read until cancelled, reconnecting after each drop."""
        wait_s = RETRY_FIRST_S
        while True:
            try:
                await self._read_once()
                why = "the gateway closed the feed"
            except RemoteError as exc:
                why = str(exc)
            except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
                why = unreachable(self.api.root, exc)
            else:
                wait_s = RETRY_FIRST_S  # it had worked: start the backoff again
            self.handlers.on_link(f"disconnected: {why}")
            await asyncio.sleep(wait_s)
            wait_s = min(wait_s * 2, RETRY_MAX_S)

    async def _read_once(self) -> None:
        self._attached = False
        timeout = aiohttp.ClientTimeout(total=None, sock_read=SILENCE_S)
        async with self.api.session.get(
            self.api.root + self.path, headers=self.api.headers, timeout=timeout
        ) as response:
            if response.status >= 400:
                raise RemoteError(await refusal(response))
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                *events, buffer = buffer.split(b"\n\n")
                for event in events:
                    self._dispatch(event)

    def _dispatch(self, raw: bytes) -> None:
        name, data = b"", b""
        for line in raw.split(b"\n"):
            if line.startswith(b"event: "):
                name = line[7:]
            elif line.startswith(b"data: "):
                data = line[6:]
        if name == b"snapshot":
            self.handlers.on_snapshot(_decode_snapshot(data))
            if not self._attached:  # attached once a real picture is in, not at the hello
                self._attached = True
                self.handlers.on_link("attached")
        elif name == b"line":
            line = json.loads(data)
            self.handlers.on_line(float(line["at"]), str(line["text"]))
        elif name == b"hello":
            hello = json.loads(data)
            self.handlers.on_hello(Hello(bool(hello["demo"]), dict(hello["streaming"])))
