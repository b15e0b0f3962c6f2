"""Anthropic Messages (`POST /v1/messages`, Claude Code's API) as a front door.

`parse` translates the request into an OpenAI chat body (see `messages_translate`) and maps the
client's model name through `[dialects.anthropic] models`; the `MessagesContext` it leaves on the
call (the client's model name, the input estimate, the stop sequences) is what `reply` and the
stream encoder (`messages_stream`) need to answer in Anthropic's shape. `count_tokens` answers
with the same estimate (`messages_estimate`). Errors come as
`{"type": "error", "error": {"type", "message"}}` (see `error_type` for the mapping).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

import msgspec
from aiohttp import web

from ...config import VIRTUAL_MODEL_NAMES, AnthropicDialectSettings, Settings
from ..errors import APIError
from ..validation import ChatCall, read_json, validate_chat
from .messages_estimate import input_estimate
from .messages_reply import error_body, to_message
from .messages_stream import MessagesStream
from .messages_translate import MessagesContext, gateway_model, to_chat_body

__all__ = ["MESSAGES_ERRORS", "MessagesDialect", "count_tokens"]


class MessagesDialect:
    """The Messages door of one app: it maps model names with that app's settings."""

    name = "messages"
    id_headers: tuple[str, ...] = (
        "X-Request-Id",
        "Request-Id",
    )  # the anthropic SDK reads `request-id`

    def __init__(
        self,
        settings: AnthropicDialectSettings,
        *,
        known: Collection[str] = VIRTUAL_MODEL_NAMES,
    ) -> None:
        """
        Args:
            settings: `[dialects.anthropic]`: glob -> gateway model, first match wins.
            known: the names the gateway resolves itself (used as they are, before any glob).
        """
        self._patterns: Mapping[str, str] = dict(settings.models)
        self._known = frozenset(known)

    @classmethod
    def from_settings(cls, settings: Settings) -> MessagesDialect:
        """The door for an app: virtual names and every configured model key and id are known."""
        return cls(settings.dialects.anthropic, known=settings.model_names())

    def parse(self, body: dict[str, Any]) -> ChatCall:
        chat, context = to_chat_body(body, resolve=self._resolve)
        # The same guarantees as the chat door: whatever the translation made is checked again.
        call = validate_chat(chat)
        return msgspec.structs.replace(call, dialect=self.name, context=context)

    def _resolve(self, name: str) -> str:
        target = gateway_model(name, self._patterns, self._known)
        if target is None:
            raise APIError(
                404,
                f"model: no gateway model for '{name}'; map it under [dialects.anthropic] models"
                ' (a glob such as "claude-*" = "auto")',
                type="not_found_error",
                param="model",
                code="model_not_found",
            )
        return target

    def reply(self, call: ChatCall, completion: bytes) -> bytes:
        try:
            parsed = json.loads(completion)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise APIError(502, "the upstream's reply was not a JSON object", type="api_error")
        message = to_message(parsed, _context(call))
        return json.dumps(message, ensure_ascii=False).encode()

    def encoder(self, call: ChatCall, request_id: str) -> MessagesStream:
        return MessagesStream(_context(call), message_id=f"msg_{request_id}")

    def error_response(self, error: APIError) -> web.Response:
        status, body = error_body(error)
        return web.json_response(body, status=status, headers=error.headers)


def _context(call: ChatCall) -> MessagesContext:
    context = call.context
    if isinstance(context, MessagesContext):
        return context
    # Only a call parsed by another door lands here; answer under the name routing used.
    return MessagesContext(client_model=call.model, input_tokens=1)


MESSAGES_ERRORS = MessagesDialect(AnthropicDialectSettings())
"""For shaping errors under `/v1/messages` only (no app's settings needed for that)."""


async def count_tokens(request: web.Request) -> web.Response:
    """`POST /v1/messages/count_tokens`: `{"input_tokens": N}`, an estimate; nothing is routed.

    N is characters / 4 (rounded up) over the text that would go upstream, system prompt,
    messages, tool calls, tool results and tool definitions (as JSON), plus 1,600 per image;
    thinking blocks and server tools, which are dropped, do not count. It is at least 1, the
    same for the same body, and the same number a reply's `message_start` reports before the
    upstream counts. The body is checked as `/v1/messages` checks it (its `model` is not read).
    """
    body = await read_json(request)
    return web.json_response({"input_tokens": input_estimate(body)})
