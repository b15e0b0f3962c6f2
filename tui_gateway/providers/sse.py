"""Splitting a server-sent-events byte stream into `data:` payloads."""

from __future__ import annotations

DONE = b"[DONE]"


class SSEDecoder:
    """Incremental: feed raw reads, get whole `data:` payloads back.

    `[DONE]` is returned as the last payload, so a relay can forward it in the same write as the
    chunks that came with it; nothing after it is read.

    Comments (`: keep-alive`), `event:`/`id:` fields and blank lines are dropped: the gateway
    re-frames every payload itself, so an upstream's keep-alives never reach the client as data.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self.done = False

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer + data if self._buffer else data
        lines = buffer.split(b"\n")
        self._buffer = lines.pop()  # the part after the last newline is not a whole line yet
        payloads: list[bytes] = []
        for line in lines:
            if line.startswith(b"data:"):
                payload = line[5:].strip()
                if payload == DONE:
                    self.done = True
                    payloads.append(DONE)
                    break
                if payload:
                    payloads.append(payload)
        return payloads

    def flush(self) -> list[bytes]:
        """Whatever whole event sits in the buffer when the body ends without a final newline."""
        rest, self._buffer = self._buffer, b""
        return self.feed(rest + b"\n") if rest else []
