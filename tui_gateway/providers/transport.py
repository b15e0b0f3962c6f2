"""The HTTP edge every adapter shares: aiohttp's errors mapped into ours, one SSE read loop.

    map_client_errors()      aiohttp.ClientError / OSError -> Unavailable(kind=CONNECTION)
      (mid_stream=True)      ... -> Unavailable(kind=TRUNCATED): the answer broke off
    unavailable()            the same mapping, for the hot path's own `except`
    post_stream()            POST, then abort (never drain) the response on leaving
    read_body()              the whole body, read under the mapping
    sse_batches()            a response body as SSEBatch es, until `[DONE]` or the end

Like httpx's `map_httpcore_exceptions` (`httpx/_transports/default.py`), the mapping is one
context manager, so no adapter lets an aiohttp exception through to the proxy; `unavailable()`
is its body, for the per-stream paths, where entering a generator's context costs more than the
work it guards (2.5 µs for `asynccontextmanager`, 1.3 for `contextmanager`, 0.5 for a class).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager

import aiohttp

from ..domain.errors import ErrorKind, Unavailable
from .sse import SSEBatch, SSEDecoder

__all__ = [
    "CLIENT_ERRORS",
    "map_client_errors",
    "post_stream",
    "read_body",
    "sse_batches",
    "unavailable",
]

CLIENT_ERRORS = (aiohttp.ClientError, OSError)
"""What aiohttp raises when an upstream cannot be reached, hangs up or sends a broken body.

`OSError` covers a reset socket and, in Python 3.11+, `TimeoutError` from a client timeout.
"""


@contextmanager
def map_client_errors(*, mid_stream: bool = False) -> Iterator[None]:
    """Raise `Unavailable` for an aiohttp client error inside the block, chained to it.

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


def post_stream(
    session: aiohttp.ClientSession, url: str, *, data: bytes, headers: dict[str, str]
) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
    """POST and hand over the response with its body unread.

    Leaving closes the connection rather than draining it, on every exit path: a stream we
    stopped reading must not keep the upstream busy.
    """
    return _Posted(session, url, data, headers)


class _Posted:
    """`post_stream`'s context, as a class rather than a generator (see the module docstring)."""

    __slots__ = ("_session", "_url", "_data", "_headers", "_resp")

    def __init__(
        self, session: aiohttp.ClientSession, url: str, data: bytes, headers: dict[str, str]
    ) -> None:
        self._session, self._url, self._data, self._headers = session, url, data, headers
        self._resp: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> aiohttp.ClientResponse:
        try:
            self._resp = await self._session.post(self._url, data=self._data, headers=self._headers)
        except CLIENT_ERRORS as exc:
            raise unavailable(exc) from exc
        return self._resp

    async def __aexit__(self, *exc_info: object) -> None:
        if self._resp is not None:
            self._resp.close()


async def read_body(resp: aiohttp.ClientResponse) -> bytes:
    """The whole body; a connection lost while reading it is `Unavailable(kind=CONNECTION)`."""
    with map_client_errors():
        return await resp.read()


async def sse_batches(resp: aiohttp.ClientResponse) -> AsyncGenerator[SSEBatch, None]:
    """The response's events, one batch per read that completed any, until `[DONE]` or EOF.

    A connection lost mid-body is `Unavailable(kind=TRUNCATED)`. An event left without its
    closing empty line when the body ends is still yielded.
    """
    decoder = SSEDecoder()
    try:  # `map_client_errors`, unrolled (see the module docstring)
        async for data in resp.content.iter_any():
            batch = decoder.feed(data)
            if batch is not None:
                yield batch
            if decoder.done:
                return
    except CLIENT_ERRORS as exc:
        raise unavailable(exc, mid_stream=True) from exc
    rest = decoder.flush()
    if rest is not None:
        yield rest
