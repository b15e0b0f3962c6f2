"""The upstream HTTP/1.1 client of the relay: pooled keep-alive connections, parsed by httptools.

    client = UpstreamClient()
    resp = await client.post(url, data=body, headers=headers)   # returns once headers are in
    async for data in resp: ...        # the body, read by read; or `await resp.read()`
    resp.close()                       # unfinished: the connection is dropped, never drained

Why not aiohttp's `ClientSession`, which the rest of the gateway uses: on the relay's path it
was the largest single cost of a request. Per 50-chunk stream at concurrency 32 it spent about
270 µs of CPU where this client spends 115 (`scripts/bench_client.py`), for work the relay
never needs (cookie jars, redirects, proxies from the environment, tracing, per-request timeout
objects). What it keeps is what an upstream call needs: TLS verified against the system's
certificates, happy eyeballs (`aiohappyeyeballs`, as aiohttp does) for hosts with both IPv4 and
IPv6, chunked and length-delimited bodies, back-pressure on a slow reader, and an idle
connection dropped after `keepalive_s` (aiohttp's 15 s). Every failure is an `OSError`, so
`transport.py` maps it as it mapped aiohttp's errors.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import NamedTuple, cast
from urllib.parse import quote, urlsplit

import aiohappyeyeballs
import httptools
from multidict import CIMultiDict, CIMultiDictProxy

__all__ = ["UpstreamClient", "UpstreamProtocolError", "UpstreamResponse"]

_HIGH_WATER = 256 * 1024
"""Body bytes buffered for a reader that is behind: reading from the socket pauses above it."""
_MAX_HEAD = 64 * 1024
"""An upstream's status line and headers beyond this are refused, not buffered."""
_FIXED_HEADERS = b"User-Agent: tui-gateway\r\nAccept: */*\r\nAccept-Encoding: identity\r\n"
"""Sent with every request; `identity`: the relay forwards bytes, it does not decompress."""


class UpstreamProtocolError(ConnectionError):
    """The upstream broke HTTP/1.1 (a malformed reply, headers too large) or hung up early."""


class _Target(NamedTuple):
    origin: tuple[str, str, int]
    """Scheme, host and port: what one pool of connections serves."""
    host_header: bytes
    path: bytes
    """The request target: path and query, percent-encoded."""


@lru_cache(maxsize=512)
def _target(url: str) -> _Target:
    """Where `url` is, parsed once per URL (an adapter posts to a handful)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise UpstreamProtocolError(f"not an http(s) URL: {url!r}")
    host = parts.hostname
    port = parts.port or (443 if scheme == "https" else 80)
    shown = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        shown += f":{port}"
    path = quote(parts.path or "/", safe="/:@!$&'()*+,;=-._~%")
    if parts.query:
        path += "?" + quote(parts.query, safe="/:@!$&'()*+,;=-._~%?")
    return _Target((scheme, host, port), shown.encode("idna"), path.encode("ascii"))


def _request_bytes(target: _Target, data: bytes, headers: Mapping[str, str]) -> bytes:
    parts = [b"POST ", target.path, b" HTTP/1.1\r\nHost: ", target.host_header, b"\r\n"]
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            # A key pasted with its newline would otherwise end the headers early.
            raise UpstreamProtocolError(f"header {name!r} holds a line break or a colon")
        parts += (name.encode("latin-1"), b": ", value.encode("latin-1"), b"\r\n")
    parts += (_FIXED_HEADERS, b"Content-Length: ", b"%d" % len(data), b"\r\n\r\n", data)
    return b"".join(parts)


class UpstreamResponse:
    """One reply: status and headers at once, the body as it arrives (iterate, or `read()`)."""

    __slots__ = (
        "status", "headers", "_conn", "_reads", "_buffered", "_eof", "_error", "_waiter",
        "_content_type",
    )  # fmt: skip

    def __init__(self, conn: _Connection, status: int, headers: CIMultiDictProxy[str]) -> None:
        self.status = status
        self.headers = headers
        self._conn: _Connection | None = conn
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
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.abort()
        self._eof = True
        self._reads.clear()

    # --- fed by the connection -------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
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


class _Connection(asyncio.Protocol):
    """One keep-alive connection: a request at a time, its reply parsed as it comes."""

    def __init__(self, pool: _Pool) -> None:
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
        self._refused = ""
        """Why a callback stopped the parser (httptools reports only that one did)."""

    # --- used by the pool and the response --------------------------------------------------

    @property
    def usable(self) -> bool:
        transport = self.transport
        return transport is not None and not transport.is_closing()

    def send(self, request: bytes, head: asyncio.Future[UpstreamResponse]) -> None:
        assert self.transport is not None
        self._head, self._response, self._headers, self._head_bytes = head, None, [], 0
        self._until_close = True
        self.transport.write(request)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self.transport = None
        self._pool.forget(self)

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
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._broken(UpstreamProtocolError("the upstream switched protocols"))
        except httptools.HttpParserError as exc:
            why = self._refused or f"malformed reply from the upstream: {exc}"
            self._broken(UpstreamProtocolError(why))

    def connection_lost(self, exc: Exception | None) -> None:
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
        self._until_close = "Content-Length" not in headers and "chunked" not in headers.get(
            "Transfer-Encoding", ""
        )
        self._response = UpstreamResponse(self, status, headers)
        head, self._head = self._head, None
        if head is not None and not head.done():
            head.set_result(self._response)

    def on_body(self, body: bytes) -> None:
        if self._response is not None:
            self._response._feed(body)

    def on_message_complete(self) -> None:
        response = self._response
        if response is None:
            return  # the end of an interim (1xx) reply
        self._response = None
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
            self.abort()


class _Pool:
    """The connections to one origin: idle ones reused newest first."""

    def __init__(self, client: UpstreamClient, origin: tuple[str, str, int]) -> None:
        self._client = client
        self.origin = origin
        self.idle: list[_Connection] = []
        self.busy: set[_Connection] = set()

    def release(self, conn: _Connection) -> None:
        self.busy.discard(conn)
        conn.idle_since = self._client.clock()
        self.idle.append(conn)

    def forget(self, conn: _Connection) -> None:
        self.busy.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)

    def reusable(self) -> _Connection | None:
        oldest = self._client.clock() - self._client.keepalive_s
        while self.idle:
            conn = self.idle.pop()
            if conn.usable and conn.idle_since >= oldest:
                self.busy.add(conn)
                return conn
            conn.abort()
        return None

    def close(self) -> None:
        for conn in [*self.idle, *self.busy]:
            conn.abort()


class UpstreamClient:
    """POSTs to upstreams over pooled connections; one per gateway, closed when it stops."""

    def __init__(
        self,
        *,
        keepalive_s: float = 15.0,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keepalive_s = keepalive_s
        self.clock = clock
        self._ssl = ssl_context
        self._pools: dict[tuple[str, str, int], _Pool] = {}
        self._closed = False

    async def post(self, url: str, *, data: bytes, headers: Mapping[str, str]) -> UpstreamResponse:
        """POST `data`; returns once the reply's status and headers are in.

        Raises:
            OSError: the upstream could not be reached, broke HTTP or hung up before replying
                (`UpstreamProtocolError` for the last two).
        """
        if self._closed:
            raise UpstreamProtocolError("the gateway's upstream client is closed")
        target = _target(url)
        request = _request_bytes(target, data, headers)
        pool = self._pools.get(target.origin)
        if pool is None:
            pool = self._pools[target.origin] = _Pool(self, target.origin)
        conn = pool.reusable() or await self._connect(pool)
        head: asyncio.Future[UpstreamResponse] = asyncio.get_running_loop().create_future()
        conn.send(request, head)
        try:
            return await head
        except BaseException:  # cancelled or failed before the reply: the connection is spent
            conn.abort()
            raise

    async def _connect(self, pool: _Pool) -> _Connection:
        scheme, host, port = pool.origin
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        sock = await aiohappyeyeballs.start_connection(infos, happy_eyeballs_delay=0.25)
        tls = None
        if scheme == "https":
            tls = self._ssl = self._ssl or ssl.create_default_context()
        try:
            _, conn = await loop.create_connection(
                lambda: _Connection(pool), sock=sock, ssl=tls, server_hostname=host if tls else None
            )
        except BaseException:
            sock.close()
            raise
        pool.busy.add(conn)
        return conn

    async def close(self) -> None:
        """Drop every connection, idle or busy; later posts fail."""
        self._closed = True
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()

    async def __aenter__(self) -> UpstreamClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
