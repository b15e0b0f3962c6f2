"""Cohere and Cloudflare adapters end to end against their loopback fakes."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from tests.fake_cohere_cloudflare import (
    RECEIVED,
    Received,
    envelope,
    make_cloudflare_app,
    make_cohere_app,
)
from tui_gateway.config import ModelSettings, ProviderSettings
from tui_gateway.domain.errors import (
    ErrorKind,
    RateLimited,
    Unavailable,
    UpstreamClientError,
    WrappedError,
)
from tui_gateway.providers.base import ChunkStream
from tui_gateway.providers.cloudflare import (
    CLOUDFLARE_BASE_URL,
    CloudflareUpstream,
    cloudflare_envelope_error,
    split_key,
)
from tui_gateway.providers.cohere import COHERE_BASE_URL, CohereUpstream
from tui_gateway.providers.http import UpstreamClient

ACCOUNT = "0123456789abcdef0123456789abcdef"
TOOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "path": {"type": "string"},
        "options": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "properties": {"additionalProperties": {"type": "boolean"}},  # a property by that name
        },
        "items": {"type": "array", "items": {"type": "object", "additionalProperties": False}},
    },
    "required": ["path"],
}
STRIPPED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "path": {"type": "string"},
        "options": {"type": "object", "properties": {"additionalProperties": {"type": "boolean"}}},
        "items": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["path"],
}
TOOL_BODY: dict[str, Any] = {
    "messages": [{"role": "user", "content": "read it"}],
    "tools": [{"type": "function", "function": {"name": "read", "parameters": TOOL_SCHEMA}}],
    "parallel_tool_calls": False,
    "temperature": 0.2,
}
NULL_CONTENT_BODY: dict[str, Any] = {
    "messages": [
        {"role": "user", "content": "read it"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
         "function": {"name": "read", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "file text"},
    ]
}  # fmt: skip


async def _serve(app: Any) -> TestServer:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


@pytest.fixture
async def cohere_server() -> AsyncIterator[TestServer]:
    server = await _serve(make_cohere_app())
    yield server
    await server.close()


@pytest.fixture
async def cloudflare_server() -> AsyncIterator[TestServer]:
    server = await _serve(make_cloudflare_app())
    yield server
    await server.close()


@pytest.fixture
async def session() -> AsyncIterator[UpstreamClient]:
    async with UpstreamClient() as session:
        yield session


@pytest.fixture
def cohere(cohere_server: TestServer, session: UpstreamClient) -> CohereUpstream:
    url = f"http://127.0.0.1:{cohere_server.port}/compatibility/v1"
    return CohereUpstream(ProviderSettings("cohere", "openai", url), session)


@pytest.fixture
def cloudflare(cloudflare_server: TestServer, session: UpstreamClient) -> CloudflareUpstream:
    url = f"http://127.0.0.1:{cloudflare_server.port}/client/v4/accounts/{{account_id}}/ai/v1"
    return CloudflareUpstream(ProviderSettings("workers", "openai", url), session)


def received(server: TestServer) -> list[Received]:
    return server.app[RECEIVED]


def model(id: str) -> ModelSettings:
    return ModelSettings("p", id)


async def collect(chunks: ChunkStream) -> bytes:
    return b"".join([batch.framed async for batch in chunks])


# --- Cohere -------------------------------------------------------------------------------------


async def test_cohere_sends_schemas_without_additional_properties_and_no_parallel_tool_calls(
    cohere: CohereUpstream, cohere_server: TestServer
) -> None:
    original = copy.deepcopy(TOOL_BODY)
    reply = await cohere.complete(TOOL_BODY, model("ok"), api_key="co-key")
    assert reply.completion_tokens == 3
    (got,) = received(cohere_server)
    assert got.authorization == "Bearer co-key"
    assert "parallel_tool_calls" not in got.body
    assert got.body["tools"][0]["function"]["parameters"] == STRIPPED_SCHEMA
    assert got.body["temperature"] == 0.2 and got.body["stream"] is False
    assert TOOL_BODY == original  # the caller's body is not changed


async def test_cohere_streams_openai_chunks_with_the_same_body_fixes(
    cohere: CohereUpstream, cohere_server: TestServer
) -> None:
    async with cohere.stream(TOOL_BODY, model("ok"), api_key="co-key") as chunks:
        framed = await collect(chunks)
    assert framed.endswith(b"data: [DONE]\n\n") and b'"content": "reply "' in framed
    (got,) = received(cohere_server)
    assert got.body["stream"] is True and "parallel_tool_calls" not in got.body
    assert got.body["tools"][0]["function"]["parameters"] == STRIPPED_SCHEMA


@pytest.mark.parametrize("streaming", [False, True])
async def test_cohere_429_with_retry_after_is_rate_limited(
    cohere: CohereUpstream, streaming: bool
) -> None:
    with pytest.raises(RateLimited) as caught:
        await _call(cohere, "error-429:retry_after=7", streaming)
    assert caught.value.retry_after_s == 7.0 and caught.value.status == 429
    assert "per minute request limit" in caught.value.message


@pytest.mark.parametrize("streaming", [False, True])
async def test_cohere_5xx_is_unavailable(cohere: CohereUpstream, streaming: bool) -> None:
    with pytest.raises(Unavailable) as caught:
        await _call(cohere, "error-503", streaming)
    assert caught.value.status == 503 and caught.value.kind == ErrorKind.SERVER


@pytest.mark.parametrize("streaming", [False, True])
async def test_cohere_message_body_is_the_whole_error_message(
    cohere: CohereUpstream, streaming: bool
) -> None:
    with pytest.raises(UpstreamClientError) as caught:
        await _call(cohere, "error-401", streaming)
    assert caught.value.status == 401 and caught.value.kind == ErrorKind.KEY_REJECTED
    assert caught.value.message == "invalid api token" and caught.value.code is None


async def test_cohere_too_many_tokens_may_fall_back_to_a_larger_window(
    cohere: CohereUpstream,
) -> None:
    with pytest.raises(UpstreamClientError) as caught:
        await cohere.complete(TOOL_BODY, model("too-many-tokens"), api_key="co-key")
    assert caught.value.kind == ErrorKind.TRUNCATED and caught.value.retryable


async def test_cohere_openai_style_error_body_is_read_too(cohere: CohereUpstream) -> None:
    with pytest.raises(UpstreamClientError) as caught:
        await cohere.complete(TOOL_BODY, model("openai-error"), api_key="co-key")
    assert caught.value.message == "unsupported value: 'n'"
    assert caught.value.code == "unsupported_value" and caught.value.kind == ErrorKind.REJECTED


def test_cohere_defaults_to_the_compatibility_api(session: UpstreamClient) -> None:
    upstream = CohereUpstream(ProviderSettings("co", "openai"), session)
    assert upstream._url == COHERE_BASE_URL + "/chat/completions"
    assert upstream.name == "co"


# --- Cloudflare ---------------------------------------------------------------------------------


def test_split_key_separates_account_and_token() -> None:
    assert split_key(f"{ACCOUNT}:tok:en") == (ACCOUNT, "tok:en")
    assert split_key(f" {ACCOUNT} : tok ") == (ACCOUNT, "tok")


@pytest.mark.parametrize("key", ["", "token-only", ":token", f"{ACCOUNT}:", "a/b:token"])
def test_split_key_refuses_keys_without_both_parts(key: str) -> None:
    with pytest.raises(ValueError, match="expected account_id:api_token"):
        split_key(key)


async def test_cloudflare_puts_the_account_in_the_path_and_the_token_in_the_bearer(
    cloudflare: CloudflareUpstream, cloudflare_server: TestServer
) -> None:
    original = copy.deepcopy(NULL_CONTENT_BODY)
    reply = await cloudflare.complete(NULL_CONTENT_BODY, model("ok"), api_key=f"{ACCOUNT}:cf-tok")
    await cloudflare.complete(NULL_CONTENT_BODY, model("ok"), api_key="other:tok2")
    assert reply.prompt_tokens == 5
    first, second = received(cloudflare_server)
    assert first.path == f"/client/v4/accounts/{ACCOUNT}/ai/v1/chat/completions"
    assert first.account_id == ACCOUNT and first.authorization == "Bearer cf-tok"
    assert second.account_id == "other" and second.authorization == "Bearer tok2"
    assistant = first.body["messages"][1]
    assert assistant["content"] == "" and assistant["tool_calls"][0]["id"] == "c1"
    assert NULL_CONTENT_BODY == original


async def test_cloudflare_streams_with_null_content_filled_in(
    cloudflare: CloudflareUpstream, cloudflare_server: TestServer
) -> None:
    async with cloudflare.stream(NULL_CONTENT_BODY, model("ok"), api_key=f"{ACCOUNT}:t") as chunks:
        framed = await collect(chunks)
    assert framed.endswith(b"data: [DONE]\n\n")
    (got,) = received(cloudflare_server)
    assert got.body["stream"] is True and got.body["messages"][1]["content"] == ""


@pytest.mark.parametrize("streaming", [False, True])
async def test_cloudflare_429_with_retry_after_is_rate_limited(
    cloudflare: CloudflareUpstream, streaming: bool
) -> None:
    with pytest.raises(RateLimited) as caught:
        await _call(cloudflare, "error-429:retry_after=3", streaming, key=f"{ACCOUNT}:t")
    assert caught.value.retry_after_s == 3.0
    assert "Capacity temporarily exceeded" in caught.value.message


@pytest.mark.parametrize("streaming", [False, True])
async def test_cloudflare_5xx_is_unavailable(
    cloudflare: CloudflareUpstream, streaming: bool
) -> None:
    with pytest.raises(Unavailable) as caught:
        await _call(cloudflare, "error-500", streaming, key=f"{ACCOUNT}:t")
    assert caught.value.status == 500 and "Internal server error" in caught.value.message


async def test_cloudflare_envelope_with_http_200_is_a_wrapped_error(
    cloudflare: CloudflareUpstream,
) -> None:
    with pytest.raises(WrappedError):
        await cloudflare.complete(NULL_CONTENT_BODY, model("envelope"), api_key=f"{ACCOUNT}:t")


async def test_cloudflare_envelope_with_http_200_keeps_its_message_and_code(
    cloudflare: CloudflareUpstream,
) -> None:
    with pytest.raises(WrappedError) as caught:
        await cloudflare.complete(
            NULL_CONTENT_BODY, model("envelope:code=503"), api_key=f"{ACCOUNT}:t"
        )
    assert caught.value.status == 503 and caught.value.code == "503"
    assert caught.value.message == "Capacity temporarily exceeded, please try again."


@pytest.mark.parametrize(("code", "status"), [(3040, 502), (429, 429)])
async def test_cloudflare_envelope_inside_a_stream_is_a_wrapped_error(
    cloudflare: CloudflareUpstream, code: int, status: int
) -> None:
    seen: list[bytes] = []
    with pytest.raises(WrappedError) as caught:
        async with cloudflare.stream(
            NULL_CONTENT_BODY, model(f"envelope-stream:code={code}"), api_key=f"{ACCOUNT}:t"
        ) as chunks:
            async for batch in chunks:
                seen.append(batch.framed)
    assert caught.value.status == status and caught.value.code == str(code)
    assert "Capacity temporarily exceeded" in caught.value.message
    assert b'"content": "fake"' in b"".join(seen)  # the good chunks before it came through


async def test_cloudflare_bad_key_fails_over_without_a_request(
    cloudflare: CloudflareUpstream, cloudflare_server: TestServer
) -> None:
    with pytest.raises(UpstreamClientError, match="expected account_id:api_token") as caught:
        await cloudflare.complete(NULL_CONTENT_BODY, model("ok"), api_key="no-colon")
    assert caught.value.retryable and "no-colon" not in caught.value.message
    assert received(cloudflare_server) == []


def test_envelope_error_reads_only_failure_envelopes() -> None:
    error = cloudflare_envelope_error(envelope(7003, "Could not route"))
    assert error is not None and (error.status, error.code) == (502, "7003")
    assert error.message == "Could not route"
    assert cloudflare_envelope_error(b'{"success": true, "errors": [], "result": {}}') is None
    assert (
        cloudflare_envelope_error(b'{"choices": [{"delta": {"content": "\\"success\\""}}]}') is None
    )
    assert cloudflare_envelope_error(b'{"success": false, oops') is None
    bare = cloudflare_envelope_error(b'{"success": false, "errors": []}')
    assert bare is not None and bare.status == 502 and bare.code is None
    two = b'{"success": false, "errors": [{"code": 404, "message": "a"}, {"code": 1, "message": "b"}]}'
    both = cloudflare_envelope_error(two)
    assert both is not None and (both.message, both.status) == ("a; b", 404)


def test_cloudflare_defaults_to_the_workers_ai_route(session: UpstreamClient) -> None:
    upstream = CloudflareUpstream(ProviderSettings("cf", "openai"), session)
    account, token = upstream._account(f"{ACCOUNT}:tok")
    assert account._url == CLOUDFLARE_BASE_URL.format(account_id=ACCOUNT) + "/chat/completions"
    assert token == "tok" and upstream._account(f"{ACCOUNT}:other")[0] is account


async def _call(upstream: Any, model_id: str, streaming: bool, *, key: str = "co-key") -> None:
    if not streaming:
        await upstream.complete(TOOL_BODY, model(model_id), api_key=key)
        return
    async with upstream.stream(TOOL_BODY, model(model_id), api_key=key) as chunks:
        await collect(chunks)
