"""Text that can be stored and shown: no lone surrogates."""

from __future__ import annotations

import re

_SURROGATES = re.compile("[\ud800-\udfff]+")
_ESCAPED_BYTES = range(0xDC80, 0xDD00)
"""Where `errors="surrogateescape"` puts the bytes it could not decode (0x80..0xFF)."""


def clean_text(s: str) -> str:
    """`s` as valid Unicode, unchanged (the same object) when it already is.

    A str can hold lone surrogates that no encoder accepts: `json.loads` makes them from a
    `\\udfff` escape, and `surrogateescape` decoding makes them from bytes that are not UTF-8.
    Those escaped bytes are recovered and decoded with "replace" (so a UTF-8 sequence that was
    split apart comes back whole), a high and low surrogate side by side become the one
    character they encode, and any other lone surrogate becomes U+FFFD.
    """
    if s.isascii():
        return s  # the usual case, without scanning the string again
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATES.sub(_repair_run, s)
    return s


def _repair_run(match: re.Match[str]) -> str:
    run = match.group()
    out: list[str] = []
    escaped = bytearray()
    i = 0
    while i < len(run):
        cp = ord(run[i])
        if escaped and cp not in _ESCAPED_BYTES:
            out.append(escaped.decode("utf-8", "replace"))
            escaped.clear()
        nxt = ord(run[i + 1]) if i + 1 < len(run) else 0
        if 0xD800 <= cp <= 0xDBFF and 0xDC00 <= nxt <= 0xDFFF:
            out.append(chr(0x10000 + ((cp - 0xD800) << 10) + (nxt - 0xDC00)))
            i += 2
            continue
        if cp in _ESCAPED_BYTES:
            escaped.append(cp - 0xDC00)
        else:
            out.append("\ufffd")
        i += 1
    if escaped:
        out.append(escaped.decode("utf-8", "replace"))
    return "".join(out)
