"""Hostile input from a client: every answer is a 200 or a JSON 4xx, and the log keeps working.

Regression tests for issue 8 ("No request can cost the log a row or the gateway a 500"). Most
cases need bytes no client library will send (a lone surrogate escape, a non-UTF-8 header), so
they go over a raw socket.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import signal
import sqlite3
import zlib
from pathlib import Path
from typing import Any

import pytest

from scripts.fuzz_gateway import CHAT_PATH, HostileRequest
from scripts.fuzz_gateway import send as send_sync
from tests.conftest import GatewayFactory
from tests.factories import API_KEY, headless_gateway, make_settings, model
from tests.logged import logged
from tui_gateway.server import Gateway

GOOD = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "hi"}]}).encode()


async def raw_exchange(gateway: Gateway, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `request` as-is on a fresh connection; return status, headers and body."""
    reader, writer = await asyncio.open_connection(gateway.host, gateway.port)
    try:
        writer.write(request)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def http_post(
    body: bytes,
    *,
    path: bytes = b"/v1/chat/completions",
    auth: bytes = b"Bearer " + API_KEY.encode(),
    extra: bytes = b"",
) -> bytes:
    return (
        b"POST " + path + b" HTTP/1.1\r\nHost: gateway\r\nAuthorization: " + auth
        + b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode()
        + b"\r\nConnection: close\r\n" + extra + b"\r\n" + body
    )  # fmt: skip


async def send(gateway: Gateway, request: bytes) -> tuple[int, dict[str, Any]]:
    """Status and the JSON error (or reply) body; fails the test if the body is not JSON."""
    status, headers, body = await raw_exchange(gateway, request)
    assert headers.get("content-type", "").startswith("application/json"), (status, body[:200])
    return status, json.loads(body)


@pytest.fixture
async def gateway(gateway_factory: GatewayFactory, mock_url: str) -> Gateway:
    return await gateway_factory(make_settings(mock_url, [model("mock", "ok")]))


async def assert_log_still_writes(gateway: Gateway) -> None:
    """The next valid request gets its row: the log writer survived whatever came before."""
    status, _ = await send(gateway, http_post(GOOD))
    assert status == 200
    await gateway.request_log.flush()
    newest = await logged(gateway.request_log, 1)
    assert newest and newest[0].status == 200 and newest[0].error is None
    assert not gateway.request_log.health().failing


NESTED = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"model":"auto","messages":' + NESTED + b"}", None),
        (GOOD[:-1] + b',"metadata":{"a":' + b"[" * 80 + b"]" * 80 + b"}}", "metadata.a"),
    ],
    ids=["past-the-parser-limit", "past-the-gateway-limit"],
)
async def test_deeply_nested_json_is_a_400_not_a_500(
    gateway: Gateway, body: bytes, param: str | None
) -> None:
    status, error = await send(gateway, http_post(body))
    assert status == 400
    assert "nested too deeply" in error["error"]["message"]
    if param is not None:
        assert error["error"]["param"].startswith(param)
    await assert_log_still_writes(gateway)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"model":"\\udfff","messages":[{"role":"user","content":"hi"}]}', "model"),
        (
            b'{"model":"auto","messages":[{"role":"user","content":"hi \\ud800"}]}',
            "messages[0].content",
        ),
        (
            b'{"model":"auto","messages":[{"role":"user","content":[{"type":"text","text":"\\udc00 x"}]}]}',
            "messages[0].content[0].text",
        ),
        (
            b'{"model":"auto","messages":[{"role":"user","content":"hi"}],"metadata":{"\\udfff":1}}',
            "metadata",
        ),
    ],
    ids=["model", "content", "content-part", "key"],
)
async def test_a_lone_surrogate_is_a_400_naming_the_field(
    gateway: Gateway, body: bytes, param: str
) -> None:
    """A `\\udfff` in `model` used to crash the log writer for the rest of the run."""
    status, error = await send(gateway, http_post(body))
    assert status == 400
    assert error["error"]["param"] == param
    assert "surrogate" in error["error"]["message"]
    await assert_log_still_writes(gateway)


async def test_an_escaped_surrogate_pair_is_text_and_goes_through(
    gateway: Gateway, mock_upstream: Any
) -> None:
    body = b'{"model":"auto","messages":[{"role":"user","content":"smile \\ud83d\\ude00"}]}'
    status, reply = await send(gateway, http_post(body))
    assert status == 200 and reply["object"] == "chat.completion"


@pytest.mark.parametrize(
    ("message", "param"),
    [
        ({"role": ["user"], "content": "hi"}, "messages[0].role"),
        ({"role": {"a": 1}, "content": "hi"}, "messages[0].role"),
        ({"role": 7, "content": "hi"}, "messages[0].role"),
        ({"role": "user", "content": 5}, "messages[0].content"),
        ({"role": "user", "content": [{"type": "text", "text": 5}]}, "messages[0].content[0].text"),
        (
            {"role": "user", "content": [{"type": "text", "text": ["a"]}]},
            "messages[0].content[0].text",
        ),
        ({"role": "user", "content": ["hi"]}, "messages[0].content[0]"),
        ({"role": "user", "content": [{"text": "no type"}]}, "messages[0].content[0].type"),
        (
            {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": 3}}]},
            "messages[0].tool_calls[0].function.name",
        ),
        ({"role": "assistant", "content": None, "tool_calls": {"a": 1}}, "messages[0].tool_calls"),
    ],
)
async def test_a_field_of_the_wrong_type_is_a_400_naming_it(
    gateway: Gateway, message: dict[str, Any], param: str
) -> None:
    body = json.dumps({"model": "auto", "messages": [message]}).encode()
    status, error = await send(gateway, http_post(body))
    assert status == 400, error
    assert error["error"]["param"] == param


@pytest.mark.parametrize(
    ("field", "value"),
    [("tools", {"a": 1}), ("tools", [{"type": "function", "function": "x"}]), ("stop", [1]),
     ("stream_options", []), ("stream_options", {"include_usage": "yes"}), ("n", 10_000),
     ("tool_choice", 3), ("seed", "1"), ("model", "m" * 300)],
)  # fmt: skip
async def test_top_level_fields_the_gateway_reads_are_checked(
    gateway: Gateway, field: str, value: Any
) -> None:
    body = json.dumps(
        {"model": "auto", "messages": [{"role": "user", "content": "hi"}], field: value}
    ).encode()
    status, error = await send(gateway, http_post(body))
    assert status == 400
    assert error["error"]["param"].startswith(field)


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
async def test_non_json_number_literals_are_refused(gateway: Gateway, literal: bytes) -> None:
    body = GOOD[:-1] + b',"metadata":{"x":' + literal + b"}}"
    status, error = await send(gateway, http_post(body))
    assert status == 400 and error["error"]["code"] == "invalid_json"


async def test_a_body_that_is_not_utf8_is_a_400(gateway: Gateway) -> None:
    body = b'{"model":"auto","messages":[{"role":"user","content":"\xff\xfe"}]}'
    status, error = await send(gateway, http_post(body))
    assert status == 400 and "UTF-8" in error["error"]["message"]


@pytest.mark.parametrize("encoding", [b"gzip", b"deflate"])
async def test_a_content_encoding_the_body_does_not_match_is_a_json_400(
    gateway: Gateway, encoding: bytes
) -> None:
    status, error = await send(
        gateway, http_post(GOOD, extra=b"Content-Encoding: " + encoding + b"\r\n")
    )
    assert status == 400
    assert "Content-Encoding" in error["error"]["message"]
    await assert_log_still_writes(gateway)


@pytest.mark.parametrize(
    ("encoding", "compress"), [(b"gzip", gzip.compress), (b"deflate", zlib.compress)]
)
async def test_a_really_compressed_body_is_read(
    gateway: Gateway, encoding: bytes, compress: Any
) -> None:
    request = http_post(compress(GOOD), extra=b"Content-Encoding: " + encoding + b"\r\n")
    status, reply = await send(gateway, request)
    assert status == 200 and reply["object"] == "chat.completion"


async def test_a_content_encoding_the_server_cannot_decode_is_a_json_400(
    gateway: Gateway,
) -> None:
    """aiohttp answers this one itself while parsing, before any middleware."""
    status, error = await send(gateway, http_post(GOOD, extra=b"Content-Encoding: br\r\n"))
    assert status == 400 and error["error"]["code"] == "malformed_request"


async def test_a_request_that_is_not_http_gets_a_json_400(gateway: Gateway) -> None:
    status, error = await send(gateway, b"GARBAGE / HTTP/1.1\r\n\r\n")
    assert status == 400 and error["error"]["code"] == "malformed_request"


@pytest.mark.parametrize(
    ("value", "path"),
    [(b"200-ok", b"/v1/chat/completions"), (b"\xff\xfe", b"/v1/chat/completions"),
     (b"200-ok", b"/no/such/route")],
    ids=["other-expectation", "not-utf8", "unknown-route"],
)  # fmt: skip
async def test_an_expect_header_other_than_100_continue_is_a_json_417(
    gateway: Gateway, value: bytes, path: bytes
) -> None:
    status, error = await send(
        gateway, http_post(GOOD, path=path, extra=b"Expect: " + value + b"\r\n")
    )
    assert status == 417 and error["error"]["code"] == "expectation_failed"


async def test_the_errors_aiohttp_answers_itself_come_in_the_messages_shape_there(
    gateway: Gateway,
) -> None:
    """Claude Code's door answers in Anthropic's shape even before any middleware runs: an
    Expect it cannot meet, a header byte HTTP does not allow, a body it cannot decode."""
    body = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": []}).encode()
    for extra, status in [
        (b"Expect: 200-ok\r\n", 417),
        (b"X-Odd: \x00\r\n", 400),
        (b"Content-Encoding: br\r\n", 400),
    ]:
        answer = await send(gateway, http_post(body, path=b"/v1/messages", extra=extra))
        assert answer[0] == status, (extra, answer)
        assert answer[1]["type"] == "error", (extra, answer)
        assert (
            answer[1]["error"]["type"] == "invalid_request_error" and answer[1]["error"]["message"]
        )


async def test_expect_100_continue_still_works(gateway: Gateway) -> None:
    status, _, body = await raw_exchange(
        gateway, http_post(GOOD, extra=b"Expect: 100-continue\r\n")
    )
    assert status == 100 and b'"chat.completion"' in body


async def test_a_bearer_key_with_a_byte_that_is_not_utf8_is_a_401(gateway: Gateway) -> None:
    status, error = await send(gateway, http_post(GOOD, auth=b"Bearer \xff\xfe" + API_KEY.encode()))
    assert status == 401 and error["error"]["code"] == "invalid_api_key"


async def test_a_session_header_that_is_not_utf8_is_recorded_with_replacements(
    gateway: Gateway,
) -> None:
    """Such a header was answered 200 and then silently stopped the request log for good."""
    status, reply = await send(gateway, http_post(GOOD, extra=b"X-Session-Id: ab\xff\xfecd\r\n"))
    assert status == 200 and reply["object"] == "chat.completion"
    await gateway.request_log.flush()
    (row,) = await logged(gateway.request_log, 1)
    assert row.session == "ab\ufffd\ufffdcd"
    await assert_log_still_writes(gateway)


def test_after_the_requests_that_used_to_stop_the_log_one_sigterm_still_stops_the_gateway(
    tmp_path: Path,
) -> None:
    """Issue 8: after a `\\udfff` model or a non-UTF-8 session header, SIGTERM used to hang."""
    with headless_gateway(tmp_path) as (proc, url, db):
        base = url.removesuffix("/v1")
        surrogate_model = b'{"model":"\\udfff","messages":[{"role":"user","content":"hi"}]}'
        odd_session = HostileRequest("POST", CHAT_PATH, (("X-Session-Id", b"\xff\xfe"),), GOOD)
        bad_model = HostileRequest("POST", CHAT_PATH, (), surrogate_model)
        assert send_sync(base, "cli-key", bad_model).status == 400
        assert send_sync(base, "cli-key", odd_session).status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT status, session FROM requests ORDER BY started").fetchall()
    assert [status for status, _ in rows] == [400, 200]
    assert rows[1][1] == "\ufffd\ufffd"
