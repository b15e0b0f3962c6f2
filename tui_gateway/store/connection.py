"""Opening and stopping aiosqlite connections so that their thread never outlives its use.

aiosqlite runs each connection on a thread of its own, and leaves two things to its caller:

- The thread is not a daemon (0.22): a SQLite call that never returns would keep the process
  from exiting. Here it is made one before it starts.
- A connect that fails stops the thread without waiting for it. When the loop closes first (a
  command that ends with the error, as `--db` naming a folder does), the thread prints a
  traceback of its own, "Event loop is closed", under the command's one-line error.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import aiosqlite

__all__ = ["connect", "stop"]

_THREAD_END_S = 1.0
"""How long a stopped connection's thread is waited for: it has only its queue's end to run."""


async def connect(database: str | Path, **options: Any) -> aiosqlite.Connection:
    """`aiosqlite.connect(database, **options)`, on a daemon thread that is over by the time a
    failure is raised."""
    connection = aiosqlite.connect(database, **options)
    thread = _thread(connection)
    if thread is not None and not thread.is_alive():
        thread.daemon = True
    try:
        return await connection
    except BaseException:
        await _ended(thread)
        raise


async def stop(db: aiosqlite.Connection) -> None:
    """Close `db` in its thread, after what is queued, and wait for the thread to end (at most
    `_THREAD_END_S`: a call stuck in SQLite is left to the daemon thread)."""
    db.stop()
    await _ended(_thread(db))


def _thread(connection: aiosqlite.Connection) -> threading.Thread | None:
    thread = getattr(connection, "_thread", None)  # private; another version may not have it
    return thread if isinstance(thread, threading.Thread) else None


async def _ended(thread: threading.Thread | None) -> None:
    if thread is None:
        return
    loop = asyncio.get_running_loop()
    give_up = loop.time() + _THREAD_END_S
    while thread.is_alive() and loop.time() < give_up:
        await asyncio.sleep(0.005)
