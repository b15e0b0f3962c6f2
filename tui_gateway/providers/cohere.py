"""Cohere's OpenAI-compatibility endpoint: OpenAI wire format with a few refusals smoothed over.

Cohere rejects two things OpenAI clients send routinely: `additionalProperties` in a tool's JSON
schema and `parallel_tool_calls`. Both are removed before sending. Its own error bodies are
`{"message": "..."}` rather than OpenAI's `{"error": {...}}`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from ..config import ModelSettings, ProviderSettings
from .base import ErrorDetail, error_detail
from .http import UpstreamClient
from .openai import OpenAIUpstream

COHERE_BASE_URL = "https://api.cohere.ai/compatibility/v1"

# Schema keywords whose value maps names to subschemas: the names are not keywords.
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions"})
# Schema keywords whose value is instance data, not a schema: left as they are.
_DATA_KEYWORDS = frozenset({"enum", "const", "default", "examples"})


class CohereUpstream(OpenAIUpstream):
    """Posts to `{base_url}/chat/completions`; `base_url` defaults to Cohere's compatibility API."""

    def __init__(self, settings: ProviderSettings, client: UpstreamClient) -> None:
        super().__init__(replace(settings, base_url=settings.base_url or COHERE_BASE_URL), client)

    def _payload(self, body: dict[str, Any], model: ModelSettings, *, stream: bool) -> bytes:
        return super()._payload(cohere_body(body), model, stream=stream)

    def _error_detail(self, raw: bytes) -> ErrorDetail:
        """What an error body says; it may be Cohere's `{"message": "..."}`."""
        message = cohere_message(raw)
        if message is None:
            return error_detail(raw)
        # Cohere says "too many tokens" where OpenAI says context_length_exceeded: a model with a
        # larger window may still take the request, so routing must not treat it as hopeless.
        code = "context_length_exceeded" if message.startswith("too many tokens") else None
        return ErrorDetail(message, code)


def cohere_body(body: dict[str, Any]) -> dict[str, Any]:
    """A copy of an OpenAI request body that Cohere accepts; `body` itself is not changed."""
    out = {k: v for k, v in body.items() if k != "parallel_tool_calls"}
    tools = body.get("tools")
    if isinstance(tools, list):
        out["tools"] = [_tool(tool) for tool in tools]
    return out


def _tool(tool: Any) -> Any:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or "parameters" not in function:
        return tool
    parameters = strip_additional_properties(function["parameters"])
    return {**tool, "function": {**function, "parameters": parameters}}


def strip_additional_properties(schema: Any) -> Any:
    """A copy of a JSON schema without any `additionalProperties` keyword, at every depth.

    A property that happens to be *named* `additionalProperties` is kept, and so is data inside
    `enum`, `const`, `default` and `examples`.
    """
    if isinstance(schema, list):
        return [strip_additional_properties(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "additionalProperties":
            continue
        if key in _DATA_KEYWORDS:
            out[key] = value
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: strip_additional_properties(sub) for name, sub in value.items()}
        else:
            out[key] = strip_additional_properties(value)
    return out


def cohere_message(raw: bytes) -> str | None:
    """The text of a Cohere `{"message": "..."}` error body, or None for any other body."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(parsed, dict) or "error" in parsed:
        return None
    message = parsed.get("message")
    return message if isinstance(message, str) and message else None
