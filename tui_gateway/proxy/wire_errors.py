"""Errors aiohttp answers on its own, before any middleware runs, made JSON like the rest.

Two kinds escape `error_middleware`:

- an `Expect:` header other than `100-continue`: the router's expect handler runs before the
  middleware chain and raises `HTTPExpectationFailed` (a text/plain 417);
- a request aiohttp cannot parse (a bad request line or header, a `Content-Encoding` it cannot
  decode): the protocol answers it from `RequestHandler.handle_error` (a text/plain 400).

`install(runner)` wraps the server's request handler for the first and gives the server a
protocol whose `handle_error` answers in JSON for the second, each in the shape of the door the
request was for (Anthropic's on /v1/messages), as the middleware answers. aiohttp has no public
hook for either, so this leans on `web.Server.request_handler` and on subclassing
`web.RequestHandler`; tests/test_hostile_input.py sends both kinds over a raw socket and fails
if an upgrade breaks it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from aiohttp import web

from ..domain.text import clean_text
from .dialects import dialect_for_path
from .errors import APIError, http_exception_error

log = logging.getLogger("tui_gateway.proxy")

RawHandler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
"""What a `web.Server` calls per request (the application's whole handling)."""


def install(runner: web.AppRunner) -> None:
    """After `runner.setup()`, before any site starts: every error leaves as JSON."""
    server = runner.server
    assert server is not None, "call install() after runner.setup()"
    server.request_handler = _json_errors(server.request_handler)
    server.__class__ = _JsonErrorServer


def _json_errors(handler: RawHandler) -> RawHandler:
    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        expect = request.headers.get("Expect")
        if expect and expect.strip().lower() != "100-continue":
            # Answered here: aiohttp's own check builds a text reply (and fails on a non-UTF-8
            # byte in the header) before any middleware could shape it.
            error = http_exception_error(web.HTTPExpectationFailed(), request)
            return dialect_for_path(request.path).error_response(error)
        try:
            return await handler(request)
        except web.HTTPException as exc:  # the middlewares shape the rest; this is a backstop
            if exc.status < 400:
                raise
            return dialect_for_path(request.path).error_response(http_exception_error(exc, request))

    return handle


class _JsonErrorHandler(web.RequestHandler):
    __slots__ = ("_received",)

    def data_received(self, data: bytes) -> None:
        # Kept for `handle_error`: the only trace of where a request it cannot parse was going.
        self._received = data
        super().data_received(data)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            log.error("error handling a request", exc_info=exc)
        else:  # a client's malformed HTTP: its answer says what was wrong, no traceback needed
            log.debug("malformed request: %s", message)
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send an error")
        text = clean_text(message or HTTPStatus(status).phrase).strip().splitlines()
        reason = text[0] if text else HTTPStatus(status).phrase
        kind = "server_error" if status >= 500 else "invalid_request_error"
        detail = "internal gateway error" if status >= 500 else f"malformed HTTP request: {reason}"
        error = APIError(status, detail, type=kind, code="malformed_request")
        # A request aiohttp could not parse has none of its own (method UNKNOWN, path "/").
        unparsed = request.method == "UNKNOWN"
        path = _target(getattr(self, "_received", b"")) if unparsed else request.path
        response = dialect_for_path(path).error_response(error)
        response.force_close()
        return response


def _target(received: bytes) -> str:
    """The path on the request line that starts `received`, "/" if it holds none (a request
    whose line came in an earlier read is answered in the chat shape)."""
    line = received.split(b"\r\n", 1)[0].split(b" ")
    return line[1].decode("latin-1") if len(line) == 3 and line[1].startswith(b"/") else "/"


class _JsonErrorServer(web.Server):
    def __call__(self) -> web.RequestHandler:
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)
