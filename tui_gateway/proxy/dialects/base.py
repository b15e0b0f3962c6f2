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
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from aiohttp import web

from ...providers.sse import DONE, SSEBatch
from ..errors import APIError
from ..validation import ChatCall

__all__ = [
    "END",
    "ChatCall",
    "ChunkEncoder",
    "Dialect",
    "StreamEncoder",
    "first_choice",
    "relayed_chunks",
    "tool_calls",
]

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


def first_choice(completion: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A whole `chat.completion`'s first choice and that choice's message, `{}` where missing.

    For the dialects whose replies hold one answer: any other choice is not read.
    """
    choices = completion.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else {}
    choice = choice if isinstance(choice, dict) else {}
    message = choice.get("message")
    return choice, message if isinstance(message, dict) else {}


def tool_calls(message: Mapping[str, Any]) -> Iterator[tuple[str | None, str, object]]:
    """The tool calls in a whole reply's message: (id, name, arguments as the upstream sent them).

    The id is None where the upstream sent none (the dialect makes its own); the name is "" where
    it sent none. A call without a `function` object is skipped.
    """
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        call_id, name = call.get("id"), function.get("name")
        yield (
            call_id if isinstance(call_id, str) and call_id else None,
            name if isinstance(name, str) else "",
            function.get("arguments"),
        )


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


class ChunkEncoder(ABC):
    """A `StreamEncoder` that reads each relayed chunk to say it in its dialect's own events.

    It holds the loop every such encoder runs on a relayed read: nothing once the stream has
    ended, the stream's opening events before anything else, then each chunk in order, and the
    closing `[DONE]` as the end of the reply. A subclass says what each of those sends.
    """

    __slots__ = ()

    _ended: bool
    """The stream's last event went out: nothing may follow."""

    def events(self, framed: bytes) -> bytes:
        if self._ended or not framed:
            return b""
        out: list[bytes] = []
        self._start(out)
        for chunk in relayed_chunks(framed):
            if chunk is END:
                self._end(out)
            else:
                self._chunk(out, chunk)
        return b"".join(out)

    @abstractmethod
    def _start(self, out: list[bytes]) -> None:
        """Append the stream's opening events, the first time only."""

    @abstractmethod
    def _chunk(self, out: list[bytes], chunk: dict[str, Any]) -> None:
        """Append what one relayed OpenAI chunk says."""

    @abstractmethod
    def _end(self, out: list[bytes]) -> None:
        """Append the end of the reply (at `[DONE]`), and mark the stream ended."""


class Dialect(Protocol):
    name: str
    """Recorded per request in the log and on the screen: chat, messages or responses."""

    id_headers: tuple[str, ...]
    """The headers that carry the request's id on every answer and error: `X-Request-Id`, and
    whatever other header this dialect's own SDK reads its `request_id` from."""

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
