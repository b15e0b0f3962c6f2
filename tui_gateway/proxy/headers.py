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


def session_header(request: web.Request) -> str | None:
    """The client's own conversation id (`X-Session-Id`), if it sent one."""
    value = request.headers.get("X-Session-Id", "").strip()
    if not value:
        return None
    value = clean_text(value)
    if len(value) > MAX_SESSION_ID:
        value = "h-" + hashlib.blake2b(value.encode(), digest_size=16).hexdigest()
    return value
