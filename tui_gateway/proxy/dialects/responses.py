"""OpenAI Responses (`POST /v1/responses`, what Codex CLI speaks) over the internal chat call.

In: the request becomes a chat body (`responses_translate.py`).

`previous_response_id` restores a stored conversation (see `domain/response_store.py`): the
stored messages, then this request's input, with only this request's instructions in front.

Out: a `response` object (`responses_output.py`), whole here or as events by
`responses_stream.py`. Errors keep OpenAI's shape, which is the Responses API's own.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
from aiohttp import web

from ...config import ResponsesDialectSettings
from ...domain.response_store import Messages, ResponseStore, StoreCounts
from ..errors import APIError
from ..fields import optional_field
from ..validation import ChatCall, validate_chat
from .base import first_choice, tool_calls
from .responses_output import (
    ResponsesContext,
    assistant_message,
    function_item,
    message_item,
    response_json,
    usage_json,
)
from .responses_stream import ResponsesStream
from .responses_translate import to_chat

__all__ = ["ResponsesDialect"]


def _new_hex() -> str:
    return uuid.uuid4().hex


class ResponsesDialect:
    """The Responses door; it owns the store of responses a later request may continue.

    Args:
        settings: The store's TTL and cap.
        clock: The gateway's clock (stored responses expire on it).
        ids: New random hex for response, item and call ids (tests pass a counter).
    """

    name = "responses"
    id_headers: tuple[str, ...] = ("X-Request-Id",)

    def __init__(
        self,
        settings: ResponsesDialectSettings,
        *,
        clock: Callable[[], float],
        ids: Callable[[], str] = _new_hex,
    ) -> None:
        self.store = ResponseStore(ttl_s=settings.store_ttl_s, cap=settings.store_cap)
        self._clock = clock
        self._ids = ids

    def store_counts(self) -> StoreCounts:
        return self.store.counts(now=self._clock())

    def parse(self, body: dict[str, Any]) -> ChatCall:
        previous = optional_field(body, "previous_response_id", str, "a string")
        history: Messages = ()
        if previous is not None:
            found = self.store.get(previous, now=self._clock())
            if found is None:
                raise APIError(
                    400,
                    f"previous response '{previous[:100]}' is not stored here: it was never"
                    " stored (store: false), it expired, or it came from another gateway",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
            history = found
        chat, ctx = to_chat(
            body,
            history=history,
            response_id=f"resp_{self._ids()}",
            created_at=int(self._clock()),
        )
        call = validate_chat(chat)
        return msgspec.structs.replace(call, dialect=self.name, context=ctx)

    def reply(self, call: ChatCall, completion: bytes) -> bytes:
        ctx: ResponsesContext = call.context
        try:
            parsed = json.loads(completion)
        except ValueError:
            parsed = {}
        parsed = parsed if isinstance(parsed, dict) else {}
        choice, message = first_choice(parsed)
        content = message.get("content")
        text = content if isinstance(content, str) else ""
        length = choice.get("finish_reason") == "length"
        status = "incomplete" if length else "completed"
        output: list[dict[str, Any]] = []
        if text:
            output.append(message_item(f"msg_{self._ids()}", text, status=status))
        calls: list[tuple[str, str, str]] = []
        for upstream_id, name, arguments in tool_calls(message):
            call_id = upstream_id or f"call_{self._ids()}"
            args = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
            calls.append((call_id, name, args))
            output.append(function_item(
                ctx, f"fc_{self._ids()}", call_id=call_id, name=name, arguments=args,
                status=status,
            ))  # fmt: skip
        response = response_json(
            ctx,
            status=status,
            output=output,
            usage=usage_json(parsed.get("usage")),
            incomplete_reason="max_output_tokens" if length else None,
        )
        if ctx.store:
            self.remember(ctx, assistant_message(text, calls))
        return json.dumps(response, separators=(",", ":")).encode()

    def encoder(self, call: ChatCall, request_id: str) -> ResponsesStream:
        return ResponsesStream(call.context, ids=self._ids, remember=self.remember)

    def error_response(self, error: APIError) -> web.Response:
        return error.response()

    def remember(self, ctx: ResponsesContext, assistant: dict[str, Any]) -> None:
        """Store the conversation a reply ended (instructions left out: each turn sends its own)."""
        self.store.put(ctx.response_id, (*ctx.conversation, assistant), now=self._clock())
