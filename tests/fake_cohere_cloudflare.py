"""Loopback fakes of Cohere's compatibility API and Cloudflare Workers AI's OpenAI-compatible route.

Built from the public docs (docs.cohere.com `compatibility-api` and `errors-reference`;
developers.cloudflare.com `workers-ai/configuration/open-ai-compatibility` and the API v4
envelope). Each app records what it received and plays a scenario chosen by the `model`, written
`scenario` or `scenario:key=value,...` as in scripts/mock_upstream.py:

    ok                normal reply (streams 3 content chunks, a finish chunk, [DONE])
    error-429         HTTP 429 with Retry-After (retry_after=7)
    error-NNN         HTTP NNN in the family's own error format
    openai-error      (cohere) HTTP 400 with an OpenAI-style `{"error": {...}}` body
    too-many-tokens   (cohere) HTTP 400, Cohere's context-length refusal
    envelope          (cloudflare) HTTP 200 whose body is a `success: false` envelope (code=3040)
    envelope-stream   (cloudflare) stream: one content chunk, then an envelope event (code=3040)

Like the real services, the Cohere fake refuses `parallel_tool_calls` and `additionalProperties`
in tool schemas, and the Cloudflare fake refuses an assistant message whose content is null.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from scripts.mock_upstream import parse_model

__all__ = ["RECEIVED", "Received", "make_cloudflare_app", "make_cohere_app"]


@dataclass(frozen=True, slots=True)
class Received:
    path: str
    authorization: str
    body: dict[str, Any]
    account_id: str | None = None


RECEIVED = web.AppKey("received", list[Received])
_SSE = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
_WORDS = ("fake", "reply", "here")


def _completion(model: str) -> dict[str, Any]:
    message = {"role": "assistant", "content": " ".join(_WORDS)}
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }  # fmt: skip


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    payload = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
               "model": model, "choices": [choice]}  # fmt: skip
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


async def _reply(
    request: web.Request, body: dict[str, Any], *, stream_tail: bytes = b""
) -> web.StreamResponse:
    """An OpenAI reply; a stream ends with `stream_tail` if given, else finish and [DONE]."""
    model = str(body.get("model"))
    if not body.get("stream"):
        return web.json_response(_completion(model))
    resp = web.StreamResponse(headers=_SSE)
    await resp.prepare(request)
    await resp.write(_chunk(model, {"role": "assistant", "content": ""}))
    if stream_tail:
        await resp.write(_chunk(model, {"content": _WORDS[0]}))
        await resp.write(stream_tail)
    else:
        for word in _WORDS:
            await resp.write(_chunk(model, {"content": word + " "}))
        await resp.write(_chunk(model, {}, "stop") + b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


async def _record(request: web.Request, account_id: str | None = None) -> dict[str, Any]:
    body = await request.json()
    auth = request.headers.get("Authorization", "")
    request.app[RECEIVED].append(Received(request.path, auth, body, account_id))
    return body  # type: ignore[no-any-return]


def _new_app() -> web.Application:
    app = web.Application()
    app[RECEIVED] = []
    return app


# --- Cohere -------------------------------------------------------------------------------------


def _cohere_error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"message": message}, status=status, headers=headers)


def _has_additional_properties(schema: Any) -> bool:
    if isinstance(schema, list):
        return any(_has_additional_properties(item) for item in schema)
    if not isinstance(schema, dict):
        return False
    if "additionalProperties" in schema:
        return True
    props = schema.get("properties")
    nested = list(props.values()) if isinstance(props, dict) else []
    rest = [v for k, v in schema.items() if k not in ("properties", "enum", "const", "default")]
    return _has_additional_properties(nested) or _has_additional_properties(rest)


async def _cohere_chat(request: web.Request) -> web.StreamResponse:
    body = await _record(request)
    if not request.headers.get("Authorization", "").startswith("Bearer "):
        return _cohere_error(401, "no api key supplied")
    if "parallel_tool_calls" in body:
        return _cohere_error(400, "invalid request: parallel_tool_calls is not supported")
    for tool in body.get("tools") or ():
        if _has_additional_properties(tool.get("function", {}).get("parameters")):
            return _cohere_error(400, "invalid request: additionalProperties is not supported")
    scenario, params = parse_model(str(body.get("model")))
    if scenario == "error-429":
        retry_after = params.get("retry_after", "7")
        message = "You are past the per minute request limit, please wait and try again later."
        return _cohere_error(429, message, **{"Retry-After": retry_after})
    if scenario == "error-401":
        return _cohere_error(401, "invalid api token")
    if scenario == "too-many-tokens":
        return _cohere_error(400, "too many tokens: total number of tokens in the prompt cannot "
                             "exceed 4081 - received 4292.")  # fmt: skip
    if scenario == "openai-error":
        error = {"message": "unsupported value: 'n'", "type": "invalid_request_error",
                 "param": "n", "code": "unsupported_value"}  # fmt: skip
        return web.json_response({"error": error}, status=400)
    if scenario.startswith("error-"):
        status = int(scenario[6:])
        return _cohere_error(status, "internal server error, this has been reported to our devs")
    return await _reply(request, body)


def make_cohere_app() -> web.Application:
    """Serves POST /compatibility/v1/chat/completions."""
    app = _new_app()
    app.router.add_post("/compatibility/v1/chat/completions", _cohere_chat)
    return app


# --- Cloudflare ---------------------------------------------------------------------------------


def envelope(code: int, message: str) -> bytes:
    """Cloudflare's API v4 failure envelope."""
    failure = {"result": None, "success": False,
               "errors": [{"code": code, "message": message}], "messages": []}  # fmt: skip
    return json.dumps(failure).encode()


def _cloudflare_error(status: int, code: int, message: str, **headers: str) -> web.Response:
    return web.Response(
        body=envelope(code, message), status=status, headers=headers,
        content_type="application/json",
    )  # fmt: skip


async def _cloudflare_chat(request: web.Request) -> web.StreamResponse:
    body = await _record(request, request.match_info["account_id"])
    if not request.headers.get("Authorization", "").startswith("Bearer "):
        return _cloudflare_error(401, 10000, "Authentication error")
    for i, message in enumerate(body.get("messages") or ()):
        if message.get("role") == "assistant" and message.get("content") is None:
            text = f"AiError: Bad input: Type mismatch of '/messages/{i}/content', 'null'"
            return _cloudflare_error(400, 5006, text)
    scenario, params = parse_model(str(body.get("model")))
    code = int(params.get("code", "3040"))
    capacity = "Capacity temporarily exceeded, please try again."
    if scenario == "error-429":
        retry_after = params.get("retry_after", "7")
        return _cloudflare_error(429, 3040, capacity, **{"Retry-After": retry_after})
    if scenario.startswith("error-"):
        return _cloudflare_error(int(scenario[6:]), 3043, "Internal server error")
    if scenario == "envelope":
        return web.Response(body=envelope(code, capacity), content_type="application/json")
    if scenario == "envelope-stream":
        return await _reply(
            request, body, stream_tail=b"data: " + envelope(code, capacity) + b"\n\n"
        )
    return await _reply(request, body)


def make_cloudflare_app() -> web.Application:
    """Serves POST /client/v4/accounts/{account_id}/ai/v1/chat/completions."""
    app = _new_app()
    app.router.add_post("/client/v4/accounts/{account_id}/ai/v1/chat/completions", _cloudflare_chat)
    return app
