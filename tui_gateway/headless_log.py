"""What a headless gateway says on stderr: one logfmt line per request outcome and per change.

    ts=2026-12-02T05:40:01.123Z level=info event=request id=3f2a9c01b7e4 status=200
        model=groq/llama-3.3-70b provider=groq attempts=1 latency_ms=812.4 api=chat stream=true
    ts=... level=warning event=request id=... status=502 ... attempts=3 ... error=5xx
    ts=... level=info event=control msg="groq/llama-3.3-70b banned"

So `journalctl --user -u tui-gateway` reads as it is, and `grep event=request` or any logfmt
reader takes the lines apart. Lines come from the state's typed events (domain/events.py);
only the kinds the level lets through are subscribed to, so `--log-level warning` costs a
successful request nothing, and `debug` alone builds the "began" events. The gateway's run
writes them from a thread of its own (background_writer.py): a stderr nobody reads, or a
terminal paused with Ctrl-S, holds up the log, never a request; what could not wait is
dropped and said (`event=log_dropped lines=N`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import re
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TextIO

from . import log_records
from .background_writer import BackgroundWriter
from .domain.events import (
    AttemptBegan,
    AttemptFailed,
    ClientRejected,
    ContinuationBegan,
    ControlsChanged,
    CooldownsCleared,
    DemoToggled,
    Event,
    KeyRejected,
    KeyRestored,
    LogHealthChanged,
    Note,
    PrefillRefused,
    RequestBegan,
    RequestFinished,
    SessionsCleared,
)
from .domain.state import GatewayState

LEVELS = ("error", "warning", "info", "debug")
"""`--log-level` choices, most severe first: a level shows itself and those before it."""

Value = str | int | float | bool | None
Fields = dict[str, Value]

# The most severe level each kind's line may have: subscribed to when the level shows that much
# (a line may be milder: a success is info, a failure warning, see `_describe`).
_KINDS: dict[type[Event], str] = {
    RequestFinished: "warning",
    AttemptFailed: "info",
    ContinuationBegan: "info",
    PrefillRefused: "info",
    ControlsChanged: "info",
    KeyRejected: "error",  # the provider's last key: an error, else a warning
    KeyRestored: "info",
    SessionsCleared: "info",
    CooldownsCleared: "info",
    LogHealthChanged: "error",  # failing, an error; writing again, info
    ClientRejected: "warning",
    Note: "info",
    DemoToggled: "info",
    RequestBegan: "debug",
    AttemptBegan: "debug",
}
_BARE = re.compile(r'[^\s"=\\]+')


def check_level(level: str) -> str:
    """The level, lower-cased; ValueError naming the choices when it is not one."""
    if level.lower() not in LEVELS:
        raise ValueError(f"--log-level must be one of {', '.join(LEVELS)}, got {level!r}")
    return level.lower()


class HeadlessLog:
    """Turns the state's events into lines on a stream (stderr), at or above one level."""

    def __init__(
        self,
        state: GatewayState,
        *,
        level: str = "info",
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.time,
        batch_s: float | None = None,
        offload: bool = False,
    ) -> None:
        """`batch_s`: lines wait that long (on the running loop) and go out in one write; a
        write per request was 8% of a streamed request's CPU at c=32. None: each at once.
        `offload`: the writes wait on a thread of their own (background_writer.py), so a stderr
        nobody reads stops the log, not the gateway; `close` then writes what is left."""
        self._state = state
        self._rank = LEVELS.index(check_level(level))
        self._stream = stream
        self._clock = clock
        self._batch_s = batch_s
        self._writer = BackgroundWriter(self._target, dropped=_dropped) if offload else None
        self._pending: list[str] = []
        self._flush_at: asyncio.TimerHandle | None = None
        self._second = -1
        self._stamp = ""
        """`ts=...T06:02:36.` for `_second`: formatted once a second, not once a line."""

    def attach(self) -> Callable[[], None]:
        """Subscribe to the kinds this level shows, and take Python logging's warnings and
        errors (the gateway's own, aiohttp's, asyncio's) as lines too; returns the undo."""
        kinds = [kind for kind, worst in _KINDS.items() if self._shows(worst)]
        unsubscribe = self._state.subscribe(self._heard, kinds=kinds)
        forget_records = log_records.attach(self._record)

        def detach() -> None:
            unsubscribe()
            forget_records()

        return detach

    def _record(self, record: logging.LogRecord) -> None:
        """A Python logging record (log_records.py): a traceback is the line's `exc` field."""
        fields: Fields = {"logger": record.name, "msg": record.getMessage()}
        if record.exc_info:
            fields["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        self.write(log_records.level(record), "log", fields)

    def started(self, url: str, *, loop: str) -> None:
        msg = f"tui-gateway listening on {url}, event loop {loop}"
        self.write("info", "start", {"url": url, "loop": loop, "pid": os.getpid(), "msg": msg})

    def stopping(self) -> None:
        active = len(self._state.active)
        self.write("info", "stopping", {"active": active, "msg": "tui-gateway: shutting down"})

    def stopped(self) -> None:
        state = self._state
        self.write("info", "stop", {"finished": state.finished_count, "failed": state.flows.failed})

    def write(self, level: str, event: str, fields: Fields) -> None:
        """One line, if the level shows it; a closed or full stderr never fails a request."""
        if not self._shows(level):
            return
        parts = [self._timestamp(), f"level={level}", f"event={event}"]
        parts += [f"{key}={_quoted(value)}" for key, value in fields.items() if value is not None]
        self._queue(" ".join(parts) + "\n")

    def _queue(self, line: str) -> None:
        self._pending.append(line)
        if self._batch_s is None:
            self.flush()
        elif self._flush_at is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # before the loop runs, or after it: at once
                self.flush()
                return
            self._flush_at = loop.call_later(self._batch_s, self.flush)

    def flush(self) -> None:
        """Write the lines waiting, in one write (stderr is line-buffered: they go now)."""
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        lines, self._pending = self._pending, []
        if not lines:
            return
        if self._writer is not None:
            self._writer.write("".join(lines), len(lines))
            return
        try:
            self._target().write("".join(lines))
        except (OSError, ValueError):  # EPIPE, or the stream closed under us
            pass

    def close(self) -> None:
        """Write what is waiting; with `offload`, wait (a second at most) until it is out."""
        self.flush()
        if self._writer is not None:
            self._writer.close()

    def _target(self) -> TextIO:
        return self._stream or sys.stderr  # read late: tests and typer swap sys.stderr

    def _timestamp(self) -> str:
        now = self._clock()
        second = int(now)
        if second != self._second:  # a line per request: the date is the same all second
            self._second = second
            self._stamp = datetime.fromtimestamp(second, UTC).strftime("ts=%Y-%m-%dT%H:%M:%S.")
        return f"{self._stamp}{int((now - second) * 1000):03d}Z"

    def _shows(self, level: str) -> bool:
        return LEVELS.index(level) <= self._rank

    def _heard(self, event: Event) -> None:
        if type(event) is RequestFinished:  # one a request: built by hand, not field by field
            self._request_line(event)
            return
        line = self._describe(event)
        if line is not None:
            self.write(*line)

    def _request_line(self, event: RequestFinished) -> None:
        level = "info" if event.error_kind is None else "warning"
        if not self._shows(level):
            return
        line = f"{self._timestamp()} level={level} event=request id={event.request_id}"
        line += f" status={event.status}"
        if event.model is not None:
            line += f" model={_quoted(event.model)}"
        flow = self._state.flows.find(event.request_id)  # just finished: the newest recent one
        if flow is not None and flow.provider is not None:
            line += f" provider={_quoted(flow.provider)}"
        line += f" attempts={event.attempts}"
        if flow is not None:
            stream = "true" if flow.stream else "false"
            line += f" latency_ms={flow.latency_ms} api={flow.dialect} stream={stream}"
            if flow.client is not None:  # whose assistant sent it ([[clients]])
                line += f" client={_quoted(flow.client)}"
        if event.error_kind is not None:
            line += f" error={_quoted(event.error_kind)}"
        self._queue(line + "\n")

    def _describe(self, event: Event) -> tuple[str, str, Fields] | None:
        """(level, event name, fields) for one event; None for one not worth a line."""
        msg = event.text or None
        match event:
            case AttemptFailed(request_id=rid, model=model, kind=kind):
                return (
                    "info",
                    "attempt_failed",
                    {"id": rid, "model": model, "kind": kind, "msg": msg},
                )
            case ContinuationBegan(request_id=rid, failed_model=failed, reason=reason):
                return "info", "continuation", {"id": rid, "failed_model": failed, "reason": reason}
            case PrefillRefused(model=model):
                return "info", "prefill_refused", {"model": model, "msg": msg}
            case ControlsChanged(line=line):
                return ("info", "control", {"msg": line}) if line else None  # "" : restored
            case KeyRejected():
                level = "error" if event.provider_out else "warning"
                fields: Fields = {"key": event.key_id, "provider": event.provider}
                fields |= {"status": event.status, "provider_out": event.provider_out, "msg": msg}
                return level, "key_rejected", fields
            case KeyRestored(key_id=key_id, provider=provider):
                return "info", "key_restored", {"key": key_id, "provider": provider, "msg": msg}
            case SessionsCleared(count=count, session=session):
                return "info", "sessions_cleared", {"count": count, "session": session}
            case CooldownsCleared(count=count, model=model):
                return "info", "cooldowns_cleared", {"count": count, "model": model}
            case LogHealthChanged(health=health):
                fields = {"failing": health.failing, "pending": health.pending}
                fields |= {"dropped": health.dropped, "repaired": health.repaired}
                fields |= {"error": health.last_error, "msg": msg}
                return "error" if health.failing else "info", "log_health", fields
            case ClientRejected():
                return "warning", "client_rejected", {"msg": msg}
            case DemoToggled(paused=paused):
                return "info", "demo", {"paused": paused}
            case Note():
                return "info", "note", {"msg": msg}
            case RequestBegan(request_id=rid, session=session):
                return "debug", "request_began", {"id": rid, "session": session[:8]}
            case AttemptBegan(request_id=rid, model=model, provider=provider):
                return "debug", "attempt", {"id": rid, "model": model, "provider": provider}
        return None


def _dropped(lines: int) -> str:
    """The line that says what a stderr nobody read cost (written on the writer's thread)."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    msg = f"{lines} log lines dropped: stderr was not being read"
    return f'ts={now}Z level=warning event=log_dropped lines={lines} msg="{msg}"\n'


def _quoted(value: Value) -> str:
    """logfmt: bare when it can be, else a JSON string (quotes and newlines escaped)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)  # never needs quotes: skip the pattern
    return _quoted_text(str(value))


@functools.lru_cache(maxsize=1024)
def _quoted_text(text: str) -> str:
    # Cached: a request line's model and provider names are the same few, line after line.
    return text if _BARE.fullmatch(text) else json.dumps(text, ensure_ascii=False)
