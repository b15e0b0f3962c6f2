"""An in-process upstream for the demo and for tests: plausible text, configurable faults.

Everything it does is drawn from a seed, so a demo or a test run behaves the same each time.
"""

from __future__ import annotations

import asyncio
import json
import random
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


class SimulatedUpstream:
    """Behaves per model as `[models.simulate]` says: speed, length and failure chances."""

    def __init__(self, settings: ProviderSettings) -> None:
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
        messages = body.get("messages") or []
        prompt = "".join(flatten_content(m.get("content")) for m in messages if isinstance(m, dict))
        rng = random.Random(zlib.crc32(prompt.encode()) ^ model.simulate.seed)
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
        await _act_out(fault, before_data=True)
        words = self._reply_words(body, model)
        if fault == "wrapped":
            raw = _wrapped_body()
        else:
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
        await _act_out(fault if fault != "stall" or stall_early else None, before_data=True)
        yield self._chunks(body, model, fault)

    async def _chunks(
        self, body: dict[str, Any], model: ModelSettings, fault: str | None
    ) -> ChunkStream:
        sim = model.simulate
        if fault == "wrapped":
            yield SSEBatch.of([_wrapped_body()])
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


async def _act_out(fault: str | None, *, before_data: bool) -> None:
    if fault == "error":
        raise Unavailable("simulated upstream error", status=503)
    if fault == "rate_limit":
        raise RateLimited("simulated rate limit", status=429, retry_after_s=5.0)
    if fault == "stall" and before_data:
        await asyncio.Event().wait()


def _wrapped_body() -> bytes:
    return b'{"error": {"message": "simulated provider overloaded (inside a 200)", "code": 503}}'
