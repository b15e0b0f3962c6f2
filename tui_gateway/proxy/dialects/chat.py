"""OpenAI chat completions: the internal call's own format, so every step is the identity."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import APIError
from ..validation import ChatCall, validate_chat

KEEPALIVE = b": keep-alive\n\n"


class ChatStream:
    """Relayed bytes go out untouched: the hot path pays one method call per read."""

    __slots__ = ()

    def events(self, framed: bytes) -> bytes:
        return framed

    def keepalive(self) -> bytes:
        return KEEPALIVE

    def failed(self, error: APIError) -> bytes:
        return error.sse_event()


CHAT_STREAM = ChatStream()


class ChatDialect:
    name = "chat"
    id_headers: tuple[str, ...] = ("X-Request-Id",)

    def parse(self, body: dict[str, Any]) -> ChatCall:
        return validate_chat(body)

    def reply(self, call: ChatCall, completion: bytes) -> bytes:
        return completion

    def encoder(self, call: ChatCall, request_id: str) -> ChatStream:
        return CHAT_STREAM

    def error_response(self, error: APIError) -> web.Response:
        return error.response()


CHAT = ChatDialect()
