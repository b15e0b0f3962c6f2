"""Which of this gateway's own changes, echoed back by the change feed, it takes again.

A gateway skips its own echoes: it made those changes already. But two gateways that change
the same key at once (a ban on one and a move on the other; a cooldown started on one and
cleared on the other) each take the other's change after their own, and would then disagree
until that key changed again. The feed carries every batch in one order, the same for every
gateway, and the store keeps that order (each batch is one transaction), so the feed decides:
when the echo of the last value this gateway sent for a key comes back, it takes that value
again, undoing another gateway's change to the key that came in between, as every other
gateway does by taking this one's after it. Outcomes and quota counts are added, not set, so
they are never taken twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..domain.changes import Change
from ..domain.controls import Controls
from ..domain.conversations import ConversationIndex
from ..domain.cooldowns import Cooldowns
from ..domain.quotas import Quotas
from ..domain.sticky import StickySessions

SET_PARTS = frozenset(
    {Controls.PART, Cooldowns.PART, StickySessions.PART, ConversationIndex.PART, Quotas.PART}
)
"""The parts whose changes set a key's value (so taking one's own again changes nothing else)."""


class Echoes:
    """The last value sent for each key whose echo has not come back yet."""

    def __init__(self) -> None:
        self._sent: dict[tuple[str, str], Any] = {}

    def sending(self, changes: Iterable[Change]) -> None:
        """`changes` are about to go out (again, if a batch is written a second time)."""
        for change in changes:
            if change.part in SET_PARTS:  # as the feed will carry it back: JSON's types
                self._sent[(change.part, change.key)] = json.loads(json.dumps(change.value))

    def settling(self, echoed: Iterable[Change]) -> list[Change]:
        """Of one of this gateway's batches, come back, the changes to take again: those that
        are still the last value sent for their key."""
        again = []
        for change in echoed:
            slot = (change.part, change.key)
            if slot in self._sent and self._sent[slot] == change.value:
                del self._sent[slot]
                again.append(change)
        return again

    def clear(self) -> None:
        """A new link: echoes lost with the old one will not come (a full load follows)."""
        self._sent.clear()
