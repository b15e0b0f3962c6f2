"""The seam between the proxy and an upstream family.

An adapter turns an OpenAI-style request body into the upstream's call and the upstream's reply
back into OpenAI JSON (non-streaming) or OpenAI chunk payloads (streaming), raising the
`UpstreamError` tree for every failure. The proxy never sees aiohttp client errors or foreign
formats, and tests can swap in any object with these two methods.

An error status is mapped into the tree here, once (`error_from_status`); an adapter only reads
its family's error body into an `ErrorDetail`. The HTTP plumbing (client errors mapped, the SSE
read loop) is in `transport`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import msgspec

from ..config import ModelSettings
from ..domain.errors import (
    ErrorKind,
    RateLimited,
    Unavailable,
    UpstreamClientError,
    UpstreamError,
    WrappedError,
)
from ..domain.sessions import flatten_content
from .sse import SSEBatch

ChunkStream = AsyncIterator[SSEBatch]
"""Yields, per upstream read, the `data:` events (OpenAI chunk JSON) that arrived, in order.
A final `[DONE]` is part of the last batch; the stream ends after it or at the end of the body."""


@dataclass(frozen=True, slots=True)
class Completion:
    """A non-streaming reply: OpenAI `chat.completion` JSON, forwarded as these bytes."""

    body: bytes
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class Upstream(Protocol):
    name: str

    async def complete(
        self, body: dict[str, Any], model: ModelSettings, *, api_key: str
    ) -> Completion:
        """One non-streaming reply; raises UpstreamError for every failure."""
        ...

    def stream(
        self, body: dict[str, Any], model: ModelSettings, *, api_key: str
    ) -> AbstractAsyncContextManager[ChunkStream]:
        """Open a streaming reply; entering raises UpstreamError if it fails before any data.

        Leaving the context releases or aborts the upstream connection, on every exit path.
        """
        ...


class _CompletionShape(msgspec.Struct):
    choices: msgspec.Raw
    """Checked to be an array, never decoded: the reply goes to the client as it came."""
    usage: Any = None


_read_completion = msgspec.json.Decoder(_CompletionShape).decode


def parse_completion(raw: bytes) -> Completion:
    """Check an HTTP 200 body really is a chat completion; raise WrappedError if it is not."""
    error = wrapped_error(raw)
    if error is not None:
        raise error
    try:
        parsed = _read_completion(raw)
    except msgspec.ValidationError:  # JSON, but not an object with `choices`
        parsed = None
    except msgspec.DecodeError:
        snippet = raw[:80].decode("utf-8", "replace")
        raise WrappedError(f"200 with a body that is not JSON: {snippet!r}", status=502) from None
    if parsed is None or not bytes(parsed.choices).startswith(b"["):
        raise WrappedError("200 with JSON that is not a chat completion", status=502)
    usage = parsed.usage
    if not isinstance(usage, dict):
        return Completion(raw)
    return Completion(
        raw, token_count(usage.get("prompt_tokens")), token_count(usage.get("completion_tokens"))
    )


def prompt_estimate(messages: Any) -> int:
    """The prompt's tokens when nobody counted: its characters / 4 (at least 1)."""
    chars = sum(
        len(flatten_content(m.get("content"))) for m in messages or () if isinstance(m, dict)
    )
    return max(1, chars // 4)


def estimated_usage(messages: Any, completion_tokens: int) -> dict[str, int]:
    """A usage block when nobody counted: `prompt_estimate`, the given completion count."""
    prompt_tokens = prompt_estimate(messages)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def token_count(value: object) -> int | None:
    """A usage field's value if it is a whole number (upstreams send nulls and strings too)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def wrapped_error(payload: bytes) -> WrappedError | None:
    """The error hidden in an HTTP 200 body or chunk, if its root has an `error` object.

    Cheap on the hot path: payloads without the key are never parsed.
    """
    if b'"error"' not in payload:
        return None
    try:
        parsed = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("error"), dict | str):
        return None
    error = parsed["error"]
    if isinstance(error, str):
        return WrappedError(error, status=502)
    message = str(error.get("message") or "upstream returned an error inside a 200 response")
    return WrappedError(message, status=_error_status(error), code=_code(error))


def _error_status(error: dict[str, Any]) -> int:
    for field in ("code", "status"):
        value = error.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and 400 <= value <= 599:
            return value
        if isinstance(value, str) and value.isdigit() and 400 <= int(value) <= 599:
            return int(value)
    return 502


def _code(error: dict[str, Any]) -> str | None:
    code = error.get("code")
    return code if isinstance(code, str) else None


_KEY_INVALID = b'"API_KEY_INVALID"'
"""The `reason` of the `google.rpc.ErrorInfo` detail Google APIs send for a bad key."""


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """What an upstream's error body says, read by the adapter that knows its shape."""

    message: str
    code: str | None = None
    """The upstream's own error code (`context_length_exceeded`, `invalid_api_key`, ...)."""
    key_rejected: bool = False
    """The body names the API key as the fault even though the status does not (Google's 400)."""
    retry_after_s: float | None = None
    """A delay the body asks for; a `Retry-After` header wins over it."""


def error_detail(body: bytes) -> ErrorDetail:
    """Read an OpenAI-style error body (`{"error": {"message", "code"}}`), or whatever came."""
    key_rejected = _KEY_INVALID in body
    try:
        parsed = json.loads(body)
    except ValueError:
        text = body[:200].decode("utf-8", "replace").strip()
        return ErrorDetail(text or "no body", key_rejected=key_rejected)
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message") or error)
        return ErrorDetail(message, _code(error), key_rejected=key_rejected)
    if isinstance(error, str):
        return ErrorDetail(error, key_rejected=key_rejected)
    return ErrorDetail(str(parsed)[:200], key_rejected=key_rejected)


def error_from_status(
    status: int,
    detail: ErrorDetail,
    *,
    retry_after: str | None = None,
    now: float | None = None,
) -> UpstreamError:
    """Map an upstream HTTP error status, and what its body says, into the UpstreamError tree.

    Args:
        status: the HTTP status, 400 or above.
        detail: the body, as the adapter read it.
        retry_after: the `Retry-After` header, if any (seconds or an HTTP date).
        now: the Unix time an HTTP date is counted from; the wall clock if None.
    """
    message, code = detail.message, detail.code
    if status == 429:
        delay = retry_after_seconds(retry_after, now=now)
        delay = detail.retry_after_s if delay is None else delay
        return RateLimited(message, status=status, code=code, retry_after_s=delay)
    if status == 408:
        return Unavailable(message, status=status, code=code, kind=ErrorKind.TIMEOUT)
    if status >= 500:
        return Unavailable(message, status=status, code=code)
    if status == 400 and detail.key_rejected:
        # Gemini answers a bad key with 400 INVALID_ARGUMENT; the reason names the key.
        return UpstreamClientError(message, status=status, code=code, kind=ErrorKind.KEY_REJECTED)
    # 401/403 are the key's fault (kind key_rejected): the relay tries the provider's next key.
    return UpstreamClientError(message, status=status, code=code)


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """The delay a `Retry-After` header asks for, in seconds, never negative; None if unreadable.

    RFC 9110 allows a number of seconds or an HTTP date (`Wed, 21 Oct 2026 07:28:00 GMT`); a
    date is counted from `now` (Unix time, the wall clock if None).
    """
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # `-0000`: UTC, says RFC 5322
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None
