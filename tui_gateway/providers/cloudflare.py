"""Cloudflare Workers AI through its OpenAI-compatible route.

The configured key is `account_id:api_token`: the account id goes into the URL (the `{account_id}`
placeholder of `base_url`), the token is the bearer. Cloudflare wraps its failures in the API v4
envelope, `{"success": false, "errors": [{"code": ..., "message": ...}], ...}`, on an error
status, with HTTP 200, or as a stream event; each of those is mapped into the UpstreamError tree.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from ..config import ModelSettings, ProviderSettings
from ..domain.errors import UpstreamClientError, WrappedError
from .base import ChunkStream, Completion, ErrorDetail, error_detail, parse_completion
from .http import UpstreamClient
from .openai import OpenAIUpstream
from .sse import SSEBatch

CLOUDFLARE_BASE_URL = "https://api.cloudflare.com/client/v4/accounts/{account_id}/ai/v1"
ACCOUNT_PLACEHOLDER = "{account_id}"
_ACCOUNT_ID = re.compile(r"[A-Za-z0-9_-]+")


def split_key(key: str) -> tuple[str, str]:
    """Split a configured `account_id:api_token` key into its two parts.

    Raises:
        ValueError: the key is not two non-empty parts around a colon, or the account id has
            characters an account id cannot have. The key itself is never part of the message.
    """
    account_id, sep, token = key.partition(":")
    account_id, token = account_id.strip(), token.strip()
    if not sep or not account_id or not token:
        raise ValueError("expected account_id:api_token (the account id, a colon, the API token)")
    if not _ACCOUNT_ID.fullmatch(account_id):
        raise ValueError(
            "expected account_id:api_token; the account id may only hold letters, digits, - and _"
        )
    return account_id, token


def cloudflare_envelope_error(payload: bytes) -> WrappedError | None:
    """The error in a Cloudflare `{"success": false, "errors": [...]}` body or event, if it is one.

    Cheap on the hot path: payloads without a `"success"` key are never parsed. The status is
    the first error's numeric code when it lies in 400..599, else 502.
    """
    if b'"success"' not in payload:
        return None
    try:
        parsed = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(parsed, dict) or parsed.get("success") is not False:
        return None
    message, code = _describe_errors(parsed.get("errors"))
    status = code if isinstance(code, int) and 400 <= code <= 599 else 502
    return WrappedError(message, status=status, code=None if code is None else str(code))


def _describe_errors(errors: Any) -> tuple[str, int | str | None]:
    """All the envelope's error messages joined, and the first error's code."""
    items = [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
    messages = [str(e["message"]) for e in items if e.get("message")]
    message = "; ".join(messages) or "Cloudflare answered success: false without a message"
    code = items[0].get("code") if items else None
    if isinstance(code, bool) or not isinstance(code, int | str):
        code = None
    return message, code


def fill_null_content(body: dict[str, Any]) -> dict[str, Any]:
    """A copy of `body` whose assistant messages without content carry `""` instead."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return body
    filled = [
        {**m, "content": ""}
        if isinstance(m, dict) and m.get("role") == "assistant" and m.get("content") is None
        else m
        for m in messages
    ]
    return {**body, "messages": filled}


class CloudflareUpstream:
    """One Workers AI provider; each account id in its keys gets its own URL."""

    def __init__(self, settings: ProviderSettings, client: UpstreamClient) -> None:
        self.name = settings.name
        self._settings = settings
        self._base_url = settings.base_url or CLOUDFLARE_BASE_URL
        self._client = client
        self._accounts: dict[str, _AccountUpstream] = {}

    def _account(self, api_key: str) -> tuple[_AccountUpstream, str]:
        """The upstream for the key's account, and the bearer token to call it with."""
        try:
            account_id, token = split_key(api_key)
        except ValueError as exc:
            # Config validation catches this first; here it just makes this key fail over.
            raise UpstreamClientError(f"{self.name}: {exc}", status=401) from None
        upstream = self._accounts.get(account_id)
        if upstream is None:
            url = self._base_url.replace(ACCOUNT_PLACEHOLDER, quote(account_id, safe=""))
            upstream = _AccountUpstream(replace(self._settings, base_url=url), self._client)
            self._accounts[account_id] = upstream
        return upstream, token

    async def complete(
        self, body: dict[str, Any], model: ModelSettings, *, api_key: str
    ) -> Completion:
        upstream, token = self._account(api_key)
        return await upstream.complete(body, model, api_key=token)

    @asynccontextmanager
    async def stream(
        self, body: dict[str, Any], model: ModelSettings, *, api_key: str
    ) -> AsyncIterator[ChunkStream]:
        upstream, token = self._account(api_key)
        async with upstream.stream(body, model, api_key=token) as chunks:
            yield checked_stream(chunks)


async def checked_stream(chunks: ChunkStream) -> ChunkStream:
    """Pass batches through, raising WrappedError at the first Cloudflare error event.

    The events before it in its batch are passed on first, so what reaches the client does not
    depend on how the upstream's writes were split into reads.
    """
    async for batch in chunks:
        if b'"success"' in batch.framed:
            payloads = batch.payloads()
            for i, payload in enumerate(payloads):
                error = cloudflare_envelope_error(payload)
                if error is not None:
                    if i:
                        yield SSEBatch.of(payloads[:i])
                    raise error
        yield batch


class _AccountUpstream(OpenAIUpstream):
    """The OpenAI-compatible route of one account; the bearer is the bare API token."""

    def _payload(self, body: dict[str, Any], model: ModelSettings, *, stream: bool) -> bytes:
        return super()._payload(fill_null_content(body), model, stream=stream)

    def _error_detail(self, raw: bytes) -> ErrorDetail:
        """What an error body says; it may be the API v4 envelope."""
        envelope = cloudflare_envelope_error(raw)
        if envelope is None:
            return error_detail(raw)
        return ErrorDetail(envelope.message, envelope.code)

    def _completion(self, raw: bytes) -> Completion:
        """An HTTP 200 body, which may be the envelope instead of a completion."""
        error = cloudflare_envelope_error(raw)
        if error is not None:
            raise error
        return parse_completion(raw)
