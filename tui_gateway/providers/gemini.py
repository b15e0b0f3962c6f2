"""Google's Gemini API (`generateContent`), spoken natively and translated to OpenAI's shapes.

Requests are translated by `gemini_translate`, replies by `gemini_reply`; this module makes the
HTTP calls (through `transport`) and maps Gemini's failures into the UpstreamError tree:

    HTTP 4xx/5xx                  error_from_status (429 RateLimited, 5xx Unavailable, 4xx client)
      429 without Retry-After     the delay from the body's `google.rpc.RetryInfo`, if any
      400 "input token count ..." UpstreamClientError with code context_length_exceeded
    {"error": ...} in a 200 body  WrappedError, status from `error.code` (or `error.status`)
      ... or in a stream event    the same, raised from the chunk iterator
    no connection                 Unavailable(kind=CONNECTION)    (transport.map_client_errors)
    connection lost mid-stream    Unavailable(kind=TRUNCATED)
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import replace
from typing import Any

import msgspec

from ..config import ModelSettings, ProviderSettings
from ..domain.errors import UpstreamClientError, UpstreamError, WrappedError
from .base import (
    ChunkStream,
    Completion,
    error_detail,
    error_from_status,
    retry_after_seconds,
    token_count,
)
from .gemini_reply import StreamTranslator, from_gemini
from .gemini_translate import to_gemini
from .http import UpstreamClient, UpstreamResponse
from .sse import DONE, SSEBatch
from .transport import post, post_stream, read_body, sse_batches

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"

_CONTEXT_LENGTH = "exceeds the maximum number of tokens"
# google.rpc.Code names, for an error object that has no numeric `code`.
_STATUS = {
    "INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403, "NOT_FOUND": 404, "ABORTED": 409,
    "ALREADY_EXISTS": 409, "RESOURCE_EXHAUSTED": 429, "CANCELLED": 499, "INTERNAL": 500,
    "UNKNOWN": 500, "DATA_LOSS": 500, "UNIMPLEMENTED": 501, "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}  # fmt: skip


class GeminiUpstream:
    """Posts to `{base_url}/models/{id}:generateContent` (or `:streamGenerateContent?alt=sse`)."""

    def __init__(self, settings: ProviderSettings, client: UpstreamClient) -> None:
        self.name = settings.name
        self._base = (settings.base_url or DEFAULT_BASE_URL).rstrip("/")
        self._client = client

    def url(self, model: ModelSettings, method: str) -> str:
        """The endpoint for `method`; an id with a slash (`tunedModels/x`) is used as the path."""
        path = model.id if "/" in model.id else f"models/{model.id}"
        return f"{self._base}/{path}:{method}"

    @staticmethod
    def _request(body: dict[str, Any], api_key: str) -> tuple[bytes, dict[str, str]]:
        headers = {"x-goog-api-key": api_key, "Content-Type": "application/json"}
        return msgspec.json.encode(to_gemini(body)), headers

    async def complete(
        self, body: dict[str, Any], model: ModelSettings, *, api_key: str
    ) -> Completion:
        data, headers = self._request(body, api_key)
        resp, raw = await post(
            self._client, self.url(model, "generateContent"), data=data, headers=headers
        )
        if resp.status >= 400:
            raise http_error(resp.status, raw, retry_after=resp.headers.get("Retry-After"))
        reply = _json_object(raw)
        error = gemini_error(reply)
        if error is not None:
            raise error
        prefix = uuid.uuid4().hex[:12]
        completion = from_gemini(
            reply, model=model.id, created=int(time.time()), call_prefix=prefix
        )
        usage = completion.get("usage") or {}
        return Completion(
            json.dumps(completion).encode(),
            token_count(usage.get("prompt_tokens")),
            token_count(usage.get("completion_tokens")),
        )

    @asynccontextmanager
    async def stream(
        self, body: dict[str, Any], model: ModelSettings, *, api_key: str
    ) -> AsyncIterator[ChunkStream]:
        url = self.url(model, "streamGenerateContent") + "?alt=sse"
        data, headers = self._request(body, api_key)
        async with post_stream(self._client, url, data=data, headers=headers) as resp:
            if resp.status >= 400 or "event-stream" not in resp.content_type:
                raw = await read_body(resp)
                if resp.status >= 400:
                    raise http_error(resp.status, raw, retry_after=resp.headers.get("Retry-After"))
                raise gemini_error(_json_object(raw)) or WrappedError(
                    f"200 with {resp.content_type} instead of an event stream", status=502
                )
            options = body.get("stream_options")
            translator = StreamTranslator(
                model=model.id,
                created=int(time.time()),
                chunk_id=f"chatcmpl-{uuid.uuid4().hex[:12]}",
                include_usage=isinstance(options, dict) and bool(options.get("include_usage")),
                choices=body["n"] if isinstance(body.get("n"), int) and body["n"] > 1 else 1,
            )
            yield _translated(resp, translator)


async def _translated(resp: UpstreamResponse, translator: StreamTranslator) -> ChunkStream:
    """The response's Gemini events as OpenAI chunks, ending once every choice finished."""
    async with aclosing(sse_batches(resp)) as batches:
        async for batch in batches:
            translated = _translate(batch, translator)
            if translated is not None:
                yield translated
            if translator.done:
                return
    # A body that ends before any finishReason yields no [DONE]: the relay calls it truncated.


def _translate(batch: SSEBatch, translator: StreamTranslator) -> SSEBatch | None:
    """The OpenAI chunks for one read's Gemini events, with [DONE] once every choice finished."""
    payloads: list[bytes] = []
    for payload in batch.payloads():
        event = _json_object(payload)
        error = gemini_error(event)
        if error is not None:
            raise error
        payloads.extend(json.dumps(chunk).encode() for chunk in translator.feed(event))
        if translator.done:
            payloads.append(DONE)
            break
    return SSEBatch.of(payloads) if payloads else None


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(raw)
    except ValueError:
        snippet = raw[:80].decode("utf-8", "replace")
        raise WrappedError(f"200 with a body that is not JSON: {snippet!r}", status=502) from None
    if not isinstance(parsed, dict):
        raise WrappedError("200 with JSON that is not a Gemini reply", status=502)
    return parsed


def gemini_error(reply: dict[str, Any]) -> WrappedError | None:
    """The error a 200 body or a stream event carries instead of a reply, if it does."""
    if "error" not in reply:
        return None
    error = reply["error"]
    if not isinstance(error, dict):
        return WrappedError(str(error), status=502)
    code, status = error.get("code"), error.get("status")
    if not (isinstance(code, int) and 400 <= code <= 599):
        code = _STATUS.get(status, 502) if isinstance(status, str) else 502
    message = str(error.get("message") or "Gemini returned an error inside a 200 response")
    return WrappedError(message, status=code, code=status if isinstance(status, str) else None)


def http_error(status: int, raw: bytes, *, retry_after: str | None = None) -> UpstreamError:
    """An HTTP error reply as an UpstreamError (see the table in the module docstring)."""
    detail = replace(error_detail(raw), retry_after_s=retry_delay(raw))
    if status == 400 and _CONTEXT_LENGTH in detail.message:
        return UpstreamClientError(detail.message, status=400, code="context_length_exceeded")
    return error_from_status(status, detail, retry_after=retry_after)


def retry_delay(raw: bytes) -> float | None:
    """Seconds from a `google.rpc.RetryInfo` detail (`"retryDelay": "27s"`), if the body has one."""
    if b"RetryInfo" not in raw:
        return None
    try:
        details = json.loads(raw)["error"]["details"]
        delays = [d["retryDelay"] for d in details if str(d.get("@type")).endswith("RetryInfo")]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return retry_after_seconds(str(delays[0]).removesuffix("s")) if delays else None
