"""Python logging's warnings and errors, handed to the gateway's own log or screen on the loop.

With no handler, a warning from the gateway, aiohttp or asyncio goes to logging's last resort:
bare text written to stderr at once, on whatever thread logged it. Headless, that is a line no
logfmt reader takes apart, written on the event loop (a stderr nobody reads then stops every
request); with the screen, Textual captures stderr and the warning is never seen. `attach`
gives each record to a callback on the loop instead: headless_log.py makes it a line, the
screen a line of its event log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable

Deliver = Callable[[logging.LogRecord], None]


class _OnTheLoop(logging.Handler):
    def __init__(self, deliver: Deliver, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(logging.WARNING)  # aiohttp's access log (INFO) is the request lines
        self._deliver = deliver
        self._loop = loop
        self._thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if threading.get_ident() == self._thread:
            self._deliver(record)
            return
        with contextlib.suppress(RuntimeError):  # another thread's record; the loop may be gone
            self._loop.call_soon_threadsafe(self._deliver, record)


def attach(deliver: Deliver) -> Callable[[], None]:
    """From now on, every warning and error logged goes to `deliver` on the running loop (and
    not to logging's last resort); returns the undo."""
    handler = _OnTheLoop(deliver, asyncio.get_running_loop())
    root = logging.getLogger()
    root.addHandler(handler)
    return lambda: root.removeHandler(handler)


def level(record: logging.LogRecord) -> str:
    """The gateway's name for the record's level: `error` (and worse) or `warning`."""
    return "error" if record.levelno >= logging.ERROR else "warning"


def summary(record: logging.LogRecord) -> str:
    """One line for a screen: the message, and the exception's last line if there is one."""
    text = record.getMessage()
    if record.exc_info and record.exc_info[1] is not None:
        error = record.exc_info[1]
        text += f" ({type(error).__name__}: {error})"
    return text
