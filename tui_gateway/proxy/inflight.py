"""The relays in progress, so shutdown can let them finish and then cut the rest cleanly."""

from __future__ import annotations

import asyncio

from .relay import Relay


class InFlight:
    def __init__(self) -> None:
        self._relays: set[Relay] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        return len(self._relays)

    def add(self, relay: Relay) -> None:
        self._relays.add(relay)
        self._idle.clear()

    def discard(self, relay: Relay) -> None:
        self._relays.discard(relay)
        if not self._relays:
            self._idle.set()

    async def drain(self, grace_s: float) -> None:
        """Give requests `grace_s` to finish, then cut the rest (each ends with an error)."""
        if await self._wait_idle(grace_s):
            return
        for relay in list(self._relays):
            relay.cut()
        await self._wait_idle(2.0)

    async def _wait_idle(self, timeout_s: float) -> bool:
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True
