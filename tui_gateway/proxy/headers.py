"""Request headers the gateway reads, turned into text it can show, route on and store.

aiohttp decodes header bytes as UTF-8 with `surrogateescape`, so a byte that is not UTF-8 arrives
as a lone surrogate: harmless in a comparison, fatal to anything that encodes it (the request
log, a hash, a JSON body to an upstream). Headers the gateway only records keep their text with
such bytes replaced by U+FFFD, since refusing the request over them would be wrong.
"""

from __future__ import annotations

import hashlib

from aiohttp import web

from ..domain.text import clean_text

MAX_SESSION_ID = 128
"""Longer session ids are hashed: they are kept per request in memory and in the log."""


def header_bytes(value: str) -> bytes:
    """The bytes the client sent for a header (for comparing secrets byte for byte)."""
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


SESSION_HEADERS: tuple[str, ...] = (
    "X-Session-Id",
    "X-Claude-Code-Session-Id",  # Claude Code
    "Session-Id",  # Codex CLI
    "Thread-Id",  # Codex CLI, when it sends no session-id
    "X-Session-Affinity",  # opencode
)
"""Headers in which clients name their conversation, the first one present wins."""


def session_header(request: web.Request) -> tuple[str, str] | None:
    """(the client's own conversation id, the header it came in), if it sent one."""
    headers = request.headers
    for name in SESSION_HEADERS:
        value = headers.get(name, "").strip()
        if value:
            break
    else:
        return None
    value = clean_text(value)
    if len(value) > MAX_SESSION_ID:
        value = "h-" + hashlib.blake2b(value.encode(), digest_size=16).hexdigest()
    return value, name.lower()
