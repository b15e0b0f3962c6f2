"""Keys out and back in: an upstream's refusal takes a key out, a passing check brings it back.

    reject(key_id, ...)   the upstream refused it (401/403) during traffic or a check
    checked(check)        a key check's result (providers/key_check.py), applied
    restore(saved)        what the last run saved as invalid (KeyRing.restore_invalid)
    due(scope)            which keys a periodic check should call the upstream for

Each change is told on the bus (`KeyRejected`, `KeyRestored`): the screen's event log, the
headless log and the saver of the invalid keys listen there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .events import EventBus, KeyRejected, KeyRestored, Note
from .keys import KeyCheck, KeyRing, RestoredKeys
from .routing import Router

__all__ = ["KeyHealth"]


class KeyHealth:
    """Which keys may be sent, as the upstreams' answers and the key checks say."""

    def __init__(
        self, keys: KeyRing, *, router: Router, bus: EventBus, clock: Callable[[], float]
    ) -> None:
        self.keys = keys
        self._router = router
        self._bus = bus
        self._clock = clock
        self.recheck: set[str] = set()
        """Keys saved invalid whose secret changed in the config: valid, but worth one check."""

    def reject(self, key_id: str, *, status: int | None, reason: str) -> None:
        """The upstream refused this key: it is not sent again until a check passes.

        When it was the provider's last valid key, routing leaves the provider's models out.
        """
        keys = self.keys
        self.recheck.discard(key_id)
        if not keys.invalidate(key_id, reason=reason, status=status, now=self._clock()):
            return  # a request in flight sent it too and already marked it
        provider = keys.provider_of(key_id)
        out = keys.all_invalid(provider)
        if out:
            self._router.invalidate()
        self._bus.publish(KeyRejected(key_id, keys.masked(key_id), provider, status, out))

    def checked(self, check: KeyCheck) -> None:
        """Apply one check: `ok` brings an invalid key back, `invalid` takes it out as a
        refusal in traffic does, `error` and `timeout` say nothing about the key."""
        if check.status == "invalid":
            self.reject(check.key_id, status=check.http_status, reason=check.detail)
        elif check.status == "ok":
            self.recheck.discard(check.key_id)
            self._reinstate(check.key_id)

    def _reinstate(self, key_id: str) -> None:
        keys = self.keys
        provider = keys.provider_of(key_id)
        was_out = keys.all_invalid(provider)
        if not keys.reinstate(key_id):
            return  # valid already: nothing changed
        if was_out:  # the provider had nothing to send: its models are usable again
            self._router.invalidate()
        self._bus.publish(KeyRestored(key_id, keys.masked(key_id), provider, was_out))

    def restore(self, saved: Mapping[str, Any]) -> RestoredKeys:
        """Keys the last run found invalid stay out, while their secret is the same (see
        `KeyRing.restore_invalid`); those whose secret changed are valid and due a check."""
        restored = self.keys.restore_invalid(saved)
        self.recheck.update(restored.changed)
        if restored.invalid:
            self._router.invalidate()
            names = ", ".join(restored.invalid)
            self._bus.publish(
                Note(f"still invalid from the last run: {names} (a key check brings a key back)")
            )
        return restored

    def saved(self) -> dict[str, Any]:
        """What a restart keeps: the invalid keys, each with a hash of its secret."""
        return self.keys.saved_invalid()

    def due(self, scope: str) -> list[str] | None:
        """The keys a periodic check calls the upstream for: with scope `all` every key (None),
        else the invalid ones and those whose secret changed since they were found invalid."""
        if scope == "all":
            return None
        return [*self.keys.invalid_ids(), *sorted(self.recheck - set(self.keys.invalid_ids()))]
