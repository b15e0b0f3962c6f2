"""Text written to a stream from a thread of its own, so that the event loop never waits on it.

A stderr that nobody reads (a pipe whose reader stopped, a terminal paused with Ctrl-S, a
stalled `| tee`) blocks whoever writes to it. When that is the event loop, every request stops
with it: the assistant "hangs" because the gateway's own log cannot be written. Here the writes
wait on a thread; the loop only queues a chunk (one batch of lines). Past `cap` chunks waiting,
new ones are dropped and counted, and once the stream takes writes again a line says how many
lines it lost, so the log is never silently short.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import TextIO

CAP = 1000
"""Chunks that may wait: at one batch every 50 ms, nearly a minute of a stream not read."""


class BackgroundWriter:
    """Writes queued text to `stream()` (read late: tests and typer swap sys.stderr)."""

    def __init__(
        self,
        stream: Callable[[], TextIO],
        *,
        dropped: Callable[[int], str],
        cap: int = CAP,
    ) -> None:
        """`dropped(n)`: the line that says `n` lines were dropped, written before the next."""
        self._stream = stream
        self._dropped_line = dropped
        self._chunks: queue.Queue[str | None] = queue.Queue(cap)
        self._lost = 0
        self._lock = threading.Lock()  # `_lost` is counted on the loop and taken on the thread
        self._thread = threading.Thread(target=self._run, name="stderr-writer", daemon=True)
        self._thread.start()

    def write(self, text: str, lines: int) -> None:
        """Queue `text` (`lines` lines of it) for the thread; never blocks."""
        try:
            self._chunks.put_nowait(text)
        except queue.Full:
            with self._lock:
                self._lost += lines

    def close(self, timeout_s: float = 1.0) -> bool:
        """Write what is queued, then stop; False if the stream did not take it within
        `timeout_s` (the thread is a daemon: it does not keep the process alive)."""
        try:
            self._chunks.put(None, timeout=timeout_s)
        except queue.Full:
            return False
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            chunk = self._chunks.get()
            with self._lock:
                lost, self._lost = self._lost, 0
            text = (self._dropped_line(lost) if lost else "") + (chunk or "")
            if text:
                try:
                    stream = self._stream()
                    stream.write(text)
                    stream.flush()
                except (OSError, ValueError):  # EPIPE, or the stream closed under us
                    pass
            if chunk is None:  # `close`: what was queued before it is written
                return
