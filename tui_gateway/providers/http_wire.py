"""One upstream connection on the wire: a request's bytes out, its reply parsed as it comes in.

`Connection` is an asyncio protocol that parses replies with httptools, one request at a time
(keep-alive, no pipelining), and hands each body to its `UpstreamResponse` read by read, pausing
the socket while the reader is behind. Which connection serves which request, and for how long
an idle one is kept, is the pool's business (`http.py`), told through `Owner`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol, cast

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

__all__ = ["Connection", "Owner", "UpstreamProtocolError", "UpstreamResponse"]

_HIGH_WATER = 256 * 1024
"""Body bytes buffered for a reader that is behind: reading from the socket pauses above it."""
_MAX_HEAD = 64 * 1024
"""An upstream's status line and headers beyond this are refused, not buffered."""
_TAIL_BYTES = 16 * 1024
_TAIL_S = 1.0
"""A released reply's rest (after `[DONE]`: the chunked body's last `0\r\n\r\n`) may be this
long and take this long; past either, the connection is dropped rather than kept."""


class UpstreamProtocolError(ConnectionError):
    """The upstream broke HTTP/1.1 (a malformed reply, headers too large) or hung up early."""


class Owner(Protocol):
    """The pool a connection belongs to."""

    def release(self, conn: Connection) -> None:
        """The reply ended and the connection can serve another request."""

    def forget(self, conn: Connection) -> None:
        """The connection is closed: not to be handed out again."""


class UpstreamResponse:
    """One reply: status and headers at once, the body as it arrives (iterate, or `read()`)."""

    __slots__ = (
        "status", "headers", "_conn", "_reads", "_buffered", "_eof", "_error", "_waiter",
        "_content_type",
    )  # fmt: skip

    def __init__(self, conn: Connection, status: int, headers: CIMultiDictProxy[str]) -> None:
        self.status = status
        self.headers = headers
        self._conn: Connection | None = conn
        self._reads: deque[bytes] = deque()
        self._buffered = 0
        self._eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._content_type: str | None = None

    @property
    def content_type(self) -> str:
        """The media type of `Content-Type`, lower case, without parameters (as aiohttp's)."""
        if self._content_type is None:
            raw = self.headers.get("Content-Type", "application/octet-stream")
            self._content_type = raw.partition(";")[0].strip().lower()
        return self._content_type

    def __aiter__(self) -> UpstreamResponse:
        return self

    async def __anext__(self) -> bytes:
        while not self._reads:
            if self._error is not None:
                raise self._error
            if self._eof:
                raise StopAsyncIteration
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        reads = self._reads
        data = reads.popleft() if len(reads) == 1 else b"".join(reads)
        reads.clear()
        if self._buffered > _HIGH_WATER and self._conn is not None:
            self._conn.resume()
        self._buffered = 0
        return data

    async def read(self) -> bytes:
        """The whole body (the connection goes back to the pool once it has ended)."""
        return b"".join([data async for data in self])

    def close(self) -> None:
        """Done with the reply: an unfinished body drops its connection rather than drain it."""
        conn = self._detach()
        if conn is not None:
            conn.abort()

    def release(self) -> None:
        """Done with the reply, which has said all it will (an SSE stream's `[DONE]`): the
        body's last bytes, still on their way, are read and dropped, and the connection goes
        back to the pool. A tail longer or slower than a few bytes drops it instead.

        Without this, a stream closed at `[DONE]` dropped its connection whenever the chunked
        body's end came in a later read: a third of streams at 32 in flight, each then paying
        for a new connection (a TLS handshake, with a real provider).
        """
        conn = self._detach()
        if conn is not None:
            conn.finish_quietly()

    def _detach(self) -> Connection | None:
        """No more reading: what is buffered goes, and the connection is the caller's to end."""
        conn, self._conn = self._conn, None
        self._eof = True
        self._reads.clear()
        return conn

    # --- fed by the connection -------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        if self._eof:
            return  # released or closed: nobody reads it
        self._reads.append(data)
        self._buffered += len(data)
        if self._buffered > _HIGH_WATER and self._conn is not None:
            self._conn.pause()
        self._wake()

    def _end(self) -> None:
        self._eof = True
        self._conn = None  # the connection is back in its pool, or closed
        self._wake()

    def _fail(self, error: BaseException) -> None:
        self._error = error
        self._conn = None
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Connection(asyncio.Protocol):
    """One keep-alive connection: a request at a time, its reply parsed as it comes."""

    def __init__(self, pool: Owner) -> None:
        self._pool = pool
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.idle_since = 0.0
        self._head: asyncio.Future[UpstreamResponse] | None = None
        self._response: UpstreamResponse | None = None
        self._headers: list[tuple[str, str]] = []
        self._head_bytes = 0
        self._until_close = True
        """The body has neither a length nor chunks: it ends when the upstream closes."""
        self._paused = False
        self.answered = False
        """Bytes of a reply to the request under way came in."""
        self._refused = ""
        """Why a callback stopped the parser (httptools reports only that one did)."""
        self._tail: asyncio.TimerHandle | None = None
        """Set while a released reply's last bytes are awaited (`finish_quietly`)."""
        self._tail_bytes = 0

    # --- used by the pool and the response --------------------------------------------------

    @property
    def usable(self) -> bool:
        transport = self.transport
        return transport is not None and not transport.is_closing()

    def send(self, request: bytes, head: asyncio.Future[UpstreamResponse]) -> None:
        assert self.transport is not None
        self._head, self._response, self._headers, self._head_bytes = head, None, [], 0
        self.answered = False
        self._until_close = True
        self.transport.write(request)

    def abandon(self, head: asyncio.Future[UpstreamResponse]) -> None:
        """The request waiting on `head` gave up before taking its reply: the connection is
        dropped if it still serves that request. A reply that came in whole before the waiter
        woke has put it back in the pool, maybe under the next request already, which a drop
        here would leave waiting for a reply that never comes."""
        if self._head is head or (
            head.done()
            and not head.cancelled()
            and head.exception() is None
            and head.result() is self._response
        ):
            self.abort()

    def finish_quietly(self) -> None:
        """Let the reply under way end on its own (its reader is gone), then serve again."""
        if self._response is None or self.transport is None:
            return  # it ended already, or the connection did
        self._tail_bytes = 0
        self._tail = asyncio.get_running_loop().call_later(_TAIL_S, self.abort)
        self.resume()  # the rest must be read, whatever the reader left buffered

    def _stop_tail(self) -> None:
        tail, self._tail = self._tail, None
        if tail is not None:
            tail.cancel()

    def abort(self, error: BaseException | None = None) -> None:
        """Drop the connection; `error` goes to a request still waiting on it (None: its
        response was closed by whoever read it, nobody waits)."""
        self._stop_tail()
        transport, self.transport = self.transport, None
        self._pool.forget(self)
        if transport is not None:
            transport.abort()
        if error is None:
            self._head = self._response = None
        else:
            self._broken(error)

    def pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.answered = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._broken(UpstreamProtocolError("the upstream switched protocols"))
        except httptools.HttpParserError as exc:
            why = self._refused or f"malformed reply from the upstream: {exc}"
            self._broken(UpstreamProtocolError(why))

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_tail()
        self.transport = None
        self._pool.forget(self)
        response = self._response
        if response is not None and self._until_close and exc is None:
            self._response = None
            response._end()  # a body delimited by the close: complete
            return
        self._broken(exc or UpstreamProtocolError("the upstream closed the connection"))

    # --- httptools callbacks ----------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value)
        if self._head_bytes > _MAX_HEAD:
            self._refused = f"the upstream's headers are longer than {_MAX_HEAD} bytes"
            raise httptools.HttpParserError(self._refused)  # httptools stops parsing
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:  # 100 Continue and the like: the real reply follows
            self._headers = []
            return
        headers = CIMultiDictProxy(CIMultiDict(self._headers))
        self._until_close = (
            "Content-Length" not in headers
            and "chunked" not in headers.get("Transfer-Encoding", "").lower()
        )
        self._response = UpstreamResponse(self, status, headers)
        head, self._head = self._head, None
        if head is not None and not head.done():
            head.set_result(self._response)

    def on_body(self, body: bytes) -> None:
        if self._tail is not None:
            self._tail_bytes += len(body)
            if self._tail_bytes > _TAIL_BYTES:
                self.abort()  # more than an ending: not worth reading to keep the connection
            return
        if self._response is not None:
            self._response._feed(body)

    def on_message_complete(self) -> None:
        response = self._response
        if response is None:
            return  # the end of an interim (1xx) reply
        self._response = None
        self._stop_tail()
        if self._parser.should_keep_alive() and self.usable:
            self.resume()  # paused for a slow reader by the same read that ended the body
            self._pool.release(self)
        elif self.transport is not None:
            self.transport.close()
            self.transport = None
        response._end()

    # --- failures ---------------------------------------------------------------------------

    def _broken(self, error: BaseException) -> None:
        head, self._head = self._head, None
        if head is not None and not head.done():
            head.set_exception(error)
        response, self._response = self._response, None
        if response is not None:
            response._fail(error)
        if self.transport is not None:
            self.abort()  # nobody is left to tell
