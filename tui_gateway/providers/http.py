"""The upstream HTTP/1.1 client of the relay: pooled keep-alive connections, parsed by httptools.

    client = UpstreamClient()
    resp = await client.post(url, data=body, headers=headers)   # returns once headers are in
    async for data in resp: ...        # the body, read by read; or `await resp.read()`
    resp.close()                       # unfinished: the connection is dropped, never drained

Why not aiohttp's `ClientSession`, which the rest of the gateway uses: on the relay's path it
was the largest single cost of a request. Per 50-chunk stream at concurrency 32 it spent about
310 µs of CPU where this client spends 146 (`scripts/bench_client.py`), for work the relay
never needs (cookie jars, redirects, proxies from the environment, tracing, per-request timeout
objects). What it keeps is what an upstream call needs: TLS verified against the system's
certificates, happy eyeballs (`aiohappyeyeballs`, as aiohttp does) for hosts with both IPv4 and
IPv6, chunked and length-delimited bodies, back-pressure on a slow reader, and an idle
connection dropped after `keepalive_s` (aiohttp's 15 s). Every failure is an `OSError`, so
`transport.py` maps it as it mapped aiohttp's errors. One connection's wire work (the request's
bytes, the reply's parsing) is `http_wire.py`; this module is where to connect and the pools.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import quote, urlsplit

import aiohappyeyeballs

from .http_wire import Connection, UpstreamProtocolError, UpstreamResponse

__all__ = ["UpstreamClient", "UpstreamProtocolError", "UpstreamResponse"]

_FIXED_HEADERS = b"User-Agent: tui-gateway\r\nAccept: */*\r\nAccept-Encoding: identity\r\n"
"""Sent with every request; `identity`: the relay forwards bytes, it does not decompress."""


class _Target(NamedTuple):
    origin: tuple[str, str, int]
    """Scheme, host and port: what one pool of connections serves."""
    host_header: bytes
    path: bytes
    """The request target: path and query, percent-encoded."""


_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
"""Left as they are when a path is percent-encoded: RFC 3986's path characters, and `%` so an
already-encoded path is not encoded twice."""


@lru_cache(maxsize=512)
def _target(url: str) -> _Target:
    """Where `url` is, parsed once per URL (an adapter posts to a handful)."""
    try:
        parts = urlsplit(url)
        given_port = parts.port  # a port that is not a number in range raises, as a bad IPv6 host
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(url)
    except ValueError:
        raise UpstreamProtocolError(f"not an http(s) URL: {url!r}") from None
    host = parts.hostname
    port = given_port or (443 if scheme == "https" else 80)
    shown = f"[{host}]" if ":" in host else host
    if given_port is not None:
        shown += f":{port}"
    path = quote(parts.path or "/", safe=_PATH_SAFE)
    if parts.query:
        path += "?" + quote(parts.query, safe=_PATH_SAFE + "?")
    return _Target((scheme, host, port), shown.encode("idna"), path.encode("ascii"))


def _request_bytes(target: _Target, data: bytes, headers: Mapping[str, str]) -> bytes:
    parts = [b"POST ", target.path, b" HTTP/1.1\r\nHost: ", target.host_header, b"\r\n"]
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            # A key pasted with its newline would otherwise end the headers early.
            raise UpstreamProtocolError(f"header {name!r} holds a line break or a colon")
        try:
            parts += (name.encode("latin-1"), b": ", value.encode("latin-1"), b"\r\n")
        except UnicodeEncodeError:
            raise UpstreamProtocolError(
                f"header {name!r} holds a character HTTP headers cannot carry"
            ) from None
    parts += (_FIXED_HEADERS, b"Content-Length: ", b"%d" % len(data), b"\r\n\r\n", data)
    return b"".join(parts)


IDLE_CLOSE_RACE_S = 1.0
"""A kept connection that closes this soon after a request went out on it, with no reply, was
closed by the upstream's idle timeout as the request left (the close met it on the way, within
a round trip): the request goes again on a new connection. Later, the upstream held it."""


class _Pool:
    """The connections to one origin: idle ones reused newest first."""

    def __init__(self, client: UpstreamClient, origin: tuple[str, str, int]) -> None:
        self._client = client
        self.origin = origin
        self.idle: list[Connection] = []
        self.busy: set[Connection] = set()

    def release(self, conn: Connection) -> None:
        self.busy.discard(conn)
        conn.idle_since = self._client.clock()
        self.idle.append(conn)

    def forget(self, conn: Connection) -> None:
        self.busy.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)

    def reusable(self) -> Connection | None:
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
            conn.abort(UpstreamProtocolError("the gateway closed its upstream connections"))


async def _exchange(conn: Connection, request: bytes) -> UpstreamResponse:
    """Send `request` on `conn`; the reply once its status and headers are in."""
    head: asyncio.Future[UpstreamResponse] = asyncio.get_running_loop().create_future()
    conn.send(request, head)
    try:
        return await head
    except BaseException:  # cancelled or failed before taking the reply
        conn.abandon(head)
        raise


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
        kept = pool.reusable()
        if kept is not None:
            sent_at = self.clock()
            try:
                return await _exchange(kept, request)
            except ConnectionError:
                if kept.answered or self.clock() - sent_at > IDLE_CLOSE_RACE_S:
                    raise  # the upstream had the request and dropped it: sending again is a
                    # second call for the same answer (and a second wait), not a repair
                # Closed by the upstream as the request went out (its idle timeout ran out):
                # nothing was read or answered, so it goes once more, on a new connection.
        return await _exchange(await self._connect(pool), request)

    async def _connect(self, pool: _Pool) -> Connection:
        scheme, host, port = pool.origin
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        sock = await aiohappyeyeballs.start_connection(infos, happy_eyeballs_delay=0.25)
        tls = None
        if scheme == "https":
            tls = self._ssl = self._ssl or ssl.create_default_context()
        try:
            _, conn = await loop.create_connection(
                lambda: Connection(pool), sock=sock, ssl=tls, server_hostname=host if tls else None
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
