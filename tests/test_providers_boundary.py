"""The provider boundary (issue 10): one error mapping, one SSE loop, a lazy registry, no cycles.

Also the SSE reading rules of the WHATWG "event stream interpretation" and `Retry-After` given as
an HTTP date (RFC 9110), both fixed under the same issue.
"""

from __future__ import annotations

import ast
import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given
from hypothesis import strategies as st

from tui_gateway.config import PROVIDER_KINDS, ModelSettings, ProviderSettings
from tui_gateway.domain.errors import (
    ErrorKind,
    RateLimited,
    Unavailable,
    WrappedError,
)
from tui_gateway.providers import KINDS, make_upstream
from tui_gateway.providers.base import (
    ErrorDetail,
    error_detail,
    error_from_status,
    retry_after_seconds,
)
from tui_gateway.providers.cloudflare import CloudflareUpstream
from tui_gateway.providers.cohere import CohereUpstream
from tui_gateway.providers.http import UpstreamClient
from tui_gateway.providers.openai import OpenAIUpstream
from tui_gateway.providers.sse import DONE, SSEBatch, SSEDecoder
from tui_gateway.providers.transport import map_client_errors

PROVIDERS = Path(__file__).resolve().parent.parent / "tui_gateway" / "providers"
ACCOUNT = "0123456789abcdef0123456789abcdef"
USER = {"messages": [{"role": "user", "content": "hi"}]}


def decode(reads: list[bytes]) -> list[bytes]:
    decoder = SSEDecoder()
    out: list[bytes] = []
    for read in reads:
        batch = decoder.feed(read)
        if batch is not None:
            out += batch.payloads()
    rest = decoder.flush()
    return out + (rest.payloads() if rest else [])


# --- SSE: the WHATWG event stream rules ---------------------------------------------------------


def test_the_data_lines_of_one_event_are_joined_with_a_newline() -> None:
    """Issue 10: each `data:` line used to become its own payload."""
    wire = b'data: {"a":\ndata: 1}\n\ndata: second\n\n'
    assert decode([wire]) == [b'{"a":\n1}', b"second"]


def test_a_multi_line_event_is_framed_for_the_client_as_one_data_line_per_line() -> None:
    batch = SSEDecoder().feed(b"data: one\ndata: two\n\ndata: three\n\n")
    assert batch is not None and batch.count == 2
    assert batch.framed == b"data: one\ndata: two\n\ndata: three\n\n"
    assert batch.payloads() == [b"one\ntwo", b"three"]
    # Re-framing what was read (the relay drops or rewrites events this way) keeps the shape.
    assert SSEBatch.of(batch.payloads()) == batch


def test_empty_lines_inside_a_payload_survive_framing() -> None:
    payloads = [b"a\n\nb", b"c\n", b"\nd", DONE]
    batch = SSEBatch.of(payloads)
    assert b"\n\n\n" not in batch.framed and batch.done and batch.count == 3
    assert batch.payloads() == payloads
    assert decode([batch.framed]) == payloads


@pytest.mark.parametrize(
    ("line", "payload"),
    [
        (b"data: x", b"x"),
        (b"data:x", b"x"),
        (b"data:  x", b" x"),  # only the one space after the colon goes
        (b"data: x ", b"x "),  # trailing space is data
        (b"data:\tx", b"\tx"),
    ],
)
def test_only_one_space_after_the_colon_is_stripped(line: bytes, payload: bytes) -> None:
    """Issue 10: the whole value used to be stripped."""
    assert decode([line + b"\r\n\r\n"]) == [payload]
    assert decode([b": comment\n" + line + b"\n\n"]) == [payload]


def test_a_data_field_without_a_colon_is_an_empty_line_of_data() -> None:
    assert decode([b"data: a\ndata\ndata: b\n\n"]) == [b"a\n\nb"]


def test_a_lone_cr_ends_a_line() -> None:
    """Issue 10: CR alone was not a line end, so CR-framed streams yielded nothing."""
    wire = b"data: one\r\rdata: two\rdata: more\r\r: comment\r\rdata: [DONE]\r\r"
    assert decode([wire]) == [b"one", b"two\nmore", DONE]


def test_a_crlf_split_between_two_reads_is_one_line_end() -> None:
    # The CR ends one read and its LF starts the next: that is not an empty line (which would
    # end the event and split "a\nb" in two).
    assert decode([b"data: a\r", b"\ndata: b\r\n\r\n"]) == [b"a\nb"]
    assert decode([b"data: a\r\n\r", b"\ndata: b\r\n\r\n"]) == [b"a", b"b"]


def test_fields_other_than_data_and_comments_are_not_payloads() -> None:
    wire = b"event: message\nid: 7\nretry: 1000\ndata: x\n\n: keep-alive\n\nevent: ping\n\n"
    assert decode([wire]) == [b"x"]


def test_an_event_not_yet_ended_waits_for_its_empty_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n") is None
    assert decoder.feed(b"data: b\n") is None
    batch = decoder.feed(b"\n")
    assert batch is not None and batch.payloads() == [b"a\nb"]


def test_a_pending_event_is_dispatched_when_the_body_ends() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\ndata: b") is None
    rest = decoder.flush()
    assert rest is not None and rest.payloads() == [b"a\nb"]


_LINE_ENDS = st.sampled_from([b"\n", b"\r\n", b"\r"])


@given(
    st.lists(st.tuples(_LINE_ENDS, _LINE_ENDS), min_size=1, max_size=4),
    st.lists(st.integers(min_value=1, max_value=200), max_size=8),
)
def test_any_line_ends_and_any_split_give_the_same_payloads(
    ends: list[tuple[bytes, bytes]], cuts: list[int]
) -> None:
    payloads = [f'{{"n": {n}}}'.encode() for n in range(len(ends))]
    wire = b"".join(
        b": hi" + a + b"data: " + p[:3] + a + b"data:" + p[3:] + b + b
        for p, (a, b) in zip(payloads, ends, strict=True)
    )
    points = sorted({c for c in cuts if c < len(wire)})
    reads = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]
    assert decode(reads) == [p[:3] + b"\n" + p[3:] for p in payloads]


# --- Retry-After --------------------------------------------------------------------------------


DATE = "Wed, 21 Oct 2026 07:28:00 GMT"
WHEN = datetime(2026, 10, 21, 7, 28, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("7", 7.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        (DATE, 30.0),
        ("Wed, 21 Oct 2026 07:28:00 -0000", 30.0),
        ("Wed, 21 Oct 2026 09:28:00 +0200", 30.0),
        ("Wed, 21 Oct 2026 07:27:00 GMT", 0.0),  # already past: never negative
        ("soon", None),
        ("inf", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(value: str | None, seconds: float | None) -> None:
    """Issue 10: a date used to be dropped (the default cooldown applied)."""
    assert retry_after_seconds(value, now=WHEN - 30) == seconds


def test_a_429_with_a_date_cools_down_until_that_date() -> None:
    error = error_from_status(429, ErrorDetail("slow down"), retry_after=DATE, now=WHEN - 90)
    assert isinstance(error, RateLimited) and error.retry_after_s == 90.0


def test_a_retry_after_header_wins_over_a_delay_in_the_body() -> None:
    detail = ErrorDetail("slow down", retry_after_s=27.0)
    assert error_from_status(429, detail, retry_after="3").retry_after_s == 3.0
    assert error_from_status(429, detail, retry_after="garbage").retry_after_s == 27.0
    assert error_from_status(429, detail).retry_after_s == 27.0


# --- error details: structured, read once ---------------------------------------------------------


def test_error_detail_reads_openai_bodies_and_whatever_else_comes() -> None:
    body = b'{"error": {"message": "nope", "code": "invalid_api_key"}}'
    assert error_detail(body) == ErrorDetail("nope", "invalid_api_key")
    assert error_detail(b'{"error": "flat"}') == ErrorDetail("flat")
    assert error_detail(b"<html>Bad Gateway</html>") == ErrorDetail("<html>Bad Gateway</html>")
    assert error_detail(b"") == ErrorDetail("no body")


def test_cohere_and_cloudflare_read_their_own_bodies_into_details() -> None:
    """Issue 10: these hooks used to write OpenAI JSON for the base class to parse again."""
    session: Any = None
    cohere = CohereUpstream(ProviderSettings("co", "cohere"), session)
    assert cohere._error_detail(b'{"message": "too many tokens: 9000"}') == ErrorDetail(
        "too many tokens: 9000", "context_length_exceeded"
    )
    assert cohere._error_detail(b'{"error": {"message": "m", "code": "c"}}') == ErrorDetail(
        "m", "c"
    )
    account, _ = CloudflareUpstream(ProviderSettings("cf", "cloudflare"), session)._account(
        f"{ACCOUNT}:t"
    )
    envelope = b'{"success": false, "errors": [{"code": 3040, "message": "Capacity"}]}'
    assert account._error_detail(envelope) == ErrorDetail("Capacity", "3040")


# --- one mapping of client errors ---------------------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        aiohttp.ClientConnectionError("refused"),
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientPayloadError("bad chunk"),
        ConnectionResetError("reset"),
        TimeoutError(),
    ],
)
@pytest.mark.parametrize(
    ("mid_stream", "kind"), [(False, ErrorKind.CONNECTION), (True, ErrorKind.TRUNCATED)]
)
def test_client_errors_become_unavailable_chained_to_the_cause(
    exc: Exception, mid_stream: bool, kind: ErrorKind
) -> None:
    with pytest.raises(Unavailable) as caught, map_client_errors(mid_stream=mid_stream):
        raise exc
    assert caught.value.kind == kind and caught.value.__cause__ is exc


@pytest.mark.parametrize(
    "exc", [WrappedError("inside", status=502), ValueError("a bug"), asyncio.CancelledError()]
)
def test_other_exceptions_pass_through_the_mapping(exc: BaseException) -> None:
    with pytest.raises(type(exc)) as caught, map_client_errors():
        raise exc
    assert caught.value is exc


def _settings(kind: str, base_url: str) -> ProviderSettings:
    return ProviderSettings(kind, kind, base_url)  # type: ignore[arg-type]


def _base_url(kind: str, port: int | None) -> str:
    assert port is not None
    if kind == "cloudflare":
        return f"http://127.0.0.1:{port}/accounts/{{account_id}}/ai/v1"
    return f"http://127.0.0.1:{port}/v1"


KEY = f"{ACCOUNT}:token"
HTTP_KINDS = ["openai", "cohere", "cloudflare", "gemini"]


async def _complete(upstream: Any, model: str) -> None:
    await upstream.complete(USER, ModelSettings("p", model), api_key=KEY)


async def _stream(upstream: Any, model: str) -> list[bytes]:
    out: list[bytes] = []
    async with upstream.stream(USER, ModelSettings("p", model), api_key=KEY) as chunks:
        async for batch in chunks:
            out += batch.payloads()
    return out


@pytest.mark.parametrize("kind", HTTP_KINDS)
@pytest.mark.parametrize("call", [_complete, _stream])
async def test_every_adapter_maps_an_unreachable_upstream_the_same_way(
    kind: str, call: Callable[[Any, str], Awaitable[object]]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with UpstreamClient() as session:
        upstream = make_upstream(_settings(kind, _base_url(kind, port)), session)
        with pytest.raises(Unavailable) as caught:
            await call(upstream, "m")
    assert caught.value.kind == ErrorKind.CONNECTION
    assert isinstance(caught.value.__cause__, aiohttp.ClientError | OSError)


# --- the one SSE loop, end to end ---------------------------------------------------------------


def _openai_chunk(text: str) -> bytes:
    return json.dumps({"choices": [{"index": 0, "delta": {"content": text}}]}).encode()


async def _wire(request: web.Request) -> web.StreamResponse:
    """A reply shaped as the model says; `/v1beta/...` paths speak Gemini's events."""
    model = request.path if "/v1beta/" in request.path else (await request.json())["model"]
    if model == "429-date":
        when = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
        error = {"error": {"message": "slow down"}}
        return web.json_response(error, status=429, headers={"Retry-After": when})
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    if "gemini-cr" in model:
        event = {"candidates": [{"content": {"parts": [{"text": "hi"}]}, "finishReason": "STOP"}]}
        await resp.write(b"data: " + json.dumps(event).encode() + b"\r\r")
    elif model == "multi-line":
        await resp.write(b'data: {"choices": [{"index": 0,\r\ndata:  "delta": {"content": "a"}}]}')
        await resp.write(b"\r\n\r\ndata: [DONE]\r\n\r\n")
    elif model == "drop":
        await resp.write(b"data: " + _openai_chunk("a") + b"\n\n")
        assert request.transport is not None
        request.transport.close()
        return resp
    await resp.write_eof()
    return resp


@pytest.fixture
async def wire() -> AsyncIterator[TestServer]:
    app = web.Application()
    app.router.add_post("/{tail:.*}", _wire)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


async def test_a_multi_line_event_reaches_the_client_as_one_chunk(wire: TestServer) -> None:
    async with UpstreamClient() as session:
        upstream = OpenAIUpstream(_settings("openai", _base_url("openai", wire.port)), session)
        payloads = await _stream(upstream, "multi-line")
    assert payloads[-1] == DONE
    assert json.loads(payloads[0]) == {"choices": [{"index": 0, "delta": {"content": "a"}}]}


async def test_a_gemini_stream_framed_with_lone_crs_is_read(wire: TestServer) -> None:
    async with UpstreamClient() as session:
        settings = ProviderSettings("g", "gemini", f"http://127.0.0.1:{wire.port}/v1beta")
        payloads = await _stream(make_upstream(settings, session), "gemini-cr")
    assert payloads[-1] == DONE and b'"content": "hi"' in payloads[0]


@pytest.mark.parametrize("kind", ["openai", "cohere", "cloudflare"])
async def test_a_connection_dropped_mid_stream_is_truncated(wire: TestServer, kind: str) -> None:
    async with UpstreamClient() as session:
        upstream = make_upstream(_settings(kind, _base_url(kind, wire.port)), session)
        seen: list[bytes] = []
        with pytest.raises(Unavailable) as caught:
            async with upstream.stream(USER, ModelSettings("p", "drop"), api_key=KEY) as chunks:
                async for batch in chunks:
                    seen += batch.payloads()
    assert caught.value.kind == ErrorKind.TRUNCATED and seen == [_openai_chunk("a")]


async def test_an_upstreams_retry_after_date_reaches_the_rate_limit(wire: TestServer) -> None:
    async with UpstreamClient() as session:
        upstream = OpenAIUpstream(_settings("openai", _base_url("openai", wire.port)), session)
        with pytest.raises(RateLimited) as caught:
            await _complete(upstream, "429-date")
    delay = caught.value.retry_after_s
    assert delay is not None and 3500 < delay <= 3600


# --- the registry and the import graph ----------------------------------------------------------


def test_the_registry_knows_every_configurable_kind() -> None:
    assert set(KINDS) == set(PROVIDER_KINDS)


@pytest.mark.parametrize("kind", sorted(PROVIDER_KINDS))
async def test_make_upstream_builds_the_adapter_its_registry_entry_names(kind: str) -> None:
    async with UpstreamClient() as session:
        upstream = make_upstream(_settings(kind, "http://127.0.0.1:9/v1"), session)
    module, _, name = KINDS[kind].partition(":")
    assert type(upstream).__module__ == module and type(upstream).__name__ == name
    assert upstream.name == kind


def test_an_unknown_kind_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown provider kind 'carrier-pigeon'"):
        make_upstream(_settings("carrier-pigeon", ""), cast(UpstreamClient, None))


LAZY = """
import sys
import aiohttp
import tui_gateway.providers as providers
import tui_gateway.server
from tui_gateway.config import ProviderSettings
family = ("gemini", "gemini_translate", "gemini_reply", "cohere", "cloudflare")
def loaded():
    return sorted(m for m in family if f"tui_gateway.providers.{m}" in sys.modules)
assert loaded() == [], loaded()
providers.make_upstream(ProviderSettings("o", "openai", "http://x/v1"), None)
providers.make_upstream(ProviderSettings("s", "simulated"), None)
assert loaded() == [], loaded()
providers.make_upstream(ProviderSettings("g", "gemini"), None)
assert loaded() == ["gemini", "gemini_reply", "gemini_translate"], loaded()
"""


def test_a_gateway_without_gemini_never_imports_the_gemini_modules() -> None:
    """Issue 10: `providers/__init__` imported every family at import time."""
    done = subprocess.run([sys.executable, "-c", LAZY], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _imports(path: Path) -> set[str]:
    """The sibling provider modules `path` imports, at any depth (TYPE_CHECKING blocks too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 1:
                names |= {module.split(".")[0]} if module else {a.name for a in node.names}
            elif module.startswith("tui_gateway.providers."):
                names.add(module.split(".")[2])
        elif isinstance(node, ast.Import):
            names |= {
                a.name.split(".")[2]
                for a in node.names
                if a.name.startswith("tui_gateway.providers.")
            }
    return names


def test_there_are_no_import_cycles_among_the_provider_modules() -> None:
    graph = {p.stem: _imports(p) for p in PROVIDERS.glob("*.py") if p.stem != "__init__"}
    assert graph["openai"].isdisjoint({"gemini", "gemini_translate", "gemini_reply"})

    def reach(start: str) -> set[str]:
        seen: set[str] = set()
        todo = list(graph.get(start, ()))
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo += graph.get(name, ())
        return seen

    assert [name for name in sorted(graph) if name in reach(name)] == []


def test_the_package_imports_no_family_module_at_import_time() -> None:
    families = {target.partition(":")[0].rsplit(".", 1)[1] for target in KINDS.values()}
    assert families == {"openai", "cohere", "cloudflare", "gemini", "simulated"}
    assert _imports(PROVIDERS / "__init__.py").isdisjoint(families)
