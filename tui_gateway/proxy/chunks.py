"""Cheap looks into OpenAI chunk payloads: the relay forwards bytes, it does not re-serialize."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import msgspec

from ..providers.base import estimated_usage, token_count, wrapped_error
from ..providers.sse import DONE, SSEBatch

_FINISH_MARKERS = (b'"finish_reason":"', b'"finish_reason": "')
_USAGE_MARKERS = (b'"usage":{', b'"usage": {')


@dataclass(slots=True)
class StreamScan:
    """What the relay has learned from the payloads it forwarded so far."""

    chunks: int = 0
    finished: bool = False
    """A chunk carried a `finish_reason`: the answer is complete even if `[DONE]` never comes."""
    done: bool = False
    """The upstream sent `[DONE]` (and it is part of the framed bytes already)."""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    malformed: int = 0
    """Events dropped because they were not JSON objects."""

    def scan(self, batch: SSEBatch) -> SSEBatch:
        """Look at one batch before it is forwarded; returns what to forward.

        Raises WrappedError if any payload is an error in disguise. Markers are searched once in
        the framed batch; only a batch that has one is looked at payload by payload. An event
        that is not a JSON object is dropped (and counted): a client's parser would choke on it.
        """
        objects = batch.objects
        if not (_objects_only(batch) if objects is None else objects):
            batch = self._without_malformed(batch)
        framed = batch.framed
        if b'"error"' in framed:
            for payload in batch.payloads():
                error = wrapped_error(payload)
                if error is not None:
                    raise error
        # rfind: finish_reason and usage sit at the end of a stream, so a batch holding them
        # is searched from where they are.
        if not self.finished and (
            framed.rfind(_FINISH_MARKERS[0]) != -1 or framed.rfind(_FINISH_MARKERS[1]) != -1
        ):
            self.finished = True
        at = framed.rfind(_USAGE_MARKERS[0])
        if at == -1:
            at = framed.rfind(_USAGE_MARKERS[1])
        if at != -1:
            # Canonical framing: the event holding `at` runs from the separator before it (a raw
            # newline cannot occur inside JSON) to the blank line after it.
            start = framed.rfind(b"\n\ndata: ", 0, at)
            start = 6 if start == -1 else start + 8
            # A multi-line event keeps a `data: ` prefix per line: join them back first.
            self._read_usage(framed[start : framed.find(b"\n\n", at)].replace(b"\ndata: ", b"\n"))
        self.done = batch.done
        self.chunks += batch.count
        return batch

    def _without_malformed(self, batch: SSEBatch) -> SSEBatch:
        kept = []
        for payload in batch.payloads():
            if payload == DONE or _is_json_object(payload):
                kept.append(payload)
            else:
                self.malformed += 1
        return SSEBatch.of(kept) if kept else SSEBatch(b"", 0)

    def _read_usage(self, payload: bytes) -> bool:
        if _USAGE_MARKERS[0] not in payload and _USAGE_MARKERS[1] not in payload:
            return False
        try:
            usage = _read_usage(payload).usage
        except msgspec.DecodeError:  # not an object, or `usage` is not one
            return False
        if usage is None:
            return False
        self.prompt_tokens = token_count(usage.prompt_tokens)
        self.completion_tokens = token_count(usage.completion_tokens)
        return True


class _Usage(msgspec.Struct):
    prompt_tokens: Any = None
    completion_tokens: Any = None


class _WithUsage(msgspec.Struct):
    usage: _Usage | None = None


_read_usage = msgspec.json.Decoder(_WithUsage).decode
"""Only the usage of a chunk, skipping the rest unparsed: ~8x faster than json.loads."""


def _objects_only(batch: SSEBatch) -> bool:
    """Whether every event looks like a JSON object (ends with `}`), by one fast count.

    An 8-byte pattern is searched far faster than a short one: every event but the last is
    followed by a separator, so `}` + separator must occur once per such event.
    """
    events = batch.count + batch.done
    framed = batch.framed
    if framed.count(b"}\n\ndata: ") != events - 1:
        return False
    return batch.done or framed.endswith(b"}\n\n")


def _is_json_object(payload: bytes) -> bool:
    try:
        return isinstance(json.loads(payload), dict)
    except ValueError:
        return False


def encode_chunk(chunk: dict[str, Any]) -> bytes:
    """A chunk rewritten by the gateway, as a payload: compact, and ASCII so that a lone
    surrogate an upstream sent survives the encoding."""
    return json.dumps(chunk, separators=(",", ":")).encode()


def owes_usage(body: dict[str, Any], scan: StreamScan) -> bool:
    """The client asked for usage (`stream_options.include_usage`) and none came."""
    options = body.get("stream_options")
    asked = isinstance(options, dict) and options.get("include_usage") is True
    return asked and scan.prompt_tokens is None and scan.completion_tokens is None


def usage_event(body: dict[str, Any], model_id: str, chunks: int, request_id: str) -> bytes:
    """An estimated usage chunk (one token per content chunk relayed), framed for the client."""
    chunk = {
        "id": f"chatcmpl-gw-{request_id}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model_id,
        "choices": [],
        "usage": estimated_usage(body.get("messages"), chunks),
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"
