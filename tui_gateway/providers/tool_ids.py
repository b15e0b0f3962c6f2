"""The tool call id codec: a Gemini thought signature riding in an OpenAI tool call id.

Gemini 2.5+ puts an opaque `thoughtSignature` on the first `functionCall` part of a step and wants
it back with that call. OpenAI messages have no place for it, so it rides in the tool call id, the
one field every client echoes: `<id>__thought__<signature>`, the shape LiteLLM uses. Any adapter
may meet such ids in a conversation that went through Gemini, so the codec lives here, apart from
the Gemini modules: an OpenAI-style upstream strips the signatures without importing Gemini code.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SIGNATURE_SEPARATOR", "encode_call_id", "split_call_id", "strip_signature_ids"]

SIGNATURE_SEPARATOR = "__thought__"


def encode_call_id(call_id: str, signature: str | None) -> str:
    """`call_id` with `signature` appended, or `call_id` itself when there is none."""
    return f"{call_id}{SIGNATURE_SEPARATOR}{signature}" if signature else call_id


def split_call_id(call_id: str) -> tuple[str, str | None]:
    """`(base id, thought signature or None)` of an id made by `encode_call_id`."""
    base, sep, signature = call_id.partition(SIGNATURE_SEPARATOR)
    return base, (signature or None) if sep else None


def strip_signature_ids(messages: list[Any]) -> list[Any]:
    """`messages` with signatures cut out of tool call ids, for upstreams that limit id length."""
    out = []
    for message in messages:
        if not isinstance(message, dict):
            out.append(message)
            continue
        if isinstance(message.get("tool_call_id"), str):
            message = {**message, "tool_call_id": split_call_id(message["tool_call_id"])[0]}
        if isinstance(message.get("tool_calls"), list):
            calls = [
                {**c, "id": split_call_id(c["id"])[0]} if isinstance(c.get("id"), str) else c
                for c in message["tool_calls"]
                if isinstance(c, dict)
            ]
            message = {**message, "tool_calls": calls}
        out.append(message)
    return out
