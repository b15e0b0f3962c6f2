"""Server-sent events in and out: upstream reads become batches of framed `data:` events."""

from __future__ import annotations

from dataclasses import dataclass

DONE = b"[DONE]"
_DONE_EVENT = b"data: [DONE]\n\n"
_SEPARATOR = b"\n\ndata: "


@dataclass(frozen=True, slots=True)
class SSEBatch:
    """The `data:` events of one upstream read, framed canonically for the client.

    Canonical framing (`data: <payload>\\n\\n`, one line per event) lets the relay forward bytes
    as they came and split them into payloads only when it must look inside one.
    """

    framed: bytes
    count: int
    """Data events in the batch, not counting `[DONE]`."""
    done: bool = False
    """The batch ends with `data: [DONE]`."""

    @classmethod
    def of(cls, payloads: list[bytes]) -> SSEBatch:
        done = bool(payloads) and payloads[-1] == DONE
        framed = b"data: " + _SEPARATOR.join(payloads) + b"\n\n"
        return cls(framed, len(payloads) - done, done)

    def without_done(self) -> SSEBatch:
        """The same events without the closing `[DONE]` (something must go out before it)."""
        if not self.done:
            return self
        return (
            SSEBatch.of([p for p in self.payloads() if p != DONE])
            if self.count
            else SSEBatch(b"", 0)
        )

    def payloads(self) -> list[bytes]:
        return self.framed[6:-2].split(_SEPARATOR)


class SSEDecoder:
    """Incremental: feed raw reads, get batches of whole events back.

    A read that is already canonical (the usual case) passes through untouched. Anything else,
    such as comments (`: keep-alive`), `event:`/`id:` fields, CRLF or an event split across
    reads, is parsed line by line and re-framed; comments and empty events are dropped, so an
    upstream's keep-alives never reach the client as data. `[DONE]` ends the batch it is in, and
    nothing after it is read.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self.done = False

    def feed(self, data: bytes) -> SSEBatch | None:
        if self.done:
            return None
        if not self._buffer:
            batch = _canonical(data)
            if batch is not None:
                self.done = batch.done
                return batch
        buffer = self._buffer + data
        lines = buffer.split(b"\n")
        self._buffer = lines.pop()  # the part after the last newline is not a whole line yet
        payloads = [line[5:].strip() for line in lines if line[:5] == b"data:"]
        if b"" in payloads:
            payloads = [p for p in payloads if p]
        if DONE in payloads:
            self.done = True
            del payloads[payloads.index(DONE) + 1 :]
        return SSEBatch.of(payloads) if payloads else None

    def flush(self) -> SSEBatch | None:
        """Whatever whole event sits in the buffer when the body ends without a final newline."""
        rest, self._buffer = self._buffer, b""
        return self.feed(rest + b"\n") if rest else None


def _canonical(data: bytes) -> SSEBatch | None:
    """`data` as a batch if it is whole canonical events, else None.

    Two C-level counts decide it: when every newline belongs to an event separator
    (`\\n\\ndata: `) or to the final `\\n\\n`, each event is exactly one `data:` line.
    """
    if not (data.startswith(b"data: ") and data.endswith(b"\n\n")) or b"\r" in data:
        return None
    separators = data.count(_SEPARATOR)
    if data.count(b"\n") != 2 * separators + 2:
        return None
    done_at = data.find(_DONE_EVENT)
    if done_at == -1:
        return SSEBatch(data, separators + 1)
    if done_at + len(_DONE_EVENT) != len(data):
        return None  # something follows [DONE]: let the slow path cut it off
    return SSEBatch(data, separators, done=True)
