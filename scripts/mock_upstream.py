"""An OpenAI-compatible fake upstream whose faults are chosen by the request's `model`.

The model string is `scenario` or `scenario:key=value,key=value`, for example
`ok:chunks=50`, `error-429:retry_after=2` or `stall-after-first:after=1,ms=300`.

Scenarios (unknown names behave like `ok`):

    ok                  normal reply. chunks=8, delay_ms=0, ttft_ms=0, text=<word>,
                        sentence=0 (N > 0 ends every Nth word with "."; see repeat-sentence)
    slow-first-token    ok with ttft_ms=3000
    long                ok with chunks=200
    error-NNN           HTTP NNN with an OpenAI-style error body (error-500, error-404, ...)
    error-429           HTTP 429 with Retry-After (retry_after=1), code rate_limit_exceeded
    context-length      HTTP 400, code context_length_exceeded
    wrapped-error       HTTP 200 whose body (or a stream event after `after`=0 chunks,
                        `delay_ms`=0 apart) is an error
    stall-before-first  no headers for `ms` (default 3600000), then the connection is dropped
    stall-after-first   stream: headers and `after`=1 chunks, then the same stall
    drop-mid-stream     stream: `after`=2 chunks, then the TCP connection is closed mid-body
    no-done             stream with a finish_reason chunk but without `data: [DONE]`
    cut                 stream that ends cleanly at HTTP level with no finish_reason and no [DONE]
    html-200            HTTP 200 with an HTML page instead of the API's reply
    malformed           stream with one event that is not JSON after `after`=1 chunks
    endless-event       stream: `after`=1 chunks, then one event that never ends (64 KB of
                        its data at a time, as fast as the client reads, until it leaves)
    tool-call           an assistant turn of tool calls (finish_reason `tool_calls`, content
                        null), streamed in OpenAI's fragments or whole in `message.tool_calls`.
                        name=<first offered tool, else get_weather>, calls=1 (parallel calls,
                        one after another), fragments=3 (argument pieces per call),
                        args={"path": "README.md"}, text=<none> (content before the calls),
                        delay_ms=0, ttft_ms=0, stall_after=0 (when > 0: silence after that
                        many chunks, mid-call). `args` is percent-decoded, so write its
                        commas as %2C (or encode it whole):
                        `tool-call:args={"path":"a.md"%2C"limit":5}`. When the last message
                        is a `tool` result it answers with text instead: "tool result received"

Continuations: a request whose messages end with an assistant message (prefill), or with an
assistant message and then a user message containing "cut off" (instruct), asks to continue that
assistant text, `sent`. Models of `ok`, `slow-first-token`, `long` and the faults that break an
answer (`stall-*`, `drop-mid-stream`, `no-done`, `cut`, `malformed`, `wrapped-error`,
`endless-event`) answer it from their full answer: the `chunks` words a fresh request to `ok`
gets (4 for `malformed`, 200 for `long`). The fault is played only to fresh requests; a
continuation is answered as `ok` would, so a faulty model can still be continued. Other
scenarios answer a continuation as any request. `continue=` says how:

    exact               (default) the rest of the answer after `sent`, cut into the same
                        chunks (the first is the rest of a word cut in half, or keeps its
                        leading space); the whole answer if it does not start with `sent`
    restart             the whole answer from its beginning
    repeat-word         the rest from the start of the last word `sent` holds whole
                        (`lorem ipsum dol` -> `ipsum dolor sit ...`)
    repeat-sentence     the rest from the start of `sent`'s last sentence (after its last
                        `. `, `! ` or `? `; all of `sent` if none, as with the default words)
    diverge             the answer's first `same`=2 words, then other words ("alpha bravo
                        ..."), as many as the answer has; it departs from `sent` only when
                        `sent` is longer than those words

`prefill=refuse` answers a prefill request HTTP 400 invalid_request_error (param `messages`),
as models without prefill do; it answers an instructed continuation normally. Each request's
style is recorded (`ReceivedRequest.continuation`).

Keys: a request whose `Authorization: Bearer KEY` names a rejected key gets a 401
`invalid_api_key` (`--reject-key KEY`, repeatable), a forbidden key a 403 `permission_denied`
(`--forbid-key KEY`), whatever its model, and so does `GET /v1/models` (a key check's call).
A slow key (`make_app(slow_keys={KEY: seconds})`, `--slow-key KEY=S`) waits that long before any
answer. Every chat request is recorded first, headers included; `GET /v1/models` records the
bearer key it came with (`LISTED`).

Run it with `python scripts/mock_upstream.py --port 0`; it prints one line,
`mock upstream listening on http://HOST:PORT/v1`, once bound.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import json
import signal
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # run as a script, `scripts` is not importable otherwise

from scripts import mock_continuation as cont  # noqa: E402  (the path above makes it importable)

__all__ = [
    "LISTED", "RECEIVED", "REFUSED_KEYS", "SLOW_KEYS", "ReceivedRequest", "make_app", "parse_model",
]  # fmt: skip

DEFAULT_STALL_MS = 3_600_000
# How often a stall looks at the socket; bounds how late a disconnect is noticed.
_POLL_S = 0.02
_WORDS = (
    "lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit",
    "sed", "do", "eiusmod", "tempor", "incididunt", "ut", "labore", "et",
)  # fmt: skip
_SCENARIOS = (
    "ok", "slow-first-token", "long", "error-500", "error-502", "error-503", "error-429",
    "context-length", "wrapped-error", "stall-before-first", "stall-after-first",
    "drop-mid-stream", "no-done", "cut", "html-200", "malformed", "tool-call",
)  # fmt: skip
_DONE = b"data: [DONE]\n\n"
_CHUNK_TAIL = b'},"logprobs":null,"finish_reason":null}]}\n\n'
_STOP = b'{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}\n\n'
_TOOL_STOP = b'{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}]}\n\n'
_DEFAULT_TOOL_ARGS = '{"path": "README.md"}'
_TOOL_RESULT_WORDS = ["ok,", "tool", "result", "received"]
_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
# Faults that break an answer: played to fresh requests only, a continuation gets `ok`'s reply.
_BREAKS_ANSWERS = frozenset({
    "stall-before-first", "stall-after-first", "drop-mid-stream", "no-done", "cut", "malformed",
    "wrapped-error", "endless-event",
})  # fmt: skip


@dataclass(slots=True)
class ReceivedRequest:
    """One request as the mock saw it, for tests to inspect."""

    model: str
    """The `model` field exactly as sent, parameters included."""
    stream: bool
    headers: dict[str, str]
    body: dict[str, Any]
    disconnected: bool = False
    """Set when the client went away while the mock was stalling or streaming."""
    continuation: cont.Style | None = None
    """How the request asked to continue an answer (`prefill`, `instruct`), None if fresh."""


RECEIVED = web.AppKey("received", list[ReceivedRequest])
REFUSED_KEYS = web.AppKey("refused_keys", dict[str, int])
"""Bearer key -> the status (401 or 403) every request sent with it gets; tests may change it."""
SLOW_KEYS = web.AppKey("slow_keys", dict[str, float])
"""Bearer key -> seconds every request sent with it waits before its answer; tests may change it."""
LISTED = web.AppKey("listed", list[str])
"""The bearer key of each `GET /v1/models`, in order ("" without one)."""
_IDS: web.AppKey[itertools.count[int]] = web.AppKey("ids")


class _BadParam(ValueError):
    pass


def parse_model(model: str) -> tuple[str, dict[str, str]]:
    """Split `scenario:key=value,...` into the scenario and its parameters."""
    name, _, raw = model.partition(":")
    params: dict[str, str] = {}
    for item in raw.split(","):
        key, sep, value = item.partition("=")
        if sep:
            params[key.strip()] = value.strip()
    return name.strip(), params


def _int(params: dict[str, str], key: str, default: int) -> int:
    if key not in params:
        return default
    try:
        return int(params[key])
    except ValueError:
        raise _BadParam(f"mock: parameter {key}={params[key]!r} is not an integer") from None


def _error_body(
    message: str, *, type_: str, code: str | int | None, param: str | None = None
) -> bytes:
    err = {"message": message, "type": type_, "param": param, "code": code}
    return json.dumps({"error": err}).encode()


def _error_response(
    status: int, body: bytes, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


@functools.lru_cache(maxsize=4096)
def _encoded_piece(piece: str) -> bytes:
    # The JSON string for one chunk's content.
    return json.dumps(piece).encode()


class _Reply:
    """Pre-encoded pieces of one completion: the chunk head is built once per request."""

    __slots__ = ("cid", "created", "model", "pieces", "head")

    def __init__(
        self, cid: str, model: str, n_chunks: int, text: str | None, *, sentence: int = 0
    ) -> None:
        self.cid = cid
        self.created = int(time.time())
        self.model = model
        words = [text or _WORDS[i % len(_WORDS)] for i in range(max(n_chunks, 0))]
        if sentence > 0:
            words = [w + "." if (i + 1) % sentence == 0 else w for i, w in enumerate(words)]
        # Each chunk's content: a word, those after the first with their leading space.
        self.pieces = cont.spaced(words)
        self.head = (
            f'data: {{"id":"{cid}","object":"chat.completion.chunk","created":{self.created},'
            f'"model":{json.dumps(model)},"choices":['
        ).encode()

    def chunk(self, i: int) -> bytes:
        role = b'"role":"assistant",' if i == 0 else b""
        return b"".join(
            (self.head, b'{"index":0,"delta":{', role, b'"content":',
             _encoded_piece(self.pieces[i]), _CHUNK_TAIL)
        )  # fmt: skip

    def stop(self) -> bytes:
        return self.head + _STOP

    def usage_chunk(self, prompt_tokens: int, completion_tokens: int | None = None) -> bytes:
        usage = json.dumps(self.usage(prompt_tokens, completion_tokens), separators=(",", ":"))
        return self.head + b'],"usage":' + usage.encode() + b"}\n\n"

    def usage(self, prompt_tokens: int, completion_tokens: int | None = None) -> dict[str, int]:
        n = len(self.pieces) if completion_tokens is None else completion_tokens
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": n,
            "total_tokens": prompt_tokens + n,
        }

    def text(self) -> str:
        return "".join(self.pieces)

    def completion(self, prompt_tokens: int) -> bytes:
        message = {"role": "assistant", "content": self.text()}
        return json.dumps({
            "id": self.cid, "object": "chat.completion", "created": self.created,
            "model": self.model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
            ],
            "usage": self.usage(prompt_tokens),
        }, separators=(",", ":")).encode()  # fmt: skip


def _prompt_tokens(body: dict[str, Any]) -> int:
    # A rough word count is enough for a fake usage block.
    total = 0
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += len(content.split())
    return max(total, 1)


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _hold(request: web.Request, record: ReceivedRequest, seconds: float) -> bool:
    """Wait up to `seconds`; return True (and note it) if the client disconnected first.

    Polls the transport rather than relying on handler cancellation, which aiohttp only does
    when the runner has `handler_cancellation=True`.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    try:
        while (left := deadline - loop.time()) > 0:
            if _gone(request):
                record.disconnected = True
                return True
            await asyncio.sleep(min(left, _POLL_S))
    except asyncio.CancelledError:
        record.disconnected = True
        raise
    return False


def _abort(request: web.Request) -> None:
    # Closes the socket without a response or the rest of the body (FIN, not a clean EOF).
    if request.transport is not None:
        request.transport.abort()


async def _write_all(resp: web.StreamResponse, record: ReceivedRequest, parts: list[bytes]) -> bool:
    """Write `parts` in one go; return False if the client has gone."""
    try:
        await resp.write(b"".join(parts))
    except ConnectionError:
        record.disconnected = True
        return False
    return True


async def _write_paced(
    request: web.Request,
    resp: web.StreamResponse,
    record: ReceivedRequest,
    parts: list[bytes],
    delay_s: float,
) -> bool:
    """Write `parts` one at a time with `delay_s` between them; False if the client left."""
    if delay_s <= 0:
        return await _write_all(resp, record, parts)
    for i, part in enumerate(parts):
        if i and await _hold(request, record, delay_s):
            return False
        if not await _write_all(resp, record, [part]):
            return False
    return True


async def _start_stream(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers=_SSE_HEADERS)
    await resp.prepare(request)
    return resp


async def _finish(resp: web.StreamResponse, record: ReceivedRequest) -> web.StreamResponse:
    try:
        await resp.write_eof()
    except ConnectionError:
        record.disconnected = True
    return resp


class _Call:
    """Everything a scenario handler needs about one request."""

    __slots__ = ("request", "record", "params", "body", "continuing")

    def __init__(
        self,
        request: web.Request,
        record: ReceivedRequest,
        params: dict[str, str],
        continuing: cont.Continuing | None,
    ) -> None:
        self.request = request
        self.record = record
        self.params = params
        self.body = record.body
        self.continuing = continuing

    def make_reply(self, n: int) -> _Reply:
        ids = self.request.app[_IDS]
        cid = f"chatcmpl-mock{next(ids):012d}"
        sentence = _int(self.params, "sentence", 0)
        return _Reply(cid, self.record.model, n, self.params.get("text"), sentence=sentence)

    @property
    def include_usage(self) -> bool:
        """The client asked for a usage chunk (`usage=0` plays an upstream that ignores it)."""
        options = self.body.get("stream_options")
        asked = isinstance(options, dict) and bool(options.get("include_usage"))
        return asked and self.params.get("usage") != "0"


def _continue_mode(params: dict[str, str]) -> str:
    mode = params.get("continue", "exact")
    if mode not in cont.MODES:
        raise _BadParam(f"mock: parameter continue={mode!r} is not one of {', '.join(cont.MODES)}")
    return mode


async def _ok(
    call: _Call, *, ttft_ms: int = 0, chunks: int = 8, words: list[str] | None = None
) -> web.StreamResponse:
    reply = call.make_reply(_int(call.params, "chunks", chunks))
    if words is not None:
        reply.pieces = cont.spaced(words)
    elif call.continuing is not None:
        reply.pieces = cont.reply_pieces(
            reply.pieces,
            call.continuing.sent,
            _continue_mode(call.params),
            same=_int(call.params, "same", 2),
        )
    ttft_s = _int(call.params, "ttft_ms", ttft_ms) / 1000
    delay_s = _int(call.params, "delay_ms", 0) / 1000
    prompt = _prompt_tokens(call.body)
    if not call.record.stream:
        # Non-streaming waits as long as the stream would have taken in total.
        wait_s = ttft_s + delay_s * max(len(reply.pieces) - 1, 0)
        if wait_s > 0 and await _hold(call.request, call.record, wait_s):
            return web.Response()
        return web.Response(body=reply.completion(prompt), content_type="application/json")
    if ttft_s > 0 and await _hold(call.request, call.record, ttft_s):
        return web.Response()
    resp = await _start_stream(call.request)
    parts = [reply.chunk(i) for i in range(len(reply.pieces))]
    parts.append(reply.stop())
    if call.include_usage:
        parts.append(reply.usage_chunk(prompt))
    parts.append(_DONE)
    if not await _write_paced(call.request, resp, call.record, parts, delay_s):
        return resp
    return await _finish(resp, call.record)


async def _error(call: _Call, status: int) -> web.Response:
    if status == 429:
        retry = str(_int(call.params, "retry_after", 1))
        body = _error_body("mock: rate limit reached", type_="requests", code="rate_limit_exceeded")
        return _error_response(429, body, {"Retry-After": retry})
    type_ = "server_error" if status >= 500 else "invalid_request_error"
    body = _error_body(f"mock: upstream error {status}", type_=type_, code=None)
    return _error_response(status, body)


async def _context_length(call: _Call) -> web.Response:
    message = (
        "This model's maximum context length is 8192 tokens. However, your messages "
        "resulted in 12000 tokens. Please reduce the length of the messages."
    )
    body = _error_body(
        message, type_="invalid_request_error", code="context_length_exceeded", param="messages"
    )
    return _error_response(400, body)


async def _wrapped_error(call: _Call) -> web.StreamResponse:
    error = {"error": {"message": "mock: provider returned error", "code": 503}}
    if not call.record.stream:
        return web.json_response(error)
    reply = call.make_reply(_int(call.params, "after", 0))
    resp = await _start_stream(call.request)
    parts = [reply.chunk(i) for i in range(len(reply.pieces))]
    parts.append(b"data: " + json.dumps(error).encode() + b"\n\n")
    delay_s = _int(call.params, "delay_ms", 0) / 1000
    if not await _write_paced(call.request, resp, call.record, parts, delay_s):
        return resp
    return await _finish(resp, call.record)


async def _stall_before_first(call: _Call) -> web.Response:
    if not await _hold(call.request, call.record, _int(call.params, "ms", DEFAULT_STALL_MS) / 1000):
        _abort(call.request)
    return web.Response()


async def _stall_after_first(call: _Call) -> web.StreamResponse:
    if not call.record.stream:
        return await _stall_before_first(call)
    reply = call.make_reply(_int(call.params, "after", 1))
    resp = await _start_stream(call.request)
    if not await _write_all(resp, call.record, [reply.chunk(i) for i in range(len(reply.pieces))]):
        return resp
    if not await _hold(call.request, call.record, _int(call.params, "ms", DEFAULT_STALL_MS) / 1000):
        _abort(call.request)
    return resp


async def _drop_mid_stream(call: _Call) -> web.StreamResponse:
    if not call.record.stream:
        _abort(call.request)
        return web.Response()
    reply = call.make_reply(_int(call.params, "after", 2))
    resp = await _start_stream(call.request)
    if await _write_all(resp, call.record, [reply.chunk(i) for i in range(len(reply.pieces))]):
        _abort(call.request)
    return resp


async def _endless_event(call: _Call) -> web.StreamResponse:
    reply = call.make_reply(_int(call.params, "after", 1))
    resp = await _start_stream(call.request)
    parts = [reply.chunk(i) for i in range(len(reply.pieces))] + [b'data: {"x": "']
    filler = b"x" * 65536
    try:
        while await _write_all(resp, call.record, parts):
            if _gone(call.request):
                call.record.disconnected = True
                break
            parts = [filler]
    except asyncio.CancelledError:  # the runner cancels the handler of a client gone
        call.record.disconnected = True
        raise
    return resp


async def _truncated(call: _Call, *, with_stop: bool) -> web.StreamResponse:
    """A stream that ends at HTTP level without [DONE] (and without finish_reason if cut)."""
    if not call.record.stream:
        return await _ok(call)
    reply = call.make_reply(_int(call.params, "chunks", 8))
    resp = await _start_stream(call.request)
    parts = [reply.chunk(i) for i in range(len(reply.pieces))]
    if with_stop:
        parts.append(reply.stop())
        if call.include_usage:
            parts.append(reply.usage_chunk(_prompt_tokens(call.body)))
    if not await _write_all(resp, call.record, parts):
        return resp
    return await _finish(resp, call.record)


async def _malformed(call: _Call) -> web.StreamResponse:
    """A normal stream with one event that is not JSON after `after` (default 1) chunks."""
    if not call.record.stream:
        return await _ok(call)
    reply = call.make_reply(_int(call.params, "chunks", 4))
    resp = await _start_stream(call.request)
    parts = [reply.chunk(i) for i in range(len(reply.pieces))]
    parts.insert(_int(call.params, "after", 1), b"data: {not json\n\n")
    parts += [reply.stop(), _DONE]
    if not await _write_all(resp, call.record, parts):
        return resp
    return await _finish(resp, call.record)


def _after_tool_result(body: dict[str, Any]) -> bool:
    messages = body.get("messages")
    return (
        isinstance(messages, list)
        and bool(messages)
        and isinstance(messages[-1], dict)
        and messages[-1].get("role") == "tool"
    )


def _tool_name(call: _Call) -> str:
    """`name=`, else the first offered function tool's name, else `get_weather`."""
    if call.params.get("name"):
        return call.params["name"]
    tools = call.body.get("tools")
    first = tools[0] if isinstance(tools, list) and tools else None
    function = first.get("function") if isinstance(first, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    return name if isinstance(name, str) and name else "get_weather"


def _tool_args(params: dict[str, str]) -> str:
    """The arguments JSON exactly as given (percent-decoded), checked to be an object."""
    raw = params.get("args")
    if raw is None:
        return _DEFAULT_TOOL_ARGS
    text = urllib.parse.unquote(raw)
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise _BadParam(
            f"mock: parameter args={raw!r} is not a JSON object (write its commas as %2C)"
        )
    return text


def _fragments(text: str, n: int) -> list[str]:
    """`text` cut into `n` non-empty pieces of near-equal length (fewer if it is shorter)."""
    n = max(1, min(n, len(text)))
    bounds = [len(text) * k // n for k in range(n + 1)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def _delta_chunk(reply: _Reply, delta: dict[str, Any]) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
    return reply.head + json.dumps(choice, separators=(",", ":")).encode() + b"]}\n\n"


async def _tool_call(call: _Call) -> web.StreamResponse:
    """Tool calls, or a text answer once the conversation ends with a tool result."""
    if _after_tool_result(call.body):
        return await _ok(call, words=_TOOL_RESULT_WORDS)
    name, args = _tool_name(call), _tool_args(call.params)
    text = call.params.get("text") or None
    ids = call.request.app[_IDS]
    seq = next(ids)
    reply = _Reply(f"chatcmpl-mock{seq:012d}", call.record.model, 0, None)
    call_ids = [f"call_{seq}_{i}" for i in range(max(_int(call.params, "calls", 1), 1))]
    # A rough count, as for text: about four characters of arguments to a token.
    completion_tokens = len(call_ids) * max(len(args) // 4, 1) + len((text or "").split())
    prompt = _prompt_tokens(call.body)
    ttft_s = _int(call.params, "ttft_ms", 0) / 1000
    delay_s = _int(call.params, "delay_ms", 0) / 1000
    if not call.record.stream:
        if ttft_s > 0 and await _hold(call.request, call.record, ttft_s):
            return web.Response()
        calls = [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
            for cid in call_ids
        ]
        message = {"role": "assistant", "content": text, "tool_calls": calls}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "tool_calls"}
        return web.json_response({
            "id": reply.cid, "object": "chat.completion", "created": reply.created,
            "model": reply.model, "choices": [choice],
            "usage": reply.usage(prompt, completion_tokens),
        })  # fmt: skip
    parts: list[bytes] = []
    if text:
        parts.append(_delta_chunk(reply, {"role": "assistant", "content": text}))
    fragments = _fragments(args, _int(call.params, "fragments", 3))
    for i, cid in enumerate(call_ids):
        function = {"name": name, "arguments": ""}
        delta: dict[str, Any] = {
            "tool_calls": [{"index": i, "id": cid, "type": "function", "function": function}]
        }
        if not parts:
            delta = {"role": "assistant", "content": None} | delta
        parts.append(_delta_chunk(reply, delta))
        parts += [
            _delta_chunk(reply, {"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
            for piece in fragments
        ]
    parts.append(reply.head + _TOOL_STOP)
    if call.include_usage:
        parts.append(reply.usage_chunk(prompt, completion_tokens))
    parts.append(_DONE)
    if ttft_s > 0 and await _hold(call.request, call.record, ttft_s):
        return web.Response()
    resp = await _start_stream(call.request)
    stall_after = _int(call.params, "stall_after", 0)
    if stall_after > 0:  # the fault: silence in the middle of the calls, after that many chunks
        if await _write_all(resp, call.record, parts[:stall_after]):
            if not await _hold(call.request, call.record, DEFAULT_STALL_MS / 1000):
                _abort(call.request)
        return resp
    if not await _write_paced(call.request, resp, call.record, parts, delay_s):
        return resp
    return await _finish(resp, call.record)


def _refuses_prefill(call: _Call) -> web.Response | None:
    """The 400 of a model without prefill (`prefill=refuse`) for a prefill request, else None."""
    refuse = call.params.get("prefill", "accept")
    if refuse not in ("accept", "refuse"):
        raise _BadParam(f"mock: parameter prefill={refuse!r} is not accept or refuse")
    if refuse == "accept" or call.continuing is None or call.continuing.style != "prefill":
        return None
    body = _error_body(
        cont.PREFILL_REFUSAL, type_="invalid_request_error", code=None, param="messages"
    )
    return _error_response(400, body)


async def _dispatch(call: _Call, scenario: str) -> web.StreamResponse:
    _continue_mode(call.params)  # a bad value is a 400 even on a fresh request
    refused = _refuses_prefill(call)
    if refused is not None:
        return refused
    if call.continuing is not None and scenario in _BREAKS_ANSWERS:
        return await _ok(call, chunks=4 if scenario == "malformed" else 8)
    match scenario:
        case "slow-first-token":
            return await _ok(call, ttft_ms=3000)
        case "long":
            return await _ok(call, chunks=200)
        case "context-length":
            return await _context_length(call)
        case "wrapped-error":
            return await _wrapped_error(call)
        case "stall-before-first":
            return await _stall_before_first(call)
        case "stall-after-first":
            return await _stall_after_first(call)
        case "drop-mid-stream":
            return await _drop_mid_stream(call)
        case "no-done":
            return await _truncated(call, with_stop=True)
        case "cut":
            return await _truncated(call, with_stop=False)
        case "malformed":
            return await _malformed(call)
        case "endless-event" if call.record.stream:
            return await _endless_event(call)
        case "tool-call":
            return await _tool_call(call)
        case "html-200":
            # A proxy or captive portal answering for the provider: 200, but not the API.
            return web.Response(text="<html><body>Service temporarily unavailable</body></html>",
                                content_type="text/html")  # fmt: skip
    status = scenario.removeprefix("error-")
    if status != scenario and status.isdigit() and 400 <= int(status) <= 599:
        return await _error(call, int(status))
    return await _ok(call)


def _bearer(request: web.Request) -> str:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    return key.strip() if scheme.lower() == "bearer" else ""


async def _refused_key(request: web.Request) -> web.Response | None:
    """The 401/403 for a request whose bearer key was rejected or forbidden, else None (after
    a slow key's wait)."""
    key = _bearer(request)
    if delay := request.app[SLOW_KEYS].get(key):
        await asyncio.sleep(delay)
    status = request.app[REFUSED_KEYS].get(key)
    if status == 401:
        body = _error_body(
            "Incorrect API key provided", type_="invalid_request_error", code="invalid_api_key"
        )
    elif status == 403:
        body = _error_body(
            "mock: this API key may not use this model",
            type_="invalid_request_error",
            code="permission_denied",
        )
    else:
        return None
    return _error_response(status, body)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """POST /v1/chat/completions: record the request, then play its scenario."""
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        err = _error_body(
            "mock: body is not a JSON object", type_="invalid_request_error", code=None
        )
        return _error_response(400, err)
    model = str(body.get("model") or "ok")
    continuing = cont.recognise(body.get("messages"))
    style = continuing.style if continuing is not None else None
    record = ReceivedRequest(
        model, body.get("stream") is True, dict(request.headers), body, continuation=style
    )
    request.app[RECEIVED].append(record)
    refused = await _refused_key(request)
    if refused is not None:
        return refused
    scenario, params = parse_model(model)
    try:
        return await _dispatch(_Call(request, record, params, continuing), scenario)
    except _BadParam as exc:
        return _error_response(400, _error_body(str(exc), type_="invalid_request_error", code=None))


async def list_models(request: web.Request) -> web.Response:
    """GET /v1/models: the scenario names (or a refused key's 401/403)."""
    request.app[LISTED].append(_bearer(request))
    refused = await _refused_key(request)
    if refused is not None:
        return refused
    data = [
        {"id": name, "object": "model", "created": 0, "owned_by": "mock"} for name in _SCENARIOS
    ]
    return web.json_response({"object": "list", "data": data})


async def stats(request: web.Request) -> web.Response:
    """GET /mock/stats: request counts per model string, and client disconnects seen."""
    received = request.app[RECEIVED]
    counts = Counter(r.model for r in received)
    disconnects = sum(r.disconnected for r in received)
    return web.json_response(
        {"total": len(received), "requests": dict(counts), "disconnects": disconnects}
    )


def make_app(
    *,
    rejected_keys: frozenset[str] = frozenset(),
    forbidden_keys: frozenset[str] = frozenset(),
    slow_keys: Mapping[str, float] | None = None,
) -> web.Application:
    """Build the mock upstream application; it starts nothing.

    Args:
        rejected_keys: Bearer keys answered with 401 `invalid_api_key`, as a revoked key is.
        forbidden_keys: Bearer keys answered with 403 `permission_denied`.
        slow_keys: Bearer key -> seconds each of its requests waits before it is answered.
    """
    app = web.Application()
    app[RECEIVED] = []
    app[REFUSED_KEYS] = {key: 401 for key in rejected_keys} | {key: 403 for key in forbidden_keys}
    app[SLOW_KEYS] = dict(slow_keys or {})
    app[LISTED] = []
    app[_IDS] = itertools.count()
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/mock/stats", stats)
    return app


async def serve(app: web.Application, host: str, port: int, *, banner: str) -> None:
    """Run `app` until SIGINT or SIGTERM, printing `<banner> listening on ...` once bound."""
    # A short shutdown_timeout: stalled handlers would otherwise hold exit for a minute.
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound_host, bound_port = runner.addresses[0][:2]
        print(f"{banner} listening on http://{bound_host}:{bound_port}/v1", flush=True)
        await _wait_for_signal()
    finally:
        await runner.cleanup()


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--reject-key", action="append", default=[], metavar="KEY",
        help="answer requests with this bearer key 401 invalid_api_key (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--forbid-key", action="append", default=[], metavar="KEY",
        help="answer requests with this bearer key 403 permission_denied (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--slow-key", action="append", default=[], metavar="KEY=S",
        help="answer requests with this bearer key only after S seconds (repeatable)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    slow = {key: float(s) for key, _, s in (item.rpartition("=") for item in args.slow_key)}
    app = make_app(
        rejected_keys=frozenset(args.reject_key),
        forbidden_keys=frozenset(args.forbid_key),
        slow_keys=slow,
    )
    asyncio.run(serve(app, args.host, args.port, banner="mock upstream"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
