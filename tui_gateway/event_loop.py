"""Which event loop the gateway runs on: uvloop where it is installed and runs, else asyncio's.

Both entry points (headless and the TUI) run their main coroutine through `run`, so the server,
the request log's callbacks and Textual share one loop of the chosen kind. uvloop (libuv under
asyncio's API) spends less CPU per socket read and write than the default selector loop; it does
not exist for Windows, and an install without it still works on the default loop.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, Final, TypeVar

T = TypeVar("T")

CHOICES: Final = ("auto", "uvloop", "asyncio")
"""`auto` takes uvloop when it can, `uvloop` insists on it, `asyncio` is the default loop."""


class LoopUnavailable(Exception):
    """`uvloop` was asked for explicitly and cannot be used here; the message says why."""


def loop_factory(choice: str = "auto") -> tuple[Callable[[], asyncio.AbstractEventLoop], str]:
    """A factory of new event loops for `choice`, and the name of the kind it makes.

    Args:
        choice: one of `CHOICES`.

    Returns:
        `(factory, "uvloop" | "asyncio")`.

    Raises:
        ValueError: `choice` is not one of `CHOICES`.
        LoopUnavailable: `choice` is `uvloop` and it is not installed or not supported.
    """
    if choice not in CHOICES:
        raise ValueError(f"unknown event loop {choice!r}; choose one of {', '.join(CHOICES)}")
    if choice == "asyncio":
        return asyncio.new_event_loop, "asyncio"
    if sys.platform == "win32":
        if choice == "uvloop":
            raise LoopUnavailable("uvloop does not run on Windows; use --loop auto or asyncio")
        return asyncio.new_event_loop, "asyncio"
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise LoopUnavailable(
                "uvloop is not installed (pip install uvloop); use --loop auto or asyncio"
            ) from None
        return asyncio.new_event_loop, "asyncio"
    return uvloop.new_event_loop, "uvloop"


def running_kind() -> str:
    """`uvloop` or `asyncio`: the kind of the loop this is called on."""
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"


def run(main: Coroutine[Any, Any, T], *, choice: str = "auto") -> T:
    """`asyncio.run(main)` on a loop of the chosen kind (same cleanup: tasks, generators)."""
    try:
        factory, _ = loop_factory(choice)
    except BaseException:
        main.close()  # never started: no "coroutine was never awaited" warning
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
