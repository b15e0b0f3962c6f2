"""Reading a request body as JSON that everything behind the door can use safely.

Three things `json.loads` accepts that would break the gateway later, each refused here with a
400 that says where: nesting deep enough to exhaust the stack when the body is serialized again
for an upstream (the parser's own limit sits a few frames above the encoder's), a lone UTF-16
surrogate (`"\\udfff"` parses to a `str` that cannot be encoded as UTF-8, so neither an upstream
nor the request log could take it), and bytes that are not UTF-8.

Bodies are parsed by msgspec first: straight from the bytes (no decoded copy of the text), and
it refuses `NaN`/`Infinity`, lone surrogates and bad UTF-8 itself, so an accepted body needs
only the nesting check. Anything msgspec refuses goes through the stdlib parser and the
explicit checks, which decide the same way and say exactly what is wrong and where.
"""

from __future__ import annotations

import json
import re
import zlib
from typing import Any

import msgspec
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ..domain.text import clean_text
from .errors import APIError

MAX_DEPTH = 64
"""Deepest nesting of objects and arrays a body may have (tool schemas use a dozen or so)."""

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
"""A `\\uD800`-`\\uDFFF` escape: cheap to search the raw text for (a plain prefix, no
lookaround). Most are halves of a proper pair (an escaped emoji), so a hit only triggers the
exact check over the parsed strings."""


_BOM = b"\xef\xbb\xbf"
_decode = msgspec.json.Decoder().decode


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's body as a JSON object, or an APIError naming what is wrong with it."""
    return parse_body(await _read(request))


def parse_body(raw: bytes) -> dict[str, Any]:
    """`raw` as a JSON object that is safe to use and send on, or an APIError saying why not."""
    try:
        # A UTF-8 byte order mark is tolerated, as it always was.
        body = _decode(raw[3:] if raw.startswith(_BOM) else raw)
    except (msgspec.DecodeError, RecursionError):
        return _parse_strictly(raw)
    if type(body) is not dict:
        raise APIError(400, "request body must be a JSON object", code="invalid_json")
    if _nested_past(body, MAX_DEPTH):
        raise _too_deep(_deep_path(body, MAX_DEPTH))
    return body


def _parse_strictly(raw: bytes) -> dict[str, Any]:
    """The stdlib path: for what msgspec refused, so the 400 names the fault and its place."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise APIError(
            400, f"request body is not valid UTF-8 (byte {exc.start})", code="invalid_json"
        ) from None
    try:
        body = _STDLIB.decode(text)
    except ValueError as exc:
        raise APIError(400, f"request body is not valid JSON: {exc}", code="invalid_json") from None
    except RecursionError:
        raise _too_deep("") from None
    if not isinstance(body, dict):
        raise APIError(400, "request body must be a JSON object", code="invalid_json")
    if _nested_past(body, MAX_DEPTH):
        raise _too_deep(_deep_path(body, MAX_DEPTH))
    if _SURROGATE_ESCAPE.search(text):
        where = _lone_surrogate_at(body)
        if where is not None:
            raise APIError(
                400,
                f"{where or 'a key'} contains a lone UTF-16 surrogate escape (such as \\udfff),"
                " which is not text; send UTF-8 or escape whole surrogate pairs",
                param=where or None,
                code="invalid_text",
            )
    return body


async def _read(request: web.Request) -> bytes:
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise APIError(
            413, f"request body too large ({exc.reason})", code="request_too_large"
        ) from None
    except (web.RequestPayloadError, HttpProcessingError, zlib.error) as exc:
        # aiohttp decompresses as it reads: a body that does not match its Content-Encoding.
        encoding = request.headers.get("Content-Encoding", "")
        detail = f"Content-Encoding: {encoding}" if encoding else "its framing"
        raise APIError(
            400,
            f"request body could not be read: it does not match {detail} ({_reason(exc)})",
            code="invalid_body",
        ) from None


def _no_constant(name: str) -> Any:
    # Python's parser takes NaN and Infinity; JSON does not, and no upstream would.
    raise ValueError(f"{name} is not a JSON value")


_STDLIB = json.JSONDecoder(parse_constant=_no_constant)
"""Built once: `json.loads(text, parse_constant=...)` would build a decoder on every call."""


def _reason(exc: BaseException) -> str:
    """The innermost cause (zlib's own words), not aiohttp's wrappers around it."""
    while (inner := exc.__cause__ or exc.__context__) is not None:
        exc = inner
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return clean_text(" ".join(str(text).split()))


def _too_deep(where: str) -> APIError:
    place = f" at {where}" if where else ""
    return APIError(
        400,
        f"request body is nested too deeply{place}: at most {MAX_DEPTH} levels of objects"
        " and arrays",
        param=where or None,
        code="invalid_json",
    )


def _nested_past(body: object, limit: int) -> bool:
    """Whether any object or array sits deeper than `limit` levels (`body` is level 1).

    No recursion, no paths, no tuples: this runs on every request, and a big agent request
    holds thousands of containers, so it goes one level at a time over plain lists.
    """
    level = [body]
    for _ in range(limit):
        deeper: list[object] = []
        keep = deeper.append
        for value in level:
            for child in value.values() if type(value) is dict else value:  # type: ignore[attr-defined]
                kind = type(child)
                if kind is dict or kind is list:
                    keep(child)
        if not deeper:
            return False
        level = deeper
    return True


def _deep_path(body: object, limit: int) -> str:
    """The path to the first container nested past `limit` (after `_nested_past` said so)."""
    stack: list[tuple[object, tuple[str | int, ...]]] = [(body, ())]
    while stack:
        value, path = stack.pop()
        if len(path) >= limit:
            return _path(path)
        items = value.items() if isinstance(value, dict) else enumerate(value)  # type: ignore[arg-type]
        stack.extend(
            (child, (*path, key)) for key, child in items if isinstance(child, dict | list)
        )
    return ""


def _lone_surrogate_at(body: object) -> str | None:
    """The path of the first string (or key) that cannot be encoded as UTF-8, or None."""
    stack: list[tuple[object, tuple[str | int, ...]]] = [(body, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            if not _encodable(value):
                return _path(path)
            continue
        if isinstance(value, dict):
            for key, child in value.items():
                if not _encodable(key):
                    return _path(path)
                stack.append((child, (*path, key)))
        elif isinstance(value, list):
            stack.extend((child, (*path, i)) for i, child in enumerate(value))
    return None


def _encodable(text: str) -> bool:
    if text.isascii():  # a flag on the string: no scan
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _path(path: tuple[str | int, ...]) -> str:
    """`messages[0].content[1].text`, the way validation names fields."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            safe = part if _encodable(part) else part.encode("utf-8", "replace").decode("utf-8")
            out += f".{safe}" if out else safe
    return out
