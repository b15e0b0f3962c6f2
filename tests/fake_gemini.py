"""A local fake of Google's Gemini API whose behaviour is chosen by the model id in the URL.

Built from the public v1beta reference: `POST /v1beta/models/{model}:generateContent` answers one
`GenerateContentResponse`; `POST .../{model}:streamGenerateContent?alt=sse` answers server-sent
events, each `data: <GenerateContentResponse>` and CRLF-framed, with no end marker. Errors have
Google's shape, `{"error": {"code": 429, "message": ..., "status": "RESOURCE_EXHAUSTED"}}`.

The model id is `scenario` or `scenario;key=value,...` (unknown names behave like `ok`):

    ok                 text in `chunks`=3 events (text=<word>, `delay_ms`=0 apart); STOP
    thinking           a thought-summary part first, the text, then a signature-only part
    tool-call          `calls`=1 functionCall parts for the declared tools (a thoughtSignature on
                       the first); ids=1 adds `functionCall.id` (as Gemini 3 does), text=1 a text
    max-tokens         text, then MAX_TOKENS
    safety             `after`=1 text events, then SAFETY with no content
    blocked-prompt     `promptFeedback.blockReason` SAFETY and no candidates
    error-NNN          HTTP NNN with a Google error body; error-429 carries a RetryInfo detail
                       (`retry`=1 s) and, with header=1, a Retry-After header too
    context-length     HTTP 400 INVALID_ARGUMENT "The input token count ... exceeds ..."
    wrapped-error      HTTP 200 whose body, or the stream event after `after`=1 events, is an
                       error (`code`=503)
    stall              no headers for `ms`=60000, then the connection is dropped
    stall-after-first  one event, then the same stall
    drop-mid-stream    `after`=1 events, then the TCP connection is closed mid-body
    cut                events without any finishReason, then a clean end of body
    html-200           HTTP 200 with an HTML page

Every request is checked as the real API checks it, answering 400 INVALID_ARGUMENT for: a field
Gemini does not know (top level, generationConfig, parts, function schemas), empty `contents` or
parts, roles other than user/model, `id` inside functionCall/functionResponse (the API refuses it
in requests), and Gemini 3's rule that in the current turn the first functionCall of each model
step carries a thoughtSignature this server issued (or Google's documented placeholder). A missing
`x-goog-api-key` is a 403.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

__all__ = ["RECEIVED", "ReceivedRequest", "make_app"]

_STATUS = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}  # fmt: skip
_TOP = {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig",
        "safetySettings", "cachedContent"}  # fmt: skip
_GENERATION = {"temperature", "topP", "topK", "candidateCount", "maxOutputTokens", "stopSequences",
               "responseMimeType", "responseSchema", "responseJsonSchema", "presencePenalty",
               "frequencyPenalty", "seed", "thinkingConfig"}  # fmt: skip
_PART_DATA = {"text", "inlineData", "fileData", "functionCall", "functionResponse"}
_PART_META = {"thought", "thoughtSignature"}
_SCHEMA = {"type", "format", "title", "description", "nullable", "enum", "items", "properties",
           "required", "minItems", "maxItems", "minProperties", "maxProperties", "minLength",
           "maxLength", "pattern", "minimum", "maximum", "anyOf", "default", "example",
           "propertyOrdering"}  # fmt: skip
_PLACEHOLDERS = {"skip_thought_signature_validator", "context_engineering_is_the_way_to_go"}
_SAFETY = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}]
_POLL_S = 0.02


@dataclass(slots=True)
class ReceivedRequest:
    """One request as the fake saw it, for tests to inspect."""

    model: str
    method: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]


RECEIVED = web.AppKey("received", list[ReceivedRequest])
_ISSUED = web.AppKey("issued", set[str])
_IDS: web.AppKey[itertools.count[int]] = web.AppKey("ids")


def _parse_model(model: str) -> tuple[str, dict[str, str]]:
    name, _, raw = model.partition(";")
    pairs = (item.partition("=") for item in raw.split(","))
    return name, {k.strip(): v.strip() for k, sep, v in pairs if sep}


def _error(code: int, message: str, **extra: Any) -> web.Response:
    error = {"code": code, "message": message, "status": _STATUS.get(code, "UNKNOWN"), **extra}
    return web.json_response({"error": error}, status=code)


def _unknown(name: str, where: str) -> str:
    at = f" at '{where}'" if where else ""
    return f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.'


# --- request checks -----------------------------------------------------------------------------


def _problem(body: dict[str, Any], issued: set[str]) -> str | None:
    """What the real API would refuse in `body`, or None."""
    for name in sorted(set(body) - _TOP):
        return _unknown(name, "")
    for name in sorted(set(body.get("generationConfig") or {}) - _GENERATION):
        return _unknown(name, "generation_config")
    contents = body.get("contents")
    if not contents:
        return "* GenerateContentRequest.contents: contents is not specified"
    for i, content in enumerate(contents):
        if content.get("role") not in ("user", "model"):
            return "Please use a valid role: user, model."
        if not content.get("parts"):
            return (
                f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty."
            )
        for j, part in enumerate(content["parts"]):
            where = f"contents[{i}].parts[{j}]"
            for name in sorted(set(part) - _PART_DATA - _PART_META):
                return _unknown(name, where)
            if len(set(part) & _PART_DATA) != 1:
                return f"* GenerateContentRequest.{where}.data: required oneof field 'data' must have one initialized field"
            for field in ("functionCall", "functionResponse"):
                if "id" in (part.get(field) or {}):
                    return _unknown("id", f"{where}.{field}")
    for k, tool in enumerate(body.get("tools") or ()):
        for d, declaration in enumerate(tool.get("functionDeclarations") or ()):
            where = f"tools[{k}].function_declarations[{d}].parameters"
            problem = _schema_problem(declaration.get("parameters") or {}, where)
            if problem:
                return problem
    return _signature_problem(contents, issued)


def _schema_problem(schema: dict[str, Any], where: str) -> str | None:
    for key, value in schema.items():
        if key not in _SCHEMA:
            return _unknown(key, where)
        subs: list[tuple[str, Any]] = []
        if key == "properties":
            subs = [(f"{where}.properties[{n}].value", v) for n, v in value.items()]
        elif key == "items":
            subs = [(f"{where}.items", value)]
        elif key == "anyOf":
            subs = [(f"{where}.any_of[{n}]", v) for n, v in enumerate(value)]
        for sub_where, sub in subs:
            problem = _schema_problem(sub, sub_where)
            if problem:
                return problem
    return None


def _signature_problem(contents: list[dict[str, Any]], issued: set[str]) -> str | None:
    """Gemini 3: each model step of the current turn (since the last user text) needs one."""
    starts = [
        i
        for i, c in enumerate(contents)
        if c["role"] == "user" and any("functionResponse" not in p for p in c["parts"])
    ]
    for position, content in enumerate(contents[max(starts, default=0) :], max(starts, default=0)):
        calls = [p for p in content["parts"] if "functionCall" in p]
        if content["role"] != "model" or not calls:
            continue
        signature = calls[0].get("thoughtSignature")
        if signature is None:
            name = calls[0]["functionCall"].get("name")
            return (
                "Function call is missing a thought_signature in functionCall parts. This is "
                "required for tools to work correctly, and missing thought_signature may lead to "
                f"degraded model performance. Additional data, function call `default_api:{name}` "
                f", position {position + 1}. Please refer to "
                "https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
            )
        if signature not in issued and signature not in _PLACEHOLDERS:
            return "Corrupted thought signature."
    return None


# --- replies ------------------------------------------------------------------------------------


class _Call:
    def __init__(self, request: web.Request, model: str, body: dict[str, Any]) -> None:
        self.request = request
        self.model = model
        self.body = body
        self.scenario, self.params = _parse_model(model)
        ids = request.app[_IDS]
        self.response_id = f"fake-{next(ids)}"
        self.produced = 0

    def num(self, key: str, default: int) -> int:
        return int(self.params.get(key, default))

    def signature(self) -> str:
        value = base64.b64encode(f"fake-signature-{self.response_id}".encode()).decode()
        self.request.app[_ISSUED].add(value)
        return value

    def event(
        self, parts: list[dict[str, Any]] | None, finish: str | None = None
    ) -> dict[str, Any]:
        candidate: dict[str, Any] = {"index": 0}
        if parts:
            candidate["content"] = {"parts": parts, "role": "model"}
            self.produced += sum(len(str(p.get("text", "x")).split()) or 1 for p in parts)
        if finish:
            candidate["finishReason"] = finish
        if finish in ("SAFETY",):
            candidate["safetyRatings"] = _SAFETY
        return {"candidates": [candidate], **self.envelope()}

    def envelope(self) -> dict[str, Any]:
        prompt = len(json.dumps(self.body.get("contents"))) // 4
        usage = {"promptTokenCount": prompt, "candidatesTokenCount": self.produced}
        usage["totalTokenCount"] = prompt + self.produced
        return {"usageMetadata": usage, "modelVersion": self.model, "responseId": self.response_id}


def _events(call: _Call) -> list[dict[str, Any]]:
    """The stream of replies for a scenario; the non-streaming reply is their merge."""
    word = call.params.get("text", "hello")
    texts = [{"text": word if i == 0 else f" {word}"} for i in range(call.num("chunks", 3))]
    match call.scenario:
        case "tool-call":
            names = [
                d["name"] for t in call.body.get("tools") or () for d in t["functionDeclarations"]
            ] or ["lookup"]
            parts: list[dict[str, Any]] = []
            for n in range(call.num("calls", 1)):
                function = {"name": names[n % len(names)], "args": {"query": f"q{n}"}}
                if call.params.get("ids") == "1":
                    function["id"] = f"gem-{call.response_id}-{n}"
                parts.append({"functionCall": function})
            parts[0]["thoughtSignature"] = call.signature()
            head = [call.event([{"text": "Let me check."}])] if call.params.get("text") else []
            return head + [call.event(parts, "STOP")]
        case "thinking":
            thought = {"text": "Considering the question.", "thought": True}
            ending = {"text": "", "thoughtSignature": call.signature()}
            return (
                [call.event([thought])]
                + [call.event([t]) for t in texts]
                + [call.event([ending], "STOP")]
            )
        case "safety":
            return [call.event([t]) for t in texts[: call.num("after", 1)]] + [
                call.event(None, "SAFETY")
            ]
        case "blocked-prompt":
            feedback = {"blockReason": "SAFETY", "safetyRatings": _SAFETY}
            return [{"promptFeedback": feedback, **call.envelope()}]
    events = [call.event([t]) for t in texts]
    finish = "MAX_TOKENS" if call.scenario == "max-tokens" else "STOP"
    if call.scenario != "cut":
        events[-1]["candidates"][0]["finishReason"] = finish
    return events


def _merge(events: list[dict[str, Any]]) -> dict[str, Any]:
    merged = dict(events[-1])
    parts = [
        p
        for e in events
        for c in e.get("candidates", ())
        for p in c.get("content", {}).get("parts", ())
    ]
    if "candidates" in merged:
        candidate = {k: v for k, v in merged["candidates"][0].items() if k != "content"}
        if parts:
            candidate["content"] = {"parts": parts, "role": "model"}
        merged["candidates"] = [candidate]
    return merged


async def _hold(request: web.Request, seconds: float) -> None:
    """Wait up to `seconds`, returning early once the client has gone, then drop the socket."""
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if request.transport is None or request.transport.is_closing():
            break
        await asyncio.sleep(_POLL_S)
    if request.transport is not None:
        request.transport.abort()


async def _stream(call: _Call, events: list[dict[str, Any]]) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(call.request)
    scenario = call.scenario
    cut_at = {"wrapped-error": call.num("after", 1), "stall-after-first": 1}.get(scenario)
    cut_at = call.num("after", 1) if scenario == "drop-mid-stream" else cut_at
    for i, event in enumerate(events):
        if i == cut_at:
            break
        if i and call.num("delay_ms", 0):
            await asyncio.sleep(call.num("delay_ms", 0) / 1000)
        await resp.write(b"data: " + json.dumps(event).encode() + b"\r\n\r\n")
    if scenario == "wrapped-error":
        await asyncio.sleep(call.num("delay_ms", 0) / 1000)
        error = {
            "code": call.num("code", 503),
            "message": "fake: overloaded",
            "status": "UNAVAILABLE",
        }
        await resp.write(b"data: " + json.dumps({"error": error}).encode() + b"\r\n\r\n")
    elif scenario in ("stall-after-first", "drop-mid-stream"):
        await _hold(
            call.request, call.num("ms", 60000) / 1000 if scenario != "drop-mid-stream" else 0
        )
        return resp
    await resp.write_eof()
    return resp


async def _play(call: _Call, stream: bool) -> web.StreamResponse:
    scenario = call.scenario
    status = scenario.removeprefix("error-")
    if status != scenario and status.isdigit():
        code = int(status)
        if code != 429:
            return _error(code, f"fake: upstream error {code}")
        retry = call.num("retry", 1)
        details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry}s"}]
        resp = _error(429, "You exceeded your current quota.", details=details)
        if call.params.get("header") == "1":
            resp.headers["Retry-After"] = str(retry)
        return resp
    if scenario == "context-length":
        return _error(
            400,
            "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
        )
    if scenario == "html-200":
        return web.Response(
            text="<html><body>Service unavailable</body></html>", content_type="text/html"
        )
    if scenario == "stall":
        await _hold(call.request, call.num("ms", 60000) / 1000)
        return web.Response()
    if scenario == "wrapped-error" and not stream:
        error = {
            "code": call.num("code", 503),
            "message": "fake: overloaded",
            "status": "UNAVAILABLE",
        }
        return web.json_response({"error": error})
    events = _events(call)
    if not stream:
        if scenario == "drop-mid-stream":
            await _hold(call.request, 0)
            return web.Response()
        return web.json_response(_merge(events))
    return await _stream(call, events)


async def models(request: web.Request) -> web.StreamResponse:
    """POST /v1beta/models/{model}:{method}: check the request as Gemini does, then play it."""
    model, _, method = request.match_info["target"].rpartition(":")
    if method not in ("generateContent", "streamGenerateContent"):
        return _error(404, f"fake: no method {method!r}")
    stream = method == "streamGenerateContent"
    if stream and request.query.get("alt") != "sse":
        return _error(400, "fake: only alt=sse streaming is modelled")
    if not request.headers.get("x-goog-api-key"):
        return _error(
            403,
            "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
        )
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return _error(400, "Invalid JSON payload received.")
    query, headers = dict(request.query), dict(request.headers)
    request.app[RECEIVED].append(ReceivedRequest(model, method, query, headers, body))
    problem = _problem(body, request.app[_ISSUED])
    if problem:
        return _error(400, problem)
    return await _play(_Call(request, model, body), stream)


def make_app() -> web.Application:
    """Build the fake Gemini application; it starts nothing."""
    app = web.Application()
    app[RECEIVED] = []
    app[_ISSUED] = set()
    app[_IDS] = itertools.count()
    app.router.add_post("/v1beta/models/{target}", models)
    return app
