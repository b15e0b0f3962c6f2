"""The seam between a client's API and the one router behind it.

A dialect is a front door. `parse` turns the client's request body into a `ChatCall`: an OpenAI
chat-completions body that routing, the relay, the watchdog, continuation, the log and the
screen all understand. On the way out, `reply` turns an upstream's chat completion back into the
client's JSON, and an encoder from `encoder` turns the relayed OpenAI chunk events into the
client's event stream, including its keep-alives and its way of saying that a stream failed.

The relay calls these and knows nothing else about a dialect; a dialect knows its own wire
format and nothing about routing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Protocol

from aiohttp import web

from ...providers.sse import DONE, SSEBatch
from ..errors import APIError
from ..validation import ChatCall

__all__ = ["END", "ChatCall", "Dialect", "StreamEncoder", "relayed_chunks"]

END = None
"""What `relayed_chunks` yields for the closing `[DONE]`."""


def relayed_chunks(framed: bytes) -> Iterator[dict[str, Any] | None]:
    """The OpenAI chunks in relayed bytes, parsed, then `END` if `[DONE]` closes them.

    For the encoders of dialects that must read each chunk to say it in their own events;
    anything that is not a JSON object is skipped (the relay drops such events already).
    """
    for payload in SSEBatch(framed, 0).payloads():
        if payload == DONE:
            yield END
            return
        try:
            chunk = json.loads(payload)
        except ValueError:
            continue
        if isinstance(chunk, dict):
            yield chunk


class StreamEncoder(Protocol):
    """One streamed reply in a dialect's events; it may keep state across calls."""

    def events(self, framed: bytes) -> bytes:
        """The client's bytes for relayed OpenAI events (`data: {...}\\n\\n`, maybe a final
        `data: [DONE]\\n\\n`); may be empty while a dialect waits for a whole block."""
        ...

    def keepalive(self) -> bytes:
        """What keeps the client's idle timer alive while the upstream is quiet."""
        ...

    def failed(self, error: APIError) -> bytes:
        """The last bytes of a stream that broke after its headers went out."""
        ...


class Dialect(Protocol):
    name: str
    """Recorded per request in the log and on the screen: chat, messages or responses."""

    def parse(self, body: dict[str, Any]) -> ChatCall:
        """The client's request as an internal chat call; raises APIError (400) if it is bad."""
        ...

    def reply(self, call: ChatCall, completion: bytes) -> bytes:
        """The client's JSON for an upstream's whole `chat.completion` (non-streaming)."""
        ...

    def encoder(self, call: ChatCall, request_id: str) -> StreamEncoder:
        """A new encoder for one streamed reply."""
        ...

    def error_response(self, error: APIError) -> web.Response:
        """An error in the dialect's own shape, before anything else was sent."""
        ...
