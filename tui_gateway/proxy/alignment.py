"""Where a continuation's text joins the answer already sent, so only what is new is relayed.

Asked to continue a broken answer, models often start over, or repeat the last sentence or word
first. The continuation's opening text is held until one of these rules decides (first match
wins); leading whitespace of the new text is set aside for the comparisons and kept only when
the new text is relayed from its start:

1. **Restart.** The new text begins as the answer did (its first `RESTART` characters, or all
   of it when shorter). Once as long as what was sent, it must repeat it exactly, and the repeat
   is dropped. A restart that departs from what was sent, or ends before repeating all of it,
   cannot be joined: `UNALIGNED`.
2. **Overlap.** The new text begins with the end of what was sent: a repeated sentence, a
   repeated word, the rest of a word cut in half written whole. The overlap is dropped. It must
   be at least `LONG_OVERLAP` characters, or start at a word boundary of what was sent and be at
   least 2 characters (so that one shared letter is not taken for a repeat).
3. **Retelling.** The new text's first `PROBE` characters occur somewhere else in what was
   sent: the model retells part of the answer out of place. `UNALIGNED`.
4. **Continuation.** Otherwise the new text goes on where the old one stopped: relayed whole.

A UTF-16 surrogate pair cut in half (an upstream that escapes astral characters may send
`"\\ud83d"` and `"\\ude00"` in two chunks) is mended: when the answer ends with a lone high
surrogate and the new text starts with the whole character, only its low half is relayed.

The caller never guesses: `UNALIGNED` ends the answer with the failure that broke it, never
with text the client already has.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

RESTART: Final = 8
"""Characters of the answer's beginning that, repeated, mark a restart."""
OPENING: Final = 24
"""A new text shorter than this that so far matches the answer's beginning waits for more."""
LONG_OVERLAP: Final = 12
"""An overlap this long is a repeat wherever it starts."""
PROBE: Final = 16
"""Characters of the new text looked for elsewhere in the answer (rule 3)."""
WINDOW: Final = 400
"""How far back from the answer's end an overlap may start."""


@dataclass(frozen=True, slots=True)
class Join:
    """Relay `prefix`, then the new text from character `skip` on."""

    skip: int
    prefix: str = ""


UNALIGNED: Final = Join(-1)
"""The new text cannot be joined to what was sent."""
_WAIT: Final = Join(-2)


def join(sent: str, new: str, *, final: bool = False) -> Join | None:
    """How `new` (a continuation's text so far) joins `sent`; None while it cannot tell yet.

    Args:
        sent: The answer's text the client already has.
        new: The continuation's text so far.
        final: No more of `new` will come (its text ended): decide with what there is.
    """
    if not sent:
        return Join(0)
    mended = _mended_surrogate(sent, new)
    if mended is not None:
        return mended
    lead = len(new) - len(new.lstrip())
    body = new[lead:]
    if not body:
        return Join(0) if final else None
    restart = _restart(sent, body, final=final)
    if restart is _WAIT:
        return None
    if restart is not None:
        return restart if restart is UNALIGNED else Join(lead + restart.skip)
    tail = sent[-WINDOW:]
    if not final and len(body) < len(tail) and body in tail:
        return None  # a longer overlap may still be coming
    overlap = _overlap(sent, body)
    if overlap:
        return Join(lead + overlap)
    if len(body) >= PROBE and body[:PROBE] in sent:
        return UNALIGNED
    if not final and len(body) < PROBE and body in sent:
        return None  # too short to tell a retelling from a continuation yet
    return Join(0)


def _restart(sent: str, body: str, *, final: bool) -> Join | None:
    """Rule 1: `Join` (skip within `body`) or UNALIGNED if `body` restarts the answer, None if
    it does not, `_WAIT` if it may but is not yet long enough to tell."""
    common = len(os.path.commonprefix((sent, body)))
    if common >= len(sent):
        return Join(len(sent))  # it said it all again, then went on
    if common == len(body):  # so far the answer's own beginning: a restart under way?
        if common >= min(len(sent), RESTART) or len(body) < min(len(sent), OPENING):
            return UNALIGNED if final else _WAIT
        return None
    if common >= min(len(sent), RESTART):
        return UNALIGNED  # it began again, then said something else
    return None


def _overlap(sent: str, body: str) -> int:
    """Rule 2: the length of the longest valid overlap of `sent`'s end and `body`'s start."""
    for k in range(min(len(body), len(sent), WINDOW), 1, -1):
        if not sent.endswith(body[:k]):
            continue
        if k >= LONG_OVERLAP or k == len(sent) or not sent[-k - 1].isalnum():
            return k
    return 0


def _mended_surrogate(sent: str, new: str) -> Join | None:
    last = ord(sent[-1])
    if not (0xD800 <= last <= 0xDBFF) or not new:
        return None
    first = ord(new[0])
    if first < 0x10000:
        return None
    high = 0xD800 + ((first - 0x10000) >> 10)
    if high != last:
        return None
    low = 0xDC00 + ((first - 0x10000) & 0x3FF)
    return Join(1, chr(low))
