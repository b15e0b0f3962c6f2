"""Thread protection: what one failed attempt means for the conversation it belonged to.

Every provider has a protection level (`provider-ban`, `model-skip` or `off`). `decide` maps the
level, the error kind and whether the failure came after the first byte reached the client to a
`Decision`. The whole matrix is `MATRIX` below, built from each kind's blame (`kind.blame`, see
errors.py) and these rows:

    blame      kinds                                  provider-ban   model-skip   off
    provider   5xx, connection, timeout, stall,       BAN            SKIP+CLEAR   SKIP
               truncated, wrapped, outrun
    capacity   rate_limited                           SKIP           SKIP         SKIP
    quota      quota (a 429 on a key with `limits`)   SKIP           SKIP         SKIP
    model      client_error (this model refused it)   SKIP+CLEAR     SKIP+CLEAR   SKIP
    key        key_rejected (see keys.py)             -              -            -
    nobody     rejected, client_closed, shutdown,     -              -            -
               no_candidate, invalid_request,
               unaligned, hedged
    user       skipped (moved on from the screen)     SKIP+CLEAR     SKIP+CLEAR   SKIP+CLEAR

    BAN         ban the provider for this session, skip the model, clear the sticky pin
    SKIP+CLEAR  skip the model for the rest of this request, clear the sticky pin
    SKIP        skip the model for the rest of this request only
    -           nothing

After the first byte, the kinds that broke off (`kind.broke_off`: `stall`, `truncated`) also clear
the sticky pin at every level (the model broke off mid-answer: the next turn should not go back
to it). All other cells are the same before and after the first byte. A kind this version does
not know is treated like `5xx`.

A rate limit keeps the sticky pin: the model is busy, not broken, and the cooldowns keep it out of
rotation until its key recovers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import MappingProxyType

from ..config import PROTECTION_LEVELS
from .errors import Blame, ErrorKind


@dataclass(frozen=True, slots=True)
class Decision:
    """What a failed attempt does to its conversation."""

    ban_provider: bool
    """Ban the provider for this session, and skip all its models for the rest of this request."""
    skip_model: bool
    """Skip this model for the rest of this request."""
    clear_sticky: bool
    """If the session was pinned to this model, forget that."""

    def describe(self) -> str:
        """Short human text for logs and the TUI."""
        if self.ban_provider:
            return "ban provider for this session"
        parts = []
        if self.skip_model:
            parts.append("skip model for this request")
        if self.clear_sticky:
            parts.append("clear sticky model")
        return ", ".join(parts) if parts else "no action"


BAN = Decision(ban_provider=True, skip_model=True, clear_sticky=True)
SKIP_CLEAR = Decision(ban_provider=False, skip_model=True, clear_sticky=True)
SKIP = Decision(ban_provider=False, skip_model=True, clear_sticky=False)
NOTHING = Decision(ban_provider=False, skip_model=False, clear_sticky=False)

_LEVELS = ("provider-ban", "model-skip", "off")
_TABLE: dict[Blame, tuple[Decision, Decision, Decision]] = {
    Blame.PROVIDER: (BAN, SKIP_CLEAR, SKIP),
    Blame.CAPACITY: (SKIP, SKIP, SKIP),
    Blame.QUOTA: (SKIP, SKIP, SKIP),
    Blame.MODEL: (SKIP_CLEAR, SKIP_CLEAR, SKIP),
    Blame.KEY: (NOTHING, NOTHING, NOTHING),
    Blame.NOBODY: (NOTHING, NOTHING, NOTHING),
    Blame.USER: (SKIP_CLEAR, SKIP_CLEAR, SKIP_CLEAR),
}
"""Blame -> decision before the first byte, per level in `_LEVELS` order: the docstring's table.
Building `MATRIX` below fails at import if a blame has no row."""
_ROWS = {level: {blame: row[i] for blame, row in _TABLE.items()} for i, level in enumerate(_LEVELS)}
"""Level -> blame -> decision before the first byte."""


def _cell(level: str, kind: ErrorKind, after_first_byte: bool) -> Decision:
    decision = _ROWS[level][kind.blame]
    if after_first_byte and kind.broke_off:
        return replace(decision, clear_sticky=True)
    return decision


MATRIX = MappingProxyType(
    {
        (level, kind, after): _cell(level, kind, after)
        for level in PROTECTION_LEVELS
        for kind in ErrorKind
        for after in (False, True)
    }
)
"""(level, kind, after_first_byte) -> Decision, for every level, every kind, both byte states."""


def decide(protection: str, kind: ErrorKind | str, *, after_first_byte: bool) -> Decision:
    """What a failed attempt means for its conversation.

    Args:
        protection: The failing provider's level: `provider-ban`, `model-skip` or `off`.
        kind: The failure's `ErrorKind` (or its value); unknown kinds count as `5xx`.
        after_first_byte: Whether part of the answer had already reached the client.

    Raises:
        ValueError: `protection` is not a known level (config validates it, so this is a bug).
    """
    if protection not in _ROWS:
        expected = ", ".join(PROTECTION_LEVELS)
        raise ValueError(f"unknown protection level {protection!r}; expected one of {expected}")
    known = ErrorKind.parse(kind) or ErrorKind.SERVER
    return MATRIX[(protection, known, after_first_byte)]
