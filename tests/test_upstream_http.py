"""The relay's upstream HTTP client (providers/http.py), against real servers on 127.0.0.1.

What an upstream can do to it: keep connections alive or not, send chunked, sized or
close-delimited bodies, stop halfway, answer garbage, hang up before answering, speak TLS.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing, asynccontextmanager

import pytest
import trustme

try:
    import uvloop
except ImportError:  # Windows
    uvloop = None  # type: ignore[assignment]
from aiohttp import web
from aiohttp.test_utils import TestServer

from tui_gateway.domain.errors import ErrorKind, Unavailable
from tui_gateway.providers import http, http_wire
from tui_gateway.providers.http import UpstreamClient, UpstreamProtocolError
from tui_gateway.providers.transport import (
    map_client_errors,
    post,
    post_stream,
    read_body,
    sse_batches,
)

BODY = b'{"model": "m", "messages": []}'


class Peers:
    """The connections an aiohttp test server has seen, by the client's port."""

    def __init__(self) -> None:
        self.ports: list[int] = []

    def saw(self, request: web.Request) -> None:
        assert request.transport is not None
        self.ports.append(request.transport.get_extra_info("peername")[1])


async def _server(app: web.Application, tls: ssl.SSLContext | None = None) -> TestServer:
    server = TestServer(app, host="127.0.0.1", scheme="https" if tls else "http")
    await server.start_server(ssl=tls)
    return server


@pytest.fixture
async def echo() -> AsyncIterator[tuple[TestServer, Peers]]:
    """Echoes the request (method, path, a few headers, body); `/stream` sends chunks."""
    peers = Peers()

    async def handle(request: web.Request) -> web.StreamResponse:
        peers.saw(request)
        body = await request.read()
        if request.path.endswith("/stream"):
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            for i in range(int(request.query.get("n", "3"))):
                await response.write(b"data: %d\n\n" % i)
            await response.write_eof()
            return response
        echoed = {
            "method": request.method,
            "path_qs": request.raw_path,
            "host": request.host,
            "length": request.headers.get("Content-Length"),
            "encoding": request.headers.get("Accept-Encoding"),
            "auth": request.headers.get("Authorization"),
            "body": body.decode(),
        }
        return web.json_response(echoed, headers={"Retry-After": "7"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = await _server(app)
    yield server, peers
    await server.close()


@asynccontextmanager
async def _raw_server(
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[str]:
    """A server that writes whatever bytes the test wants; yields its URL. Every connection is
    closed, and every handler done, when the block ends."""
    handlers: set[asyncio.Task[None]] = set()

    async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await handle(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(closing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1/chat/completions"
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    return head + await reader.readexactly(length)


async def test_a_post_arrives_as_sent_and_the_reply_reads_back(
    echo: tuple[TestServer, Peers],
) -> None:
    server, _ = echo
    url = f"http://127.0.0.1:{server.port}/v1/chat/completions?alt=sse&x=a b"
    async with UpstreamClient() as client:
        resp, raw = await post(client, url, data=BODY, headers={"Authorization": "Bearer k"})
    assert resp.status == 200 and resp.content_type == "application/json"
    assert resp.headers["retry-after"] == "7"  # headers are case-insensitive, as aiohttp's
    seen = __import__("json").loads(raw)
    assert seen == {
        "method": "POST",
        "path_qs": "/v1/chat/completions?alt=sse&x=a%20b",
        "host": f"127.0.0.1:{server.port}",
        "length": str(len(BODY)),
        "encoding": "identity",  # the relay forwards bytes: nothing comes compressed
        "auth": "Bearer k",
        "body": BODY.decode(),
    }


async def test_connections_are_kept_alive_and_reused(echo: tuple[TestServer, Peers]) -> None:
    server, peers = echo
    url = str(server.make_url("/v1/chat/completions"))
    async with UpstreamClient() as client:
        for _ in range(3):
            await post(client, url, data=BODY, headers={})
        stream = await client.post(str(server.make_url("/v1/stream?n=5")), data=BODY, headers={})
        reads = b"".join([data async for data in stream])
        await post(client, url, data=BODY, headers={})
    assert reads == b"".join(b"data: %d\n\n" % i for i in range(5))
    assert len(peers.ports) == 5 and len(set(peers.ports)) == 1


async def test_concurrent_posts_each_get_their_own_connection(
    echo: tuple[TestServer, Peers],
) -> None:
    server, peers = echo
    url = str(server.make_url("/v1/stream?n=50"))
    async with UpstreamClient() as client:

        async def one() -> bytes:
            resp = await client.post(url, data=BODY, headers={})
            return await resp.read()

        bodies = await asyncio.gather(*(one() for _ in range(8)))
        assert len(set(bodies)) == 1 and bodies[0].count(b"data: ") == 50
        await asyncio.gather(*(one() for _ in range(8)))
    assert len(peers.ports) == 16 and len(set(peers.ports)) == 8  # the second round reused them


async def test_an_idle_connection_is_dropped_after_the_keepalive(
    echo: tuple[TestServer, Peers],
) -> None:
    server, peers = echo
    url = str(server.make_url("/v1/chat/completions"))
    now = [100.0]
    async with UpstreamClient(keepalive_s=15, clock=lambda: now[0]) as client:
        await post(client, url, data=BODY, headers={})
        now[0] += 14.9
        await post(client, url, data=BODY, headers={})
        now[0] += 15.1
        await post(client, url, data=BODY, headers={})
    assert peers.ports[0] == peers.ports[1] != peers.ports[2]


async def test_closing_an_unfinished_reply_drops_its_connection() -> None:
    """A stream the relay stopped reading must not keep the upstream busy, nor be reused."""
    hung_up = asyncio.Event()
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        if await reader.read() == b"":  # the client closed its side
            hung_up.set()
        writer.close()

    async with _raw_server(handle) as url, UpstreamClient() as client:
        resp = await client.post(url, data=BODY, headers={})
        assert await resp.__anext__() == b"hello"
        resp.close()
        await asyncio.wait_for(hung_up.wait(), 5)
        resp = await client.post(url, data=BODY, headers={})
        resp.close()
    assert connections == 2


@pytest.mark.parametrize(
    ("reply", "body"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", b"hello"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n",
            b"hello",
        ),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello", b"hello"),  # ends with the close
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", b"ok"),
    ],
    ids=["sized", "chunked", "until-close", "interim-100"],
)
async def test_every_way_a_body_can_end_reads_whole(reply: bytes, body: bytes) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(reply)
        await writer.drain()
        if b"close" in reply:
            writer.close()
        else:
            await reader.read()

    async with _raw_server(handle) as url, UpstreamClient() as client:
        resp, raw = await post(client, url, data=BODY, headers={})
    assert (resp.status, raw) == (200, body)


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n",
    ],
    ids=["sized", "chunked", "chunked-capitalised"],
)
async def test_a_body_cut_short_is_an_error_not_an_answer(reply: bytes) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(reply)
        await writer.drain()
        writer.close()

    async with _raw_server(handle) as url, UpstreamClient() as client:
        resp = await client.post(url, data=BODY, headers={})
        with pytest.raises(Unavailable) as caught:
            await read_body(resp)
    assert caught.value.kind == ErrorKind.CONNECTION


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (b"", "closed the connection"),
        (b"SMTP ready\r\n\r\n", "malformed reply"),
        (b"HTTP/1.1 200 OK\r\nX-Big: " + b"x" * 70_000 + b"\r\n\r\n", "headers are longer"),
    ],
    ids=["hang-up", "garbage", "huge-headers"],
)
async def test_an_upstream_that_breaks_http_is_unavailable(reply: bytes, words: str) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(reply)
        await writer.drain()
        writer.close()

    async with _raw_server(handle) as url, UpstreamClient() as client:
        with pytest.raises(Unavailable) as caught, map_client_errors():
            await client.post(url, data=BODY, headers={})
    assert caught.value.kind == ErrorKind.CONNECTION and words in caught.value.message


@pytest.mark.parametrize(
    ("key", "words"),
    [("k\r\nX: y", "line break"), ("k\n", "line break"), ("clé→", "cannot carry")],
)
async def test_a_header_that_http_cannot_carry_is_refused_before_anything_is_sent(
    key: str, words: str
) -> None:
    """A key pasted with its newline must not end the request's headers early."""
    async with UpstreamClient() as client:
        with pytest.raises(Unavailable, match=words), map_client_errors():
            await client.post(
                "http://127.0.0.1:9/v1", data=BODY, headers={"Authorization": f"Bearer {key}"}
            )


async def test_a_cancelled_wait_for_the_reply_drops_the_connection() -> None:
    """The watchdog gives up on a first byte: the upstream must see the request go."""
    hung_up = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        if await reader.read() == b"":
            hung_up.set()
        writer.close()

    async with _raw_server(handle) as url, UpstreamClient() as client:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.post(url, data=BODY, headers={}), 0.2)
        await asyncio.wait_for(hung_up.wait(), 5)


async def test_a_request_given_up_as_its_reply_ends_leaves_the_connection_to_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ban or `x` can cancel a request whose reply has just come in whole, which put its
    connection back in the pool before the cancelled request woke. The connection is no longer
    that request's to drop: under load the next request had often taken it already, and
    dropping it then left that one waiting, with no error, until `request_timeout_s` (120 s)."""
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            await _read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")  # in one read
            await writer.drain()

    async with _raw_server(handle) as url, UpstreamClient() as client:
        first = asyncio.create_task(client.post(url, data=BODY, headers={}))
        release = http._Pool.release

        def release_then_cancel(pool: http._Pool, conn: http_wire.Connection) -> None:
            release(pool, conn)
            first.cancel()  # the reply is whole and back in the pool; `first` has not woken

        monkeypatch.setattr(http._Pool, "release", release_then_cancel)
        with pytest.raises(asyncio.CancelledError):
            await first
        monkeypatch.undo()
        reply = await asyncio.wait_for(client.post(url, data=BODY, headers={}), 5)
        assert (reply.status, await reply.read()) == (200, b"ok")
    assert connections == 1  # served on the connection the cancelled request left


async def test_a_request_given_up_as_its_reply_begins_drops_the_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Cancelled after its reply's head came in but before it woke to take it: nobody will
    read the rest, so the upstream sees the connection go rather than keep sending."""
    hung_up = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
        if await reader.read() == b"":
            hung_up.set()

    async with _raw_server(handle) as url, UpstreamClient() as client:
        first = asyncio.create_task(client.post(url, data=BODY, headers={}))
        headers_complete = http_wire.Connection.on_headers_complete

        def headers_then_cancel(conn: http_wire.Connection) -> None:
            headers_complete(conn)
            first.cancel()

        monkeypatch.setattr(http_wire.Connection, "on_headers_complete", headers_then_cancel)
        with pytest.raises(asyncio.CancelledError):
            await first
        await asyncio.wait_for(hung_up.wait(), 5)


async def test_a_slow_reader_gets_every_byte_of_a_large_body_in_order(
    echo: tuple[TestServer, Peers],
) -> None:
    """Reading pauses while the reader is behind, and resumes: nothing is lost or reordered."""
    server, _ = echo
    url = str(server.make_url("/v1/stream?n=60000"))
    async with UpstreamClient() as client:
        resp = await client.post(url, data=BODY, headers={})
        await asyncio.sleep(0.3)  # the upstream writes far more than the high-water mark
        reads = []
        async for data in resp:
            reads.append(data)
            await asyncio.sleep(0)
    body = b"".join(reads)
    assert body == b"".join(b"data: %d\n\n" % i for i in range(60000))
    assert max(map(len, reads)) < 600_000  # the buffer stayed bounded while it waited


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def test_tls_is_verified_against_the_trusted_certificates(ca: trustme.CA) -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"tls": request.secure})

    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_context)
    app = web.Application()
    app.router.add_post("/v1/chat/completions", hello)
    server = await _server(app, tls=server_context)
    url = f"https://localhost:{server.port}/v1/chat/completions"
    try:
        trusting = ssl.create_default_context()
        ca.configure_trust(trusting)
        async with UpstreamClient(ssl_context=trusting) as client:
            resp, raw = await post(client, url, data=BODY, headers={})
        assert (resp.status, raw) == (200, b'{"tls": true}')
        async with UpstreamClient() as client:  # the system's certificates: this CA is unknown
            with pytest.raises(Unavailable) as caught:
                await post(client, url, data=BODY, headers={})
        assert caught.value.kind == ErrorKind.CONNECTION
        assert "CERTIFICATE_VERIFY_FAILED" in caught.value.message
    finally:
        await server.close()


async def test_a_closed_client_refuses_to_post() -> None:
    client = UpstreamClient()
    await client.close()
    with pytest.raises(UpstreamProtocolError, match="closed"):
        await client.post("http://127.0.0.1:9/v1", data=BODY, headers={})


@pytest.mark.skipif(uvloop is None, reason="uvloop is not installed here")
def test_the_client_runs_on_uvloop_as_on_asyncio() -> None:
    """uvloop is the gateway's default loop; its transports are not asyncio's classes."""

    async def main() -> tuple[list[bytes], list[int]]:
        peers = Peers()

        async def stream(request: web.Request) -> web.StreamResponse:
            peers.saw(request)
            response = web.StreamResponse()
            await response.prepare(request)
            await response.write(b"data: 1\n\n")
            await response.write_eof()
            return response

        app = web.Application()
        app.router.add_post("/v1/chat/completions", stream)
        server = await _server(app)
        try:
            async with UpstreamClient() as client:
                url = str(server.make_url("/v1/chat/completions"))
                bodies = [(await post(client, url, data=BODY, headers={}))[1] for _ in range(3)]
        finally:
            await server.close()
        return bodies, peers.ports

    assert uvloop is not None
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        bodies, ports = runner.run(main())
    assert bodies == [b"data: 1\n\n"] * 3 and len(set(ports)) == 1


async def test_closing_the_client_ends_a_read_in_progress_with_an_error() -> None:
    """At shutdown a relay still reading must be told, not left waiting for the upstream."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        await reader.read()  # then silence

    async with _raw_server(handle) as url:
        client = UpstreamClient()
        resp = await client.post(url, data=BODY, headers={})
        assert await resp.__anext__() == b"hello"
        waiting = asyncio.ensure_future(resp.__anext__())
        await asyncio.sleep(0.05)
        await client.close()
        with pytest.raises(UpstreamProtocolError, match="closed its upstream connections"):
            await asyncio.wait_for(waiting, 5)


async def test_a_kept_connection_closed_as_the_request_goes_out_is_retried_once_fresh() -> None:
    """An upstream's idle timeout can close a kept-alive connection just as a request is sent
    on it; nothing was answered, so the request goes again on a new connection, not failed."""
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        if connections == 1:
            await _read_request(reader)  # the second request on it: hang up without a word
            return
        await reader.read()

    async with _raw_server(handle) as url, UpstreamClient() as client:
        assert (await post(client, url, data=BODY, headers={}))[1] == b"ok"
        assert (await post(client, url, data=BODY, headers={}))[1] == b"ok"
    assert connections == 2


async def test_a_kept_connection_the_upstream_drops_after_holding_the_request_is_not_retried() -> (
    None
):
    """An upstream that took the request and hung up later (it crashed, or its own timeout
    ran out) was not closing an idle connection: sending it again would double the wait and
    the upstream's work. The failure goes to the relay, which moves on to the next model."""
    connections, now = 0, [0.0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await _read_request(reader)
        now[0] += http.IDLE_CLOSE_RACE_S + 1.0  # held it for a while, then hang up

    async with _raw_server(handle) as url, UpstreamClient(clock=lambda: now[0]) as client:
        assert (await post(client, url, data=BODY, headers={}))[1] == b"ok"
        with pytest.raises(Unavailable, match="closed the connection") as failed:
            await post(client, url, data=BODY, headers={})
    assert failed.value.kind is ErrorKind.CONNECTION and connections == 1


async def test_a_reply_broken_after_it_began_is_not_sent_again() -> None:
    requests = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        while True:
            await _read_request(reader)
            requests += 1
            if requests == 1:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
                continue
            writer.write(b"HTTP/1.1 20")  # half a status line, then gone
            await writer.drain()
            return

    async with _raw_server(handle) as url, UpstreamClient() as client:
        await post(client, url, data=BODY, headers={})
        with pytest.raises(Unavailable):
            await post(client, url, data=BODY, headers={})
    assert requests == 2


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/v1",
        "http:///v1",
        "http://127.0.0.1:99999/v1",
        "http://h:x/v1",
        "http://[::1/v1",  # urlsplit's own ValueError
    ],
)
async def test_a_url_that_is_not_http_is_an_error_that_says_so(url: str) -> None:
    async with UpstreamClient() as client:
        with pytest.raises(Unavailable, match="not an http"), map_client_errors():
            await client.post(url, data=BODY, headers={})


_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)
_EVENTS = b'data: {"a":1}\n\ndata: [DONE]\n\n'
_DONE_CHUNK = b"%x\r\n%s\r\n" % (len(_EVENTS), _EVENTS)


async def _read_to_done(client: UpstreamClient, url: str) -> list[bytes]:
    async with post_stream(client, url, data=BODY, headers={}) as resp:
        async with aclosing(sse_batches(resp)) as batches:
            return [batch.framed async for batch in batches]


async def test_a_stream_whose_body_ends_after_its_done_keeps_its_connection() -> None:
    """The chunked body's last `0\\r\\n\\r\\n` often comes in a read after `[DONE]`: the relay
    stops reading at `[DONE]`, and the connection still serves the next request."""
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                await _read_request(reader)
            except asyncio.IncompleteReadError:
                return  # the client closed the connection
            writer.write(_STREAM_HEAD + _DONE_CHUNK)
            await writer.drain()
            await asyncio.sleep(0.01)  # the end in a later segment, as over a real network
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    async with _raw_server(handle) as url, UpstreamClient() as client:
        for _ in range(3):
            framed = await _read_to_done(client, url)
            assert framed == [_EVENTS]
            await asyncio.sleep(0.05)  # the next turn comes after the end arrived
    assert connections == 1


@pytest.mark.parametrize("tail", ["too-long", "never"])
async def test_a_stream_that_goes_on_after_its_done_loses_its_connection(
    tail: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After `[DONE]` only the body's end is awaited: more than a few bytes, or nothing within
    the grace, and the connection is dropped; the next request opens a new one at once."""
    monkeypatch.setattr(http_wire, "_TAIL_S", 0.05)
    connections = 0
    hung_up = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await _read_request(reader)
        writer.write(_STREAM_HEAD + _DONE_CHUNK)
        if tail == "too-long":
            writer.write(b"%x\r\n%s\r\n" % (32 * 1024, b"x" * 32 * 1024))
        await writer.drain()
        if await reader.read() == b"":  # the client hung up
            hung_up.set()

    async with _raw_server(handle) as url, UpstreamClient() as client:
        assert await _read_to_done(client, url) == [_EVENTS]
        await asyncio.wait_for(hung_up.wait(), 5)
        second = await asyncio.wait_for(_read_to_done(client, url), 5)
    assert second == [_EVENTS]
    assert connections == 2
