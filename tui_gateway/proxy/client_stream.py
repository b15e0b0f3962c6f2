"""The event stream back to the client: headers once, events in its dialect, keep-alives, the end.

The relay decides what to send; this is how it reaches the client. Status and headers go out
once, with the first event or the first keep-alive, whichever comes first (a heartbeat may be
sending them while the relay wants to write: the second waits for the first). From then on a
failure can only be the stream's last event.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from .dialects import StreamEncoder
from .errors import APIError


class ClientStream:
    def __init__(self, request: web.Request, out: StreamEncoder) -> None:
        self.request = request
        self.out = out
        """This request's encoder: OpenAI chunks in, the client's dialect out."""
        self.response: web.StreamResponse | None = None
        self._prepared: asyncio.Event | None = None

    @property
    def open(self) -> bool:
        """Status and headers went out (or are going out)."""
        return self.response is not None

    @property
    def gone(self) -> bool:
        """The client's connection is closed or closing."""
        return client_gone(self.request)

    async def start(self, headers: dict[str, str]) -> web.StreamResponse:
        """Send status and headers once (`headers` are used only by the first call)."""
        if self.response is None:
            response = self.response = _EventStream(
                status=200,
                headers={
                    "Content-Type": "text/event-stream",
                    "Cache-Control": "no-cache",
                    **headers,
                },
            )
            self._prepared = asyncio.Event()
            await response.prepare(self.request)
            self._prepared.set()
        elif self._prepared is not None and not self._prepared.is_set():
            await self._prepared.wait()  # a heartbeat is sending the headers right now
        return self.response

    async def send(self, framed: bytes, *, last: bool = False) -> None:
        """Relayed OpenAI events, in the client's dialect; `last` ends the body in the same send."""
        assert self.response is not None, "start() first"
        if last:
            await self.response.write_eof(self.out.events(framed))
        else:
            await self.response.write(self.out.events(framed))

    async def keepalive(self) -> None:
        assert self.response is not None, "start() first"
        await self.response.write(self.out.keepalive())

    async def end(self, framed: bytes = b"") -> web.StreamResponse:
        """The stream's last events; the client may already be gone, which is fine here."""
        assert self.response is not None, "start() first"
        await _write_quietly(self.response, self.out.events(framed))
        return self.response

    async def fail(self, error: APIError) -> web.StreamResponse:
        """Headers already went out: the error becomes the stream's last event."""
        assert self.response is not None, "start() first"
        await _write_quietly(self.response, self.out.failed(error))
        return self.response


def client_gone(request: web.Request) -> bool:
    """The client's connection is closed or closing."""
    transport = request.transport
    return transport is None or transport.is_closing()


class _EventStream(web.StreamResponse):
    """Headers go out with the first event, in one send instead of two.

    `prepare()` is always followed by a write here (an event or a keep-alive). The attribute is
    aiohttp's own switch (`web.Response` turns it off the same way); a test pins it.
    """

    _send_headers_immediately = False


async def _write_quietly(response: web.StreamResponse, data: bytes) -> None:
    try:
        await response.write_eof(data)
    except (ConnectionResetError, RuntimeError):
        pass
