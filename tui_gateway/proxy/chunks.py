"""Cheap looks into OpenAI chunk payloads: the relay forwards bytes, it does not re-serialize."""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..providers import wrapped_error

_FINISH_MARKERS = (b'"finish_reason":"', b'"finish_reason": "')
_USAGE_MARKERS = (b'"usage":{', b'"usage": {')


@dataclass(slots=True)
class StreamScan:
    """What the relay has learned from the payloads it forwarded so far."""

    chunks: int = 0
    finished: bool = False
    """A chunk carried a `finish_reason`: the answer is complete even if `[DONE]` never comes."""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    def scan(self, payloads: list[bytes]) -> None:
        """Look at one batch; raises WrappedError if any payload is an error in disguise."""
        for payload in payloads:
            error = wrapped_error(payload)
            if error is not None:
                raise error
            if not self.finished and any(m in payload for m in _FINISH_MARKERS):
                self.finished = True
            if any(m in payload for m in _USAGE_MARKERS):
                self._read_usage(payload)
        self.chunks += len(payloads)

    def _read_usage(self, payload: bytes) -> None:
        try:
            usage = json.loads(payload).get("usage")
        except (ValueError, AttributeError):
            return
        if isinstance(usage, dict):
            self.prompt_tokens = _int(usage.get("prompt_tokens"))
            self.completion_tokens = _int(usage.get("completion_tokens"))


def usage_of(body: bytes) -> tuple[int | None, int | None]:
    """(prompt, completion) tokens of a non-streaming reply, if it says."""
    try:
        usage = json.loads(body).get("usage")
    except (ValueError, AttributeError):
        return None, None
    if not isinstance(usage, dict):
        return None, None
    return _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))


def frame(payloads: list[bytes]) -> bytes:
    """SSE framing for a batch, joined so one upstream read costs one client write."""
    return b"".join([b"data: " + p + b"\n\n" for p in payloads])


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
