"""`spawn`: the one way to start a background task (a bare create_task can be garbage-collected);
`wait_set`: the one way to wait for an event with a timeout."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_tasks: set[asyncio.Task[Any]] = set()
log = logging.getLogger("tui_gateway")


def spawn(coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
    """Start `coro` as a named task, keep a reference until it ends, and log if it crashes."""
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _tasks.add(task)
    task.add_done_callback(_finished)
    return task


def _finished(task: asyncio.Task[Any]) -> None:
    _tasks.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("task %s crashed", task.get_name(), exc_info=task.exception())


async def wait_set(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait up to `timeout_s` for `event`; True if it is set.

    Not `asyncio.wait_for`: on Python 3.11 a cancel that lands while the event is being set is
    swallowed by wait_for, so the task runs on (the request log's writer then outlived its
    `close()` by the whole timeout). `asyncio.timeout` lets the cancel through.
    """
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return False
    return True
