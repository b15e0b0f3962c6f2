"""Checking a chat request body: every problem is a 400 that names the field.

Every field that the gateway or one of its adapters reads is checked here, with its type, before
anything uses it; fields nobody reads are forwarded untouched for the upstream to judge.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from .body import read_json
from .fields import bad, is_int, optional_field

__all__ = ["ChatCall", "read_json", "validate_chat"]

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_ROLE_LIST = ", ".join(sorted(_ROLES))
MAX_MODEL_NAME = 256
"""Model names are echoed in errors and kept in the log; no real one comes near this."""
MAX_CHOICES = 128
"""OpenAI's own limit on `n`; adapters keep per-choice state, so a huge `n` costs memory."""


class ChatCall(msgspec.Struct, frozen=True):
    """A validated request: the body as the client sent it, plus the fields routing reads."""

    body: dict[str, Any]
    """The OpenAI chat-completions body sent upstream (a dialect's translation of its own)."""
    model: str
    stream: bool
    messages: list[dict[str, Any]]
    dialect: str = "chat"
    context: Any = None
    """What a dialect carries from `parse` to its reply (the model name the client used, ...)."""


def validate_chat(body: dict[str, Any]) -> ChatCall:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("model", "you must provide a model (a string such as 'auto')", "missing_model")
    if len(model) > MAX_MODEL_NAME:
        raise bad("model", f"'model' is longer than {MAX_MODEL_NAME} characters")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad("messages", "'messages' must be a non-empty array of message objects")
    for i, message in enumerate(messages):
        _check_message(message, i)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise bad("stream", "'stream' must be true or false")
    for name in body:  # only the fields the client sent: most bodies have a few of them
        check = _FIELD_CHECKS.get(name)
        if check is not None:
            check(body, name)
    return ChatCall(body=body, model=model, stream=stream, messages=messages)


def _check_message(message: object, i: int) -> None:
    """One message; its path (`messages[3].content`) is only spelled out for an error."""
    if not isinstance(message, dict):
        raise bad(f"messages[{i}]", f"messages[{i}] must be an object")
    role = message.get("role")
    if not isinstance(role, str) or role not in _ROLES:
        where = f"messages[{i}]"
        raise bad(f"{where}.role", f"{where}.role must be one of {_ROLE_LIST}")
    content = message.get("content")
    problem = None if content is None or isinstance(content, str) else _content_problem(content)
    if problem is None:
        for name in ("name", "tool_call_id"):
            value = message.get(name)
            if value is not None and not isinstance(value, str):
                problem = f".{name}", "must be a string"
                break
        else:
            calls = message.get("tool_calls")
            if calls is None:
                return
            problem = _calls_problem(calls)
    if problem is not None:
        _fail(f"messages[{i}]", problem)


Problem = tuple[str, str]
"""What is wrong where, below the field checked: (`.content[2].type`, `must be a string`).

The checks return one instead of building each item's path as they go: an agent's body has
hundreds of tool calls and content parts, and spelling out every path cost more than the
checks themselves.
"""


def _fail(where: str, problem: Problem) -> None:
    at = where + problem[0]
    raise bad(at, f"{at} {problem[1]}")


def _content_problem(content: object) -> Problem | None:
    """A message's content that is not a string: null, or an array of parts with a `type`."""
    if content is None or isinstance(content, str):
        return None
    if not isinstance(content, list):
        return ".content", "must be a string, an array of content parts, or null"
    for n, part in enumerate(content):
        if not isinstance(part, dict):
            return f".content[{n}]", 'must be an object such as {"type": "text", "text": ...}'
        kind = part.get("type")
        if not isinstance(kind, str):
            return f".content[{n}].type", "must be a string such as 'text'"
        if (kind == "text" or "text" in part) and not isinstance(part.get("text"), str):
            return f".content[{n}].text", "must be a string"
        if kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                return f".content[{n}].image_url", "must be an object with a 'url'"
    return None


def _calls_problem(calls: object) -> Problem | None:
    if not isinstance(calls, list):
        return ".tool_calls", "must be an array"
    for n, call in enumerate(calls):
        if not isinstance(call, dict):
            return f".tool_calls[{n}]", "must be an object"
        problem = _fields_problem(call, _CALL_FIELDS) or _function_problem(
            call.get("function"), _CALL_FUNCTION_FIELDS
        )
        if problem is not None:
            return f".tool_calls[{n}]{problem[0]}", problem[1]
    return None


def _check_tools(tools: object) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise bad("tools", "'tools' must be an array of tool objects")
    for n, tool in enumerate(tools):
        if not isinstance(tool, dict):
            _fail(f"tools[{n}]", ("", "must be an object"))
            return
        problem = _fields_problem(tool, _TOOL_FIELDS)
        if problem is None and (
            tool.get("function") is not None or tool.get("type", "function") == "function"
        ):
            problem = _function_problem(tool.get("function"), _TOOL_FUNCTION_FIELDS)
        if problem is not None:
            _fail(f"tools[{n}]", problem)


_Fields = tuple[tuple[str, type, str], ...]
"""Optional fields of an object: (name, type, what it must be), checked when not null."""
_CALL_FIELDS: _Fields = (("id", str, "a string"), ("type", str, "a string"))
_TOOL_FIELDS: _Fields = (("type", str, "a string"),)
_CALL_FUNCTION_FIELDS: _Fields = (("arguments", str, "a string of JSON"),)
_TOOL_FUNCTION_FIELDS: _Fields = (
    ("description", str, "a string"),
    ("parameters", dict, "an object (a JSON schema)"),
)


def _fields_problem(obj: dict[str, Any], fields: _Fields) -> Problem | None:
    for name, kind, expected in fields:
        value = obj.get(name)
        if value is not None and not isinstance(value, kind):
            return f".{name}", f"must be {expected}"
    return None


def _function_problem(function: object, fields: _Fields) -> Problem | None:
    if not isinstance(function, dict):
        return ".function", "must be an object with a 'name'"
    if not isinstance(function.get("name"), str):
        return ".function.name", "must be a string"
    problem = _fields_problem(function, fields)
    return None if problem is None else (".function" + problem[0], problem[1])


def _check_stop(stop: object) -> None:
    if stop is None or isinstance(stop, str):
        return
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise bad("stop", "'stop' must be a string or an array of strings")


def _check_number(body: dict[str, Any], name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise bad(name, f"'{name}' must be a number from {low} to {high}")


def _check_stream_options(body: dict[str, Any], name: str) -> None:
    options = body[name]
    if options is None:
        return
    if not isinstance(options, dict):
        raise bad("stream_options", "'stream_options' must be an object")
    optional_field(options, "include_usage", bool, "true or false", "stream_options.")


def _number_from(low: float, high: float) -> Callable[[dict[str, Any], str], None]:
    return lambda body, name: _check_number(body, name, low, high)


def _check_count(body: dict[str, Any], name: str) -> None:
    value = body[name]
    if value is not None and (not is_int(value) or value < 1):
        raise bad(name, f"'{name}' must be a whole number of at least 1")
    if name == "n" and value is not None and value > MAX_CHOICES:
        raise bad("n", f"'n' must be at most {MAX_CHOICES}")


def _check_whole(body: dict[str, Any], name: str) -> None:
    if body[name] is not None and not is_int(body[name]):
        raise bad(name, f"'{name}' must be a whole number")


def _check_tool_choice(body: dict[str, Any], name: str) -> None:
    choice = body[name]
    if choice is not None and not isinstance(choice, str | dict):
        raise bad("tool_choice", "'tool_choice' must be a string ('auto', 'none', 'required')"
                   " or an object naming a function")  # fmt: skip


def _check_object(body: dict[str, Any], name: str) -> None:
    if body[name] is not None and not isinstance(body[name], dict):
        raise bad(name, f"'{name}' must be an object")


def _check_user(body: dict[str, Any], name: str) -> None:
    if body[name] is not None and not isinstance(body[name], str):
        raise bad("user", "'user' must be a string")


_FIELD_CHECKS: dict[str, Callable[[dict[str, Any], str], None]] = {
    "stream_options": _check_stream_options,
    "temperature": _number_from(0, 2),
    "top_p": _number_from(0, 1),
    "presence_penalty": _number_from(-2, 2),
    "frequency_penalty": _number_from(-2, 2),
    "max_tokens": _check_count,
    "max_completion_tokens": _check_count,
    "n": _check_count,
    "seed": _check_whole,
    "top_k": _check_whole,
    "stop": lambda body, name: _check_stop(body[name]),
    "tools": lambda body, name: _check_tools(body[name]),
    "tool_choice": _check_tool_choice,
    "response_format": _check_object,
    "metadata": _check_object,
    "user": _check_user,
}
"""Field -> its check; `validate_chat` runs those of the fields present, in the body's order."""
