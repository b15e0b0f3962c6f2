"""The HTTP edge every adapter shares: aiohttp's errors mapped into ours, one SSE read loop.

    map_client_errors()      aiohttp.ClientError / OSError -> Unavailable(kind=CONNECTION)
      (mid_stream=True)      ... -> Unavailable(kind=TRUNCATED): the answer broke off
    post_stream()            POST, then abort (never drain) the response on leaving
    read_body()              the whole body, read under the mapping
    sse_batches()            a response body as SSEBatch es, until `[DONE]` or the end

Like httpx's `map_httpcore_exceptions` (`httpx/_transports/default.py`), the mapping is one
context manager, so no adapter lets an aiohttp exception through to the proxy.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import aiohttp

from ..domain.errors import ErrorKind, Unavailable
from .sse import SSEBatch, SSEDecoder

__all__ = ["CLIENT_ERRORS", "map_client_errors", "post_stream", "read_body", "sse_batches"]

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
        if mid_stream:
            raise Unavailable(
                f"connection dropped mid-stream ({type(exc).__name__})", kind=ErrorKind.TRUNCATED
            ) from exc
        detail = str(exc) or type(exc).__name__
        raise Unavailable(f"connection failed: {detail}", kind=ErrorKind.CONNECTION) from exc


@asynccontextmanager
async def post_stream(
    session: aiohttp.ClientSession, url: str, *, data: bytes, headers: dict[str, str]
) -> AsyncIterator[aiohttp.ClientResponse]:
    """POST and hand over the response with its body unread.

    Leaving closes the connection rather than draining it, on every exit path: a stream we
    stopped reading must not keep the upstream busy.
    """
    with map_client_errors():
        resp = await session.post(url, data=data, headers=headers)
    try:
        yield resp
    finally:
        resp.close()


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
    with map_client_errors(mid_stream=True):
        async for data in resp.content.iter_any():
            batch = decoder.feed(data)
            if batch is not None:
                yield batch
            if decoder.done:
                return
    rest = decoder.flush()
    if rest is not None:
        yield rest
