"""The HTTP edge every adapter shares: client errors mapped into ours, one SSE read loop.

    map_client_errors()      OSError / aiohttp.ClientError -> Unavailable(kind=CONNECTION)
      (mid_stream=True)      ... -> Unavailable(kind=TRUNCATED): the answer broke off
    unavailable()            the same mapping, for the hot path's own `except`
    post()                   POST, the whole reply read under the mapping
    post_stream()            POST, then abort (never drain) an unfinished response on leaving
    read_body()              the whole body, read under the mapping
    sse_batches()            a response body as SSEBatch es, until `[DONE]` or the end

Like httpx's `map_httpcore_exceptions` (`httpx/_transports/default.py`), the mapping is one
context manager, so no adapter lets a client's exception through to the proxy; `unavailable()`
is its body, for the per-stream paths, where entering a generator's context costs more than the
work it guards (2.5 µs for `asynccontextmanager`, 1.3 for `contextmanager`, 0.5 for a class).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager

import aiohttp

from ..domain.errors import ErrorKind, Unavailable
from .http import UpstreamClient, UpstreamResponse
from .sse import EventTooLarge, SSEBatch, SSEDecoder

__all__ = [
    "CLIENT_ERRORS",
    "map_client_errors",
    "post",
    "post_stream",
    "read_body",
    "sse_batches",
    "unavailable",
]

CLIENT_ERRORS = (aiohttp.ClientError, OSError)
"""What an upstream call raises when the upstream cannot be reached, hangs up or sends a broken
body: `OSError` from the relay's own client (`http.py`: a reset socket, TLS, a broken reply),
`aiohttp.ClientError` from the key checks, which call through aiohttp.
"""


@contextmanager
def map_client_errors(*, mid_stream: bool = False) -> Iterator[None]:
    """Raise `Unavailable` for a client error inside the block, chained to it.

    Args:
        mid_stream: the reply had started: the failure truncated it (kind TRUNCATED) rather
            than kept it from being made (kind CONNECTION).
    """
    try:
        yield
    except CLIENT_ERRORS as exc:
        raise unavailable(exc, mid_stream=mid_stream) from exc


def unavailable(exc: BaseException, *, mid_stream: bool = False) -> Unavailable:
    """The `Unavailable` that `map_client_errors` raises for `exc`, for a hot path's own except."""
    if mid_stream:
        return Unavailable(
            f"connection dropped mid-stream ({type(exc).__name__})", kind=ErrorKind.TRUNCATED
        )
    detail = str(exc) or type(exc).__name__
    return Unavailable(f"connection failed: {detail}", kind=ErrorKind.CONNECTION)


async def post(
    client: UpstreamClient, url: str, *, data: bytes, headers: dict[str, str]
) -> tuple[UpstreamResponse, bytes]:
    """POST and read the whole reply (the response, for its status and headers, and the body)."""
    async with post_stream(client, url, data=data, headers=headers) as resp:
        return resp, await read_body(resp)


def post_stream(
    client: UpstreamClient, url: str, *, data: bytes, headers: dict[str, str]
) -> AbstractAsyncContextManager[UpstreamResponse]:
    """POST and hand over the response with its body unread.

    Leaving closes the connection rather than draining it, on every exit path: a stream we
    stopped reading must not keep the upstream busy. (A reply read to its `[DONE]` was released
    by `sse_batches` already: only its body's end is left, and the connection is kept.)
    """
    return _Posted(client, url, data, headers)


class _Posted:
    """`post_stream`'s context, as a class rather than a generator (see the module docstring)."""

    __slots__ = ("_client", "_url", "_data", "_headers", "_resp")

    def __init__(
        self, client: UpstreamClient, url: str, data: bytes, headers: dict[str, str]
    ) -> None:
        self._client, self._url, self._data, self._headers = client, url, data, headers
        self._resp: UpstreamResponse | None = None

    async def __aenter__(self) -> UpstreamResponse:
        try:
            self._resp = await self._client.post(self._url, data=self._data, headers=self._headers)
        except CLIENT_ERRORS as exc:
            raise unavailable(exc) from exc
        return self._resp

    async def __aexit__(self, *exc_info: object) -> None:
        if self._resp is not None:
            self._resp.close()


async def read_body(resp: UpstreamResponse) -> bytes:
    """The whole body; a connection lost while reading it is `Unavailable(kind=CONNECTION)`."""
    with map_client_errors():
        return await resp.read()


async def sse_batches(resp: UpstreamResponse) -> AsyncGenerator[SSEBatch, None]:
    """The response's events, one batch per read that completed any, until `[DONE]` or EOF.

    A connection lost mid-body is `Unavailable(kind=TRUNCATED)`. An event left without its
    closing empty line when the body ends is still yielded.
    """
    decoder = SSEDecoder()
    try:  # `map_client_errors`, unrolled (see the module docstring)
        async for data in resp:
            batch = decoder.feed(data)
            if batch is not None:
                yield batch
            if decoder.done:
                resp.release()  # what follows `[DONE]` is the body's end: keep the connection
                return
    except CLIENT_ERRORS as exc:
        raise unavailable(exc, mid_stream=True) from exc
    except EventTooLarge as exc:  # the stream broke off as surely as a dropped connection
        raise Unavailable(str(exc), kind=ErrorKind.TRUNCATED) from exc
    rest = decoder.flush()
    if rest is not None:
        yield rest
