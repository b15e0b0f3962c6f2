"""What a part of the state reports when it changes, so another gateway can make the same change.

The parts that hold shared state (cooldowns, sticky sessions, the conversation index, the
user's controls, prefill refusals, the posterior book) each report their own mutations, as
`Change`s, to an optional listener (the cluster's mirror, when there is one), and take a change
made elsewhere through `apply`, which reports nothing back: a change travels once. Without a
listener a report costs one attribute test.

A change names its part, a key within the part and the new value (JSON-ready; None: gone),
and `expires`, the epoch time after which it no longer matters (the TTL it is kept with).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = ["Change", "Listener", "Reporting"]


@dataclass(frozen=True, slots=True)
class Change:
    """One key of one part set (or removed, `value` None)."""

    part: str
    """`cooldown`, `session`, `conversation`, `controls`, `prefill` or `outcome`."""
    key: str
    value: Any
    expires: float | None = None
    """Epoch seconds after which the value is stale; None: it lasts until changed."""


Listener = Callable[[Change], None]


class Reporting:
    """A part whose mutations are told to `listener`, if one is attached."""

    PART: ClassVar[str] = ""
    listener: Listener | None = None

    def _report(self, key: str, value: Any, expires: float | None = None) -> None:
        if self.listener is not None:
            self.listener(Change(self.PART, key, value, expires))
