"""An in-process upstream for the demo and for tests: plausible text, configurable faults.

Everything it does is drawn from a seed, so a demo or a test run behaves the same each time.

Tools: when a request offers function tools and its last message is not a tool result, about
one conversation in three gets one call of a read-only looking tool (its name contains read,
view, list, glob or grep, or the word ls) instead of text. The draw comes from the messages
and the model's seed, so the same conversation always gets the same answer; `tool_choice:
"required"` or a last user message that mentions a "tool" makes the call certain. With
`tool_choice: "none"`, no such tool, or a tool result last the answer is text, so an agent
takes at most one tool round trip per user turn.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import re
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ..config import ModelSettings, ProviderSettings
from ..domain.errors import RateLimited, Unavailable
from ..domain.sessions import flatten_content
from .base import ChunkStream, Completion, estimated_usage, parse_completion
from .sse import DONE, SSEBatch

_WORDS = (
    "the gateway keeps each conversation on one model while it answers well and falls back "
    "quietly when an upstream stalls so the assistant never hangs we check the request log "
    "and the cooldown timers then refactor the parser add a test for the edge case and run "
    "the suite again before we commit the change with a clear message about why it matters "
    "async streams need timeouts retries need budgets and errors need names a good default "
    "saves a config key latency matters more than throughput for an editor"
).split()
_READ_LIKE = re.compile(r"read|view|list|glob|grep|(?<![a-z])ls(?![a-z])", re.IGNORECASE)
_ASKS_FOR_TOOL = re.compile(r"\btools?\b", re.IGNORECASE)
_TOOL_CHANCE = 1 / 3
# Keeps the tool draw independent of the reply-word draw made from the same conversation.
_TOOL_SALT = 0x7001
_ARGUMENT_FRAGMENTS = 3


class SimulatedUpstream:
    """Behaves per model as `[models.simulate]` says: speed, length and failure chances."""

    def __init__(self, settings: ProviderSettings, client: object = None) -> None:
        """`client` is not used: the provider registry hands every adapter one."""
        self.name = settings.name
        self._fault_rngs: dict[str, random.Random] = {}
        self._ids = 0

    def _faults(self, model: ModelSettings) -> random.Random:
        rng = self._fault_rngs.get(model.key)
        if rng is None:
            rng = random.Random(zlib.crc32(model.key.encode()) ^ model.simulate.seed)
            self._fault_rngs[model.key] = rng
        return rng

    def _draw_fault(self, model: ModelSettings) -> str | None:
        """One draw per request decides its fate: None (fine) or the fault to act out."""
        sim = model.simulate
        roll = self._faults(model).random()
        for fault, chance in (
            ("error", sim.error_rate),
            ("rate_limit", sim.rate_limit_rate),
            ("wrapped", sim.wrapped_error_rate),
            ("stall", sim.stall_rate),
        ):
            if roll < chance:
                return fault
            roll -= chance
        return None

    def _reply_words(self, body: dict[str, Any], model: ModelSettings) -> list[str]:
        rng = random.Random(zlib.crc32(_prompt(body).encode()) ^ model.simulate.seed)
        words = [rng.choice(_WORDS) for _ in range(model.simulate.reply_tokens)]
        words[0] = words[0].capitalize()
        return words

    def _envelope(self, model: ModelSettings, obj: str) -> dict[str, Any]:
        self._ids += 1
        return {
            "id": f"chatcmpl-sim-{self._ids}",
            "object": obj,
            "created": int(time.time()),
            "model": model.id,
        }

    async def complete(
        self, body: dict[str, Any], model: ModelSettings, *, api_key: str = ""
    ) -> Completion:
        fault = self._draw_fault(model)
        sim = model.simulate
        await asyncio.sleep(sim.first_token_ms / 1000)
        await _act_out(fault)
        tool = _tool_to_call(body, model)
        if fault == "wrapped":
            raw = _wrapped_body()
        elif tool is not None:
            envelope = self._envelope(model, "chat.completion")
            call = _tool_call(tool, envelope)
            tokens = _argument_tokens(call)
            await asyncio.sleep(tokens / sim.tokens_per_s)
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            reply = envelope | {
                "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
                "usage": estimated_usage(body.get("messages"), tokens),
            }
            raw = json.dumps(reply).encode()
        else:
            words = self._reply_words(body, model)
            await asyncio.sleep(len(words) / sim.tokens_per_s)
            reply = self._envelope(model, "chat.completion") | {
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": " ".join(words)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": estimated_usage(body.get("messages"), len(words)),
            }
            raw = json.dumps(reply).encode()
        return parse_completion(raw)

    @asynccontextmanager
    async def stream(
        self, body: dict[str, Any], model: ModelSettings, *, api_key: str = ""
    ) -> AsyncIterator[ChunkStream]:
        fault = self._draw_fault(model)
        sim = model.simulate
        await asyncio.sleep(sim.first_token_ms / 1000)
        # A stall splits evenly between "never starts" and "stops after a few tokens".
        stall_early = fault == "stall" and self._faults(model).random() < 0.5
        await _act_out(fault if fault != "stall" or stall_early else None)
        yield self._chunks(body, model, fault)

    async def _chunks(
        self, body: dict[str, Any], model: ModelSettings, fault: str | None
    ) -> ChunkStream:
        sim = model.simulate
        if fault == "wrapped":
            yield SSEBatch.of([_wrapped_body()])
            return
        tool = _tool_to_call(body, model)
        if tool is not None:
            async for batch in self._tool_chunks(body, model, tool, fault):
                yield batch
            return
        words = self._reply_words(body, model)
        per_chunk = max(1, round(sim.tokens_per_s * 0.02))  # ~50 chunks a second at most
        envelope = self._envelope(model, "chat.completion.chunk")
        for start in range(0, len(words), per_chunk):
            if fault == "stall" and start >= len(words) // 3:
                await asyncio.Event().wait()  # hangs until the relay gives up on us
            text = " ".join(words[start : start + per_chunk])
            delta: dict[str, Any] = {"content": text if start == 0 else " " + text}
            if start == 0:
                delta["role"] = "assistant"
            choice = {"index": 0, "delta": delta, "finish_reason": None}
            yield SSEBatch.of([json.dumps(envelope | {"choices": [choice]}).encode()])
            await asyncio.sleep(per_chunk / sim.tokens_per_s)
        final = [
            json.dumps(
                envelope | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            ).encode()
        ]
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = estimated_usage(body.get("messages"), len(words))
            final.append(json.dumps(envelope | {"choices": [], "usage": usage}).encode())
        final.append(DONE)
        yield SSEBatch.of(final)

    async def _tool_chunks(
        self, body: dict[str, Any], model: ModelSettings, tool: dict[str, Any], fault: str | None
    ) -> ChunkStream:
        """The call as OpenAI streams it: id and name first, then the arguments in pieces."""
        sim = model.simulate
        envelope = self._envelope(model, "chat.completion.chunk")
        call = _tool_call(tool, envelope)
        arguments = call["function"]["arguments"]
        head = {"index": 0, **call, "function": {"name": tool["name"], "arguments": ""}}
        deltas: list[dict[str, Any]] = [
            {"role": "assistant", "content": None, "tool_calls": [head]}
        ]
        deltas += [
            {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
            for piece in _fragments(arguments, _ARGUMENT_FRAGMENTS)
        ]
        tokens = _argument_tokens(call)
        for n, delta in enumerate(deltas):
            if fault == "stall" and n == 1:
                await asyncio.Event().wait()  # hangs until the relay gives up on us
            choice = {"index": 0, "delta": delta, "finish_reason": None}
            yield SSEBatch.of([json.dumps(envelope | {"choices": [choice]}).encode()])
            await asyncio.sleep(tokens / len(deltas) / sim.tokens_per_s)
        finish = {"index": 0, "delta": {}, "finish_reason": "tool_calls"}
        final = [json.dumps(envelope | {"choices": [finish]}).encode()]
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = estimated_usage(body.get("messages"), tokens)
            final.append(json.dumps(envelope | {"choices": [], "usage": usage}).encode())
        final.append(DONE)
        yield SSEBatch.of(final)


def _prompt(body: dict[str, Any]) -> str:
    messages = body.get("messages") or []
    return "".join(flatten_content(m.get("content")) for m in messages if isinstance(m, dict))


def _last_message(body: dict[str, Any], role: str | None = None) -> dict[str, Any] | None:
    """The last message (of `role`, if given), or None."""
    messages = body.get("messages")
    turns: list[Any] = messages if isinstance(messages, list) else []
    for message in reversed(turns):
        if isinstance(message, dict) and (role is None or message.get("role") == role):
            return message
    return None


def _tool_to_call(body: dict[str, Any], model: ModelSettings) -> dict[str, Any] | None:
    """The offered function (OpenAI `tools[].function`) this reply calls, or None for text."""
    choice = body.get("tool_choice")
    last = _last_message(body)
    if choice == "none" or (last is not None and last.get("role") == "tool"):
        return None
    readable = [
        function
        for tool in body.get("tools") or ()
        if isinstance(tool, dict)
        and isinstance(function := tool.get("function"), dict)
        and isinstance(function.get("name"), str)
        and _READ_LIKE.search(function["name"])
    ]
    if not readable:
        return None
    rng = random.Random(zlib.crc32(_prompt(body).encode()) ^ model.simulate.seed ^ _TOOL_SALT)
    user = _last_message(body, "user")
    asked = choice == "required" or (
        user is not None and _ASKS_FOR_TOOL.search(flatten_content(user.get("content"))) is not None
    )
    if not asked and rng.random() >= _TOOL_CHANCE:
        return None
    return rng.choice(readable)


def _tool_call(tool: dict[str, Any], envelope: dict[str, Any]) -> dict[str, Any]:
    """One whole call of `tool`, its id numbered like the reply that carries it."""
    arguments = json.dumps(_arguments(tool.get("parameters")))
    call_id = "call_" + str(envelope["id"]).removeprefix("chatcmpl-")
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": tool["name"], "arguments": arguments},
    }


def _arguments(parameters: Any) -> dict[str, Any]:
    """A value for each required property of a JSON schema object, fitting its type."""
    if not isinstance(parameters, dict) or not isinstance(parameters.get("required"), list):
        return {}
    properties = parameters.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    return {
        name: _value(name, properties.get(name))
        for name in parameters["required"]
        if isinstance(name, str)
    }


def _value(name: str, schema: Any) -> Any:
    schema = schema if isinstance(schema, dict) else {}
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    kind = schema.get("type")
    if isinstance(kind, list):  # ["string", "null"]: any non-null type will do
        kind = next((k for k in kind if k != "null"), None)
    match kind:
        case "integer" | "number":
            return 1
        case "boolean":
            return False
        case "array":
            return []
        case "object":
            return {}
    lowered = name.lower()
    if "dir" in lowered or "folder" in lowered:
        return "."
    if "pattern" in lowered or "query" in lowered:
        return "TODO"
    if "path" in lowered or "file" in lowered:
        return "README.md"
    return "demo"


def _fragments(text: str, n: int) -> list[str]:
    """`text` cut into `n` non-empty pieces of near-equal length (fewer if it is shorter)."""
    n = max(1, min(n, len(text)))
    bounds = [len(text) * k // n for k in range(n + 1)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def _argument_tokens(call: dict[str, Any]) -> int:
    # About four characters to a token, as estimated_usage counts prompts.
    return max(1, len(call["function"]["arguments"]) // 4)


async def _act_out(fault: str | None) -> None:
    """Fail or hang as `fault` says, before any data."""
    if fault == "error":
        raise Unavailable("simulated upstream error", status=503)
    if fault == "rate_limit":
        raise RateLimited("simulated rate limit", status=429, retry_after_s=5.0)
    if fault == "stall":
        await asyncio.Event().wait()


def _wrapped_body() -> bytes:
    return b'{"error": {"message": "simulated provider overloaded (inside a 200)", "code": 503}}'
