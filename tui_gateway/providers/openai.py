"""Any OpenAI-compatible upstream (Groq, OpenRouter, Mistral, a local llama.cpp, ...)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from ..config import ModelSettings, ProviderSettings
from ..domain.errors import ErrorKind, Unavailable, UpstreamError, WrappedError
from .base import ChunkStream, Completion, error_from_status, parse_completion, wrapped_error
from .gemini_translate import SIGNATURE_SEPARATOR, strip_signature_ids
from .sse import SSEDecoder

_SIGNATURE = SIGNATURE_SEPARATOR.encode()

# aiohttp's client errors that mean "this upstream could not be reached or hung up".
_CONNECTION_ERRORS = (aiohttp.ClientError, OSError)


class OpenAIUpstream:
    """Posts to `{base_url}/chat/completions` with the key the router picked."""

    def __init__(self, settings: ProviderSettings, session: aiohttp.ClientSession) -> None:
        self.name = settings.name
        self._url = settings.base_url.rstrip("/") + "/chat/completions"
        self._session = session

    def _headers(self, api_key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}

    def _payload(self, body: dict[str, Any], model: ModelSettings, *, stream: bool) -> bytes:
        data = json.dumps({**body, "model": model.id, "stream": stream}).encode()
        if _SIGNATURE in data:
            # A conversation that went through Gemini carries thought signatures in its tool
            # call ids; OpenAI-style upstreams refuse ids that long, so send them without.
            messages = strip_signature_ids(body.get("messages") or [])
            retry = {**body, "messages": messages, "model": model.id, "stream": stream}
            return json.dumps(retry).encode()
        return data

    def _error(self, status: int, raw: bytes, *, retry_after: str | None) -> UpstreamError:
        """An HTTP error reply as an UpstreamError; families with own error bodies override it."""
        return error_from_status(status, raw, retry_after=retry_after)

    def _completion(self, raw: bytes) -> Completion:
        """An HTTP 200 body, checked; a family with its own error envelope overrides it."""
        return parse_completion(raw)

    async def complete(
        self, body: dict[str, Any], model: ModelSettings, *, api_key: str
    ) -> Completion:
        data = self._payload(body, model, stream=False)
        try:
            async with self._session.post(
                self._url, data=data, headers=self._headers(api_key)
            ) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise self._error(resp.status, raw, retry_after=resp.headers.get("Retry-After"))
        except _CONNECTION_ERRORS as exc:
            raise _connection_error(exc) from exc
        return self._completion(raw)

    @asynccontextmanager
    async def stream(
        self, body: dict[str, Any], model: ModelSettings, *, api_key: str
    ) -> AsyncIterator[ChunkStream]:
        data = self._payload(body, model, stream=True)
        try:
            resp = await self._session.post(self._url, data=data, headers=self._headers(api_key))
        except _CONNECTION_ERRORS as exc:
            raise _connection_error(exc) from exc
        try:
            if resp.status >= 400:
                raw = await resp.read()
                raise self._error(resp.status, raw, retry_after=resp.headers.get("Retry-After"))
            if "json" in resp.content_type or "html" in resp.content_type:
                # A 200 that is not a stream: an error body, or a page from something in between.
                raw = await resp.read()
                raise wrapped_error(raw) or WrappedError(
                    f"200 with {resp.content_type} instead of an event stream", status=502
                )
            yield _chunks(resp)
        finally:
            # Abort rather than drain: a stream we stopped reading must not keep the upstream busy.
            resp.close()


async def _chunks(resp: aiohttp.ClientResponse) -> ChunkStream:
    decoder = SSEDecoder()
    try:
        async for data in resp.content.iter_any():
            batch = decoder.feed(data)
            if batch is not None:
                yield batch
            if decoder.done:
                return
    except _CONNECTION_ERRORS as exc:
        raise Unavailable(
            f"connection dropped mid-stream ({type(exc).__name__})", kind=ErrorKind.TRUNCATED
        ) from exc
    rest = decoder.flush()
    if rest is not None:
        yield rest


def _connection_error(exc: BaseException) -> Unavailable:
    detail = str(exc) or type(exc).__name__
    return Unavailable(f"connection failed: {detail}", kind=ErrorKind.CONNECTION)
