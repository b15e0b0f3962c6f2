"""Server-sent events in and out: upstream reads become batches of framed `data:` events.

Reading follows the WHATWG HTML "event stream interpretation": CRLF, LF and a lone CR all end a
line; a line starting with `:` is a comment; one space after the field's colon is dropped, and
only one; an event's `data` lines are joined with `\\n`; an empty line ends the event. Two
deliberate departures suit a relay of OpenAI chunks: an event with empty data is dropped rather
than dispatched, and at the end of the body a pending event is still dispatched (an upstream that
closes without the final empty line has said all it will say). An event is at most
`MAX_EVENT_BYTES`: an upstream that sends one without end (no empty line) is cut off, not held
until the watchdog fires (on loopback that was gigabytes, copied over and over on the loop).
"""

from __future__ import annotations

import msgspec

DONE = b"[DONE]"
MAX_EVENT_BYTES = 16 * 1024 * 1024
"""The longest event an upstream may send: far over a chunk of text, a tool call or an image."""
_DONE_EVENT = b"data: [DONE]\n\n"
_SEPARATOR = b"\n\ndata: "
_AFTER_OBJECT = b"}" + _SEPARATOR
"""A separator after an event that ends like a JSON object: what an OpenAI stream is made of."""
_CONTINUED = b"\ndata: "
"""Within a framed event, the break between two `data:` lines of one multi-line payload."""


class SSEBatch(msgspec.Struct, frozen=True):
    """The `data:` events of one upstream read, framed canonically for the client.

    Canonical framing (`data: <payload>\\n\\n`) lets the relay forward bytes as they came and
    split them into payloads only when it must look inside one. A payload with line breaks of
    its own (a multi-line event) is framed as one `data:` line per line, as the spec writes it.
    A Struct rather than a frozen dataclass: one is built per upstream read, five times cheaper.
    """

    framed: bytes
    count: int
    """Data events in the batch, not counting `[DONE]`."""
    done: bool = False
    """The batch ends with `data: [DONE]`."""
    objects: bool | None = None
    """Every event but `[DONE]` ends with `}`, as a JSON object does; None: not looked at yet.
    The decoder learns it from the counts that find a read canonical, so no one scans again."""

    @classmethod
    def of(cls, payloads: list[bytes]) -> SSEBatch:
        done = bool(payloads) and payloads[-1] == DONE
        if b"\n" in b"".join(payloads):  # a join and a memchr: cheaper than a count
            payloads = [p.replace(b"\n", _CONTINUED) for p in payloads]
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
        """The events' data, multi-line payloads joined with `\\n` again."""
        parts = self.framed[6:-2].split(_SEPARATOR)
        if b"\n" in b"".join(parts):
            return [p.replace(_CONTINUED, b"\n") for p in parts]
        return parts


class EventTooLarge(ValueError):
    """An upstream event longer than `MAX_EVENT_BYTES`."""


class SSEDecoder:
    """Incremental: feed raw reads, get batches of whole events back.

    A read that is already canonical (the usual case) passes through untouched. Anything else,
    such as comments (`: keep-alive`), `event:`/`id:` fields, CR or CRLF line ends, multi-line
    events or an event split across reads, is parsed and re-framed; comments and empty events
    are dropped, so an upstream's keep-alives never reach the client as data. `[DONE]` ends the
    batch it is in, and nothing after it is read.
    """

    def __init__(self) -> None:
        self._buffer = b""
        """The lines (LF-terminated) of the event not yet ended, from the start of a line."""
        self._held: list[bytes] = []
        """Reads after `_buffer` that end no event: joined once one does, not on every read."""
        self._held_bytes = 0
        self._after_cr = False
        """The last read ended with CR: an LF starting the next one is the rest of a CRLF."""
        self.done = False

    def feed(self, data: bytes) -> SSEBatch | None:
        if self.done:
            return None
        if self._after_cr:
            self._after_cr = False
            if data[:1] == b"\n":
                data = data[1:]
        normalized = b"\r" in data
        if normalized:
            self._after_cr = data[-1:] == b"\r"
            data = data.replace(b"\r\n", b"\n")
            if b"\r" in data:
                data = data.replace(b"\r", b"\n")
        elif not self._buffer:
            batch = _canonical(data)
            if batch is not None:
                self.done = batch.done
                return batch
        if self._buffer and not self._ends_an_event(data):
            self._hold(data)
            return None
        text = b"".join([self._buffer, *self._held, data])  # one copy, however many reads
        self._held.clear()
        self._held_bytes = 0
        events, boundary, self._buffer = text.rpartition(b"\n\n")
        if not boundary:
            return None
        if normalized:  # with LF line ends a read is often canonical after all (Gemini's CRLF)
            batch = _canonical(events + boundary if self._buffer else text)
            if batch is not None:
                self.done = batch.done
                return batch
        payloads = _payloads(events)
        if DONE in payloads:
            self.done = True
            del payloads[payloads.index(DONE) + 1 :]
        return SSEBatch.of(payloads) if payloads else None

    def flush(self) -> SSEBatch | None:
        """The event still pending when the body ends without the empty line that ends it."""
        rest, self._buffer = self._buffer + b"".join(self._held), b""
        self._held.clear()
        return self.feed(rest + b"\n\n") if rest else None

    def _ends_an_event(self, data: bytes) -> bool:
        """Whether `data` (LF line ends), after what is pending, holds an empty line."""
        last = (self._held[-1] if self._held else self._buffer)[-1:]
        return b"\n\n" in data or last == b"\n" and data[:1] == b"\n"

    def _hold(self, data: bytes) -> None:
        self._held_bytes += len(data)
        if len(self._buffer) + self._held_bytes > MAX_EVENT_BYTES:
            raise EventTooLarge(f"the upstream sent an event of over {MAX_EVENT_BYTES >> 20} MB")
        self._held.append(data)


def _payloads(events: bytes) -> list[bytes]:
    """The data of each non-empty event in `events`: whole events, LF line ends only."""
    if events[:6] == b"data: " and b"\n" not in events:  # one event, one line: the usual
        return [events[6:]] if len(events) > 6 else []
    payloads: list[bytes] = []
    values: list[bytes] = []
    for line in events.split(b"\n"):
        if not line:  # an empty line ends the event
            if values:
                _dispatch(values, payloads)
                values = []
        elif line[:5] == b"data:" or line == b"data":  # a field without a colon is empty
            values.append(line[6:] if line[5:6] == b" " else line[5:])
    if values:
        _dispatch(values, payloads)
    return payloads


def _dispatch(values: list[bytes], payloads: list[bytes]) -> None:
    payload = values[0] if len(values) == 1 else b"\n".join(values)
    if payload:
        payloads.append(payload)


def _canonical(data: bytes) -> SSEBatch | None:
    """`data`, which has no CR, as a batch if it is whole canonical events, else None.

    Two C-level counts decide it: when every newline belongs to an event separator
    (`\\n\\ndata: `) or to the final `\\n\\n`, each event is exactly one `data:` line. Counting
    the separators with the `}` before them answers, in the same two scans, whether every event
    but the last ends like a JSON object (what the relay's scan would count again otherwise).
    """
    if not (data.startswith(b"data: ") and data.endswith(b"\n\n")):
        return None
    newlines, after_objects = data.count(b"\n"), data.count(_AFTER_OBJECT)
    if newlines == 2 * after_objects + 2:
        # Every event but the last ends with `}`, so `[DONE]` can only be the last one.
        if data.endswith(_DONE_EVENT):
            return SSEBatch(data, after_objects, done=True, objects=True)
        return SSEBatch(data, after_objects + 1, objects=data.endswith(b"}\n\n"))
    separators = data.count(_SEPARATOR)
    if newlines != 2 * separators + 2:
        return None
    done_at = data.find(_DONE_EVENT)
    if done_at == -1:
        return SSEBatch(data, separators + 1, objects=False)  # an event before the last is not
    if done_at + len(_DONE_EVENT) != len(data):
        return None  # something follows [DONE]: let the slow path cut it off
    return SSEBatch(data, separators, done=True, objects=False)
