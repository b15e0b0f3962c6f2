"""Checking a chat request body: every problem is a 400 that names the field."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .errors import APIError

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


@dataclass(frozen=True, slots=True)
class ChatCall:
    """A validated request: the body as the client sent it, plus the fields routing reads."""

    body: dict[str, Any]
    model: str
    stream: bool
    messages: list[dict[str, Any]]


async def read_json(request: web.Request) -> dict[str, Any]:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise APIError(
            413, f"request body too large ({exc.reason})", code="request_too_large"
        ) from None
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise APIError(400, f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise APIError(400, "request body must be a JSON object", code="invalid_json")
    return body


def validate_chat(body: dict[str, Any]) -> ChatCall:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("model", "you must provide a model (a string such as 'auto')", "missing_model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("messages", "'messages' must be a non-empty array of message objects")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _bad(f"messages[{i}]", f"messages[{i}] must be an object")
        role = message.get("role")
        if role not in _ROLES:
            raise _bad(f"messages[{i}].role", f"messages[{i}].role must be one of {sorted(_ROLES)}")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("stream", "'stream' must be true or false")
    _check_number(body, "temperature", 0, 2)
    _check_number(body, "top_p", 0, 1)
    for name in ("max_tokens", "max_completion_tokens", "n"):
        value = body.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise _bad(name, f"'{name}' must be a whole number of at least 1")
    return ChatCall(body=body, model=model, stream=stream, messages=messages)


def _check_number(body: dict[str, Any], name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise _bad(name, f"'{name}' must be a number from {low} to {high}")


def _bad(param: str, message: str, code: str = "invalid_value") -> APIError:
    return APIError(400, message, param=param, code=code)
