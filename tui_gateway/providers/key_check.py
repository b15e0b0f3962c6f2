"""Does the upstream still take this key? One cheap call per key, by provider kind (issue 14).

    kind        call                                                      the key goes in
    openai      GET {base_url}/models                                     Authorization: Bearer
    cohere      GET https://api.cohere.ai/v1/models?page_size=1           Authorization: Bearer
                (the compatibility API has no model list; a base_url of
                your own, not ending in /compatibility/v1: {base_url}/models)
    gemini      GET {base_url}/models?pageSize=1                          x-goog-api-key
    cloudflare  GET .../accounts/{account}/ai/models/search?per_page=1    Bearer (the token part)
                (from the default base_url; another: {base_url}/models)
    simulated   no call: always ok

A listing costs no tokens, and on most free tiers no request from the day's quota either.

    2xx                                    ok
    401, 403, Google's 400 API_KEY_INVALID invalid   (as the relay reads them: base.py)
    any other status                       error
    no connection                          error     (the message transport.py gives it)
    no answer within the timeout           timeout

The family modules (cohere, cloudflare, gemini) are imported only for a provider of their kind,
as `make_upstream` does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection
from dataclasses import dataclass

import aiohttp

from ..config import ProviderSettings, Settings
from ..domain.errors import ErrorKind
from ..domain.keys import KeyCheck, KeyStatus, mask_secret, named_keys
from .base import ErrorDetail, error_detail, error_from_status
from .transport import CLIENT_ERRORS, unavailable

__all__ = ["KeyCheck", "check_key", "check_keys"]

_BODY_CAP = 64 * 1024
"""Read at most this much of an answer: enough for any error body, and a model list is not
parsed (some run to megabytes)."""


@dataclass(frozen=True, slots=True)
class _Probe:
    url: str
    headers: dict[str, str]


async def check_keys(
    settings: Settings,
    session: aiohttp.ClientSession,
    *,
    timeout_s: float = 10.0,
    only: Collection[str] | None = None,
) -> list[KeyCheck]:
    """Check every key of every provider (or the key ids in `only`) at once, each under
    `timeout_s`; the results in config order."""
    calls = [
        check_key(provider, key_id, secret, session, timeout_s=timeout_s)
        for provider in settings.providers
        for key_id, secret in named_keys(provider)
        if only is None or key_id in only
    ]
    return list(await asyncio.gather(*calls))


async def check_key(
    provider: ProviderSettings,
    key_id: str,
    secret: str,
    session: aiohttp.ClientSession,
    *,
    timeout_s: float = 10.0,
) -> KeyCheck:
    """Check one key with its provider's cheapest call; never raises for what the upstream did."""
    masked = mask_secret(secret)

    def result(status: KeyStatus, http: int | None, detail: str, ms: int = 0) -> KeyCheck:
        if secret:  # an upstream that echoes the key must not put it on the screen
            detail = detail.replace(secret, masked)
        return KeyCheck(provider.name, key_id, masked, status, http, ms, detail)

    if provider.kind == "simulated":
        return result("ok", None, "simulated: nothing to check")
    if not secret and provider.missing_env:
        return result("error", None, f"no key: {', '.join(provider.missing_env)} not set")
    try:
        probe = _probe(provider, secret)
    except ValueError as exc:  # a Cloudflare key that is not account_id:api_token
        return result("invalid", None, str(exc))
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            async with session.get(probe.url, headers=probe.headers) as resp:
                status, raw = resp.status, await resp.content.read(_BODY_CAP)
    except TimeoutError:  # before CLIENT_ERRORS: TimeoutError is an OSError
        return result("timeout", None, f"no answer within {timeout_s:g} s", _ms(started))
    except CLIENT_ERRORS as exc:
        return result("error", None, unavailable(exc).message, _ms(started))
    verdict, detail = _verdict(provider, status, raw)
    return result(verdict, status, detail, _ms(started))


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _probe(provider: ProviderSettings, secret: str) -> _Probe:
    """The URL and headers of the kind's cheapest call that needs a valid key."""
    bearer = {"Authorization": f"Bearer {secret}"} if secret else {}
    base = provider.base_url.rstrip("/")
    match provider.kind:
        case "cohere":
            from .cohere import COHERE_BASE_URL

            base = base or COHERE_BASE_URL
            if base.endswith("/compatibility/v1"):  # the native list, same host, same key
                return _Probe(
                    base.removesuffix("/compatibility/v1") + "/v1/models?page_size=1", bearer
                )
            return _Probe(f"{base}/models", bearer)
        case "gemini":
            from .gemini import DEFAULT_BASE_URL

            base = (provider.base_url or DEFAULT_BASE_URL).rstrip("/")
            return _Probe(f"{base}/models?pageSize=1", {"x-goog-api-key": secret})
        case "cloudflare":
            from urllib.parse import quote

            from .cloudflare import ACCOUNT_PLACEHOLDER, CLOUDFLARE_BASE_URL, split_key

            account, token = split_key(secret)
            base = (provider.base_url or CLOUDFLARE_BASE_URL).rstrip("/")
            base = base.replace(ACCOUNT_PLACEHOLDER, quote(account, safe=""))
            auth = {"Authorization": f"Bearer {token}"}
            if base.endswith("/ai/v1"):  # the account's model search, one row
                return _Probe(base.removesuffix("/v1") + "/models/search?per_page=1", auth)
            return _Probe(f"{base}/models", auth)
        case _:
            return _Probe(f"{base}/models", bearer)


def _verdict(provider: ProviderSettings, status: int, raw: bytes) -> tuple[KeyStatus, str]:
    """What an answer says about the key, read as the relay reads the kind's answers."""
    if status < 300:
        if provider.kind == "cloudflare":
            from .cloudflare import cloudflare_envelope_error

            wrapped = cloudflare_envelope_error(raw)  # `success: false` in a 200
            if wrapped is not None:
                verdict: KeyStatus = "invalid" if wrapped.status in (401, 403) else "error"
                return verdict, f"{wrapped.message} ({wrapped.status})"
        return "ok", f"accepted ({status})"
    detail = _error_detail(provider, raw)
    if error_from_status(status, detail).kind == ErrorKind.KEY_REJECTED:
        return "invalid", detail.message  # the status goes with it (`http_status`)
    return "error", f"{detail.message} ({status})"


def _error_detail(provider: ProviderSettings, raw: bytes) -> ErrorDetail:
    """What an error body says, in the kind's own shape (as its adapter reads it)."""
    if provider.kind == "cohere":
        from .cohere import cohere_message

        message = cohere_message(raw)
        if message is not None:
            return ErrorDetail(message)
    elif provider.kind == "cloudflare":
        from .cloudflare import cloudflare_envelope_error

        envelope = cloudflare_envelope_error(raw)
        if envelope is not None:
            return ErrorDetail(envelope.message, envelope.code)
    return error_detail(raw)
