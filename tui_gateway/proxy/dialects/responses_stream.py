"""The Responses API's event stream: relayed OpenAI chunks as Responses events, item by item.

`ResponsesStream` turns the relayed OpenAI chunks into Responses events, each framed as
`event: NAME\\ndata: {"type": NAME, "sequence_number": n, ...}\\n\\n` with `n` counting from 0:

    response.created, response.in_progress
    per output item:  response.output_item.added
      a message:      response.content_part.added, response.output_text.delta...,
                      response.output_text.done, response.content_part.done
      a tool call:    response.function_call_arguments.delta..., .done
                      response.output_item.done (the whole item)
    response.completed (or response.incomplete, or response.failed)

Codex CLI resets its idle timer only on whole SSE events (comments do not count), reads each
finished item from `response.output_item.done` and fails a turn whose stream ends without
`response.completed`; the official SDK also insists on `response.created` first. So every
stream starts with `response.created`, a keep-alive is `response.in_progress` again (both
ignore it), and every stream ends with exactly one terminal event.

The JSON of the response and its items, shared with the whole reply, is `responses_output.py`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import APIError
from .base import ChunkEncoder
from .responses_output import (
    Remember,
    ResponsesContext,
    assistant_message,
    failure_error,
    function_item,
    message_item,
    response_json,
    text_part,
    usage_json,
)

__all__ = ["ResponsesStream"]


@dataclass(slots=True)
class _Text:
    index: int
    id: str
    parts: list[str] = field(default_factory=list)
    status: str = "in_progress"
    """Set when the item is done: completed, or incomplete when cut at max tokens."""

    def item(self, ctx: ResponsesContext, status: str | None = None) -> dict[str, Any]:
        return message_item(self.id, "".join(self.parts), status=status or self.status)


@dataclass(slots=True)
class _Call:
    index: int
    id: str
    call_id: str
    name: str
    parts: list[str] = field(default_factory=list)
    status: str = "in_progress"

    def item(self, ctx: ResponsesContext, status: str | None = None) -> dict[str, Any]:
        return function_item(
            ctx,
            self.id,
            call_id=self.call_id,
            name=self.name,
            arguments="".join(self.parts),
            status=status or self.status,
        )


class ResponsesStream(ChunkEncoder):
    """One streamed reply in Responses events; see the module docstring for the order.

    Args:
        ctx: The request being answered.
        ids: New random hex for item and call ids.
        remember: Stores the conversation once the reply is whole (not for a failed one).
    """

    def __init__(
        self, ctx: ResponsesContext, *, ids: Callable[[], str], remember: Remember
    ) -> None:
        self._ctx = ctx
        self._ids = ids
        self._remember = remember
        self._seq = 0
        self._started = False
        self._ended = False
        self._items: list[_Text | _Call] = []
        """Every output item so far, in output_index order."""
        self._text: _Text | None = None
        """The message item text goes into, while it is open."""
        self._calls: dict[int, _Call] = {}
        """Tool calls by their index in the chat stream."""
        self._finish: str | None = None
        self._usage: object = None
        self._in_progress = json.dumps(
            response_json(ctx, status="in_progress", output=[]), separators=(",", ":")
        ).encode()

    # --- the StreamEncoder protocol (`events` is ChunkEncoder's) -------------------------

    def keepalive(self) -> bytes:
        if self._ended:
            return b""
        if not self._started:
            out: list[bytes] = []
            self._start(out)
            return b"".join(out)
        return self._lifecycle("response.in_progress")

    def failed(self, error: APIError) -> bytes:
        if self._ended:
            return b""
        out: list[bytes] = []
        self._start(out)
        self._ended = True
        # What was finished stays so; what was still arriving is incomplete.
        output = [
            item.item(self._ctx, None if item.status != "in_progress" else "incomplete")
            for item in self._items
        ]
        response = response_json(
            self._ctx,
            status="failed",
            output=output,
            usage=usage_json(self._usage),
            error=failure_error(error),
        )
        out.append(self._event("response.failed", response=response))
        return b"".join(out)

    # --- chunks in ------------------------------------------------------------------------

    def _chunk(self, out: list[bytes], chunk: dict[str, Any]) -> None:
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # a Responses reply has one choice
            delta = choice.get("delta")
            if isinstance(delta, dict):
                content = delta.get("content")
                if isinstance(content, str) and content:
                    self._text_delta(out, content)
                for fragment in delta.get("tool_calls") or ():
                    if isinstance(fragment, dict):
                        self._call_delta(out, fragment)
            finish = choice.get("finish_reason")
            if isinstance(finish, str) and finish:
                self._finish = finish
                self._close(out)

    def _text_delta(self, out: list[bytes], text: str) -> None:
        item = self._text
        if item is None:
            item = self._text = _Text(len(self._items), f"msg_{self._ids()}")
            self._items.append(item)
            out.append(self._added(item.index, item.item(self._ctx)))
            out.append(self._event(
                "response.content_part.added", item_id=item.id, output_index=item.index,
                content_index=0, part=text_part(""),
            ))  # fmt: skip
        item.parts.append(text)
        out.append(self._event(
            "response.output_text.delta", item_id=item.id, output_index=item.index,
            content_index=0, delta=text, logprobs=[],
        ))  # fmt: skip

    def _call_delta(self, out: list[bytes], fragment: dict[str, Any]) -> None:
        index = fragment.get("index", 0)
        index = index if isinstance(index, int) else 0
        function = fragment.get("function")
        function = function if isinstance(function, dict) else {}
        name = function.get("name")
        call = self._calls.get(index)
        if call is None:
            self._close_text(out)  # text comes before the calls, as OpenAI streams them
            call_id = fragment.get("id")
            call = _Call(
                len(self._items),
                f"fc_{self._ids()}",
                call_id if isinstance(call_id, str) and call_id else f"call_{self._ids()}",
                name if isinstance(name, str) else "",
            )
            self._calls[index] = call
            self._items.append(call)
            out.append(self._added(call.index, call.item(self._ctx)))
        elif not call.name and isinstance(name, str):
            call.name = name
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments and call.status == "in_progress":
            call.parts.append(arguments)
            out.append(self._event(
                "response.function_call_arguments.delta", item_id=call.id,
                output_index=call.index, delta=arguments,
            ))  # fmt: skip

    # --- items and the end ----------------------------------------------------------------

    def _status(self) -> str:
        return "incomplete" if self._finish == "length" else "completed"

    def _close_text(self, out: list[bytes]) -> None:
        item = self._text
        if item is None:
            return
        self._text = None
        item.status = self._status()
        text = "".join(item.parts)
        out.append(self._event(
            "response.output_text.done", item_id=item.id, output_index=item.index,
            content_index=0, text=text, logprobs=[],
        ))  # fmt: skip
        out.append(self._event(
            "response.content_part.done", item_id=item.id, output_index=item.index,
            content_index=0, part=text_part(text),
        ))  # fmt: skip
        out.append(self._done(item.index, item.item(self._ctx)))

    def _close(self, out: list[bytes]) -> None:
        """Finish every open item: the answer is whole (or cut at max tokens)."""
        self._close_text(out)
        for call in self._calls.values():
            if call.status != "in_progress":
                continue
            call.status = self._status()
            item = call.item(self._ctx)
            out.append(self._event(
                "response.function_call_arguments.done", item_id=call.id,
                output_index=call.index, name=item["name"], arguments=item["arguments"],
            ))  # fmt: skip
            out.append(self._done(call.index, item))

    def _end(self, out: list[bytes]) -> None:
        self._close(out)
        self._ended = True
        output = [item.item(self._ctx) for item in self._items]
        length = self._finish == "length"
        response = response_json(
            self._ctx,
            status="incomplete" if length else "completed",
            output=output,
            usage=usage_json(self._usage),
            incomplete_reason="max_output_tokens" if length else None,
        )
        name = "response.incomplete" if length else "response.completed"
        out.append(self._event(name, response=response))
        if self._ctx.store:
            text = "".join("".join(i.parts) for i in self._items if isinstance(i, _Text))
            calls = [(c.call_id, c.name, "".join(c.parts)) for c in self._calls.values()]
            self._remember(self._ctx, assistant_message(text, calls))

    # --- framing --------------------------------------------------------------------------

    def _start(self, out: list[bytes]) -> None:
        if not self._started:
            self._started = True
            out.append(self._lifecycle("response.created"))
            out.append(self._lifecycle("response.in_progress"))

    def _lifecycle(self, name: str) -> bytes:
        """created / in_progress: the in-progress response, serialized once per stream."""
        head = f'event: {name}\ndata: {{"type":"{name}","sequence_number":{self._seq},'
        self._seq += 1
        return head.encode() + b'"response":' + self._in_progress + b"}\n\n"

    def _added(self, index: int, item: dict[str, Any]) -> bytes:
        return self._event("response.output_item.added", output_index=index, item=item)

    def _done(self, index: int, item: dict[str, Any]) -> bytes:
        return self._event("response.output_item.done", output_index=index, item=item)

    def _event(self, event: str, /, **fields: Any) -> bytes:
        data = {"type": event, "sequence_number": self._seq, **fields}
        self._seq += 1
        payload = json.dumps(data, separators=(",", ":"))
        return f"event: {event}\ndata: {payload}\n\n".encode()
