"""OpenAI chat.completions -> Gemini `generateContent` requests. Pure: no I/O, no clock.

Tool call ids and thought signatures. Gemini 2.5+ puts an opaque `thoughtSignature` on the first
`functionCall` part of a step, and Gemini 3 answers 400 when a later request sends that call back
without it. OpenAI messages have no place for it, so it rides in the tool call id, the one field
every client echoes (it pairs tool results with calls): `<id>__thought__<signature>`, the shape
LiteLLM uses (the codec is `tool_ids`). It is also put in `extra_content.google.thought_signature`,
where Google's own OpenAI-compatible endpoint puts it; that field wins when a client sends both.
The base id is the part's `functionCall.id` when Gemini sends one, else `call_<prefix>_<n>` (the
caller's prefix keeps ids unique across a conversation). A call with no signature at all (history
written by another model after a fallback) gets Google's documented placeholder
`skip_thought_signature_validator`. Ids are never sent to Gemini: its API refuses `id` inside
`functionCall`/`functionResponse` parts, so a tool result is paired by function name, found from
the earlier call with the same id. Signatures on text parts are dropped (Gemini does not require
them back). `tool_ids.strip_signature_ids` shortens such ids again for upstreams with id length
limits (OpenAI allows 40 characters).

The reply side, Gemini -> OpenAI, is `gemini_reply`.
"""

from __future__ import annotations

import json
from typing import Any

from ..domain.sessions import flatten_content
from .tool_ids import split_call_id

__all__ = ["FOREIGN_SIGNATURE", "clean_schema", "to_gemini"]

FOREIGN_SIGNATURE = "skip_thought_signature_validator"
"""Google's placeholder for a function call the model did not produce (thought-signatures FAQ)."""

_MODES = {"none": "NONE", "auto": "AUTO", "required": "ANY"}
_CONFIG = (
    ("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK"), ("n", "candidateCount"),
    ("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty"),
    ("seed", "seed"),
)  # fmt: skip
# The OpenAPI subset Gemini's `Schema` accepts; anything else is a 400 ("Unknown name ...").
_SCHEMA_KEYS = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "items", "properties",
    "required", "minItems", "maxItems", "minProperties", "maxProperties", "minLength",
    "maxLength", "pattern", "minimum", "maximum", "anyOf", "default", "example",
    "propertyOrdering",
})  # fmt: skip
_FORMATS = frozenset({"enum", "date-time", "float", "double", "int32", "int64"})

# --- OpenAI request -> Gemini request ---------------------------------------------------------


def to_gemini(body: dict[str, Any]) -> dict[str, Any]:
    """The `generateContent` request for an OpenAI chat.completions request body."""
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name, for the tool results after it
    for message in body.get("messages") or ():
        if not isinstance(message, dict):
            continue
        role, content = message.get("role"), message.get("content")
        if role in ("system", "developer"):
            system.append(flatten_content(content))
        elif role == "assistant":
            calls = _call_parts(message.get("tool_calls"), names)
            _append(contents, "model", _content_parts(content) + calls)
        elif role in ("tool", "function"):
            call_id = str(message.get("tool_call_id") or "")
            name = names.get(call_id) or names.get(split_call_id(call_id)[0])
            result = {"name": name or str(message.get("name") or "unknown")}
            reply = {**result, "response": _response_object(content)}
            _append(contents, "user", [{"functionResponse": reply}])
        else:
            _append(contents, "user", _content_parts(content))
    request: dict[str, Any] = {"contents": contents}
    instruction = "\n\n".join(s for s in system if s)
    if instruction and contents:
        request["systemInstruction"] = {"parts": [{"text": instruction}]}
    elif instruction:  # Gemini needs at least one turn
        contents.append({"role": "user", "parts": [{"text": instruction}]})
    declarations = [d for d in map(_declaration, body.get("tools") or ()) if d]
    if declarations:
        request["tools"] = [{"functionDeclarations": declarations}]
    tool_config = _tool_config(body.get("tool_choice"))
    if tool_config and declarations:
        request["toolConfig"] = tool_config
    config = _generation_config(body)
    if config:
        request["generationConfig"] = config
    return request


def _append(contents: list[dict[str, Any]], role: str, parts: list[dict[str, Any]]) -> None:
    """Add a turn, merged into the previous one if it has the same role (Gemini alternates)."""
    if not parts:
        return
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def _content_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else ():
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text" and part.get("text"):
            parts.append({"text": str(part["text"])})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            parts.append(_data_part(str(url or ""), "image"))
        elif kind == "file" and isinstance(part.get("file"), dict):
            parts.append(_data_part(str(part["file"].get("file_data") or ""), "file"))
        elif kind != "text":
            parts.append({"text": f"[{kind} part not forwarded]"})
    return parts


def _data_part(url: str, what: str) -> dict[str, Any]:
    """`inlineData` for a base64 data URL; a short text note for anything else (remote URLs)."""
    head, sep, data = url.partition(",")
    if url.startswith("data:") and sep and head.endswith(";base64"):
        return {"inlineData": {"mimeType": head[5:-7] or "application/octet-stream", "data": data}}
    shown = url if len(url) <= 200 and not url.startswith("data:") else "inline data"
    return {"text": f"[{what} not forwarded: {shown}]"}


def _call_parts(tool_calls: Any, names: dict[str, str]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for call in tool_calls if isinstance(tool_calls, list) else ():
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not function.get("name"):
            continue
        name, call_id = str(function["name"]), str(call.get("id") or "")
        base, signature = split_call_id(call_id)
        names[call_id] = names[base] = name
        extra = (call.get("extra_content") or {}).get("google") or {}
        signature = extra.get("thought_signature") or signature
        if signature is None and not parts:
            signature = FOREIGN_SIGNATURE  # only the first call of a step carries one
        part: dict[str, Any] = {"functionCall": {"name": name, "args": _args(function)}}
        if signature:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def _args(function: dict[str, Any]) -> dict[str, Any]:
    raw = function.get("arguments")
    try:
        args = json.loads(raw) if isinstance(raw, str) and raw.strip() else raw
    except ValueError:
        return {"arguments": raw}
    return args if isinstance(args, dict) else {}


def _response_object(content: Any) -> dict[str, Any]:
    """A tool result as the object `functionResponse.response` must be."""
    text = content if isinstance(content, str) else flatten_content(content)
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    return parsed if isinstance(parsed, dict) else {"output": text}


def _declaration(tool: Any) -> dict[str, Any] | None:
    if not isinstance(tool, dict) or tool.get("type", "function") != "function":
        return None
    function = tool.get("function")
    if not isinstance(function, dict) or not function.get("name"):
        return None
    declaration: dict[str, Any] = {"name": str(function["name"])}
    if function.get("description"):
        declaration["description"] = str(function["description"])
    parameters = clean_schema(function.get("parameters"))
    if parameters.get("properties") or parameters.get("type", "object") != "object":
        declaration["parameters"] = parameters  # an empty object schema is refused: leave it out
    return declaration


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if isinstance(choice, str) and choice in _MODES:
        return {"functionCallingConfig": {"mode": _MODES[choice]}}
    function = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(function, dict) and function.get("name"):
        config = {"mode": "ANY", "allowedFunctionNames": [str(function["name"])]}
        return {"functionCallingConfig": config}
    return None


def _generation_config(body: dict[str, Any]) -> dict[str, Any]:
    config = {ours: body[theirs] for theirs, ours in _CONFIG if body.get(theirs) is not None}
    limit = body.get("max_completion_tokens")
    limit = body.get("max_tokens") if limit is None else limit
    if limit is not None:
        config["maxOutputTokens"] = limit
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    response_format = body.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (response_format or {}).get("json_schema") or {}
        if kind == "json_schema" and isinstance(schema.get("schema"), dict):
            config["responseSchema"] = clean_schema(schema["schema"])
    return config


def clean_schema(schema: Any, defs: dict[str, Any] | None = None, depth: int = 0) -> dict[str, Any]:
    """A JSON schema cut down to what Gemini accepts: local `$ref`s inlined, `oneOf` as `anyOf`,
    `const` as `enum`, null types as `nullable`, unknown keys and formats dropped."""
    if not isinstance(schema, dict) or depth > 24:
        return {}
    if defs is None:
        defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        target = defs.get(ref.rsplit("/", 1)[-1])
        return clean_schema(
            {**(target if isinstance(target, dict) else {}), **rest}, defs, depth + 1
        )
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("const", "oneOf"):
            key, value = ("enum", [value]) if key == "const" else ("anyOf", value)
        if key not in _SCHEMA_KEYS:
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: clean_schema(sub, defs, depth + 1) for name, sub in value.items()}
        elif key == "items":
            out[key] = clean_schema(value, defs, depth + 1)
        elif key == "anyOf" and isinstance(value, list):
            options = [clean_schema(v, defs, depth + 1) for v in value]
            kept = [o for o in options if o.get("type") != "null"]
            if len(kept) < len(options):
                out["nullable"] = True
            if len(kept) == 1:
                out.update({k: v for k, v in kept[0].items() if k not in out})
            elif kept:
                out["anyOf"] = kept
        elif key == "type" and isinstance(value, list):
            kinds = [t for t in value if t != "null"]
            out["type"] = kinds[0] if kinds else "null"
            if "null" in value:
                out["nullable"] = True
        elif key == "enum" and not (isinstance(value, list) and all(map(_is_str, value))):
            continue  # Gemini enums are strings only
        elif key == "format" and value not in _FORMATS:
            continue
        else:
            out[key] = value
    if "required" in out:
        known = out.get("properties") or {}
        required = [r for r in out["required"] if r in known]
        out.pop("required")
        if required:
            out["required"] = required
    return out


def _is_str(value: object) -> bool:
    return isinstance(value, str)
