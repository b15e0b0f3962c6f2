"""GatewayState: the one mutable picture of the gateway, changed only through its verbs.

The proxy, the TUI's keys and the admin API all call these methods. Each change publishes a small
event; with no subscriber (headless) publishing costs one truth test.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..config import POOLS, ModelSettings, ProviderSettings
from .catalog import Catalog
from .pools import PoolChains
from .records import RequestRecord

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class StateEvent:
    """Something changed: `topic` names the pane that cares, `text` is a line for the event log."""

    topic: str
    text: str = ""


Subscriber = Callable[[StateEvent], None]


@dataclass(slots=True)
class ActiveRequest:
    """One client request in flight. Mutated by the proxy through GatewayState only."""

    id: str
    session: str
    requested_model: str
    stream: bool
    started: float
    provider: str | None = None
    model: str | None = None
    attempt: int = 0
    phase: str = "waiting"
    """waiting | streaming | fallback (a failed attempt is being replaced) | done."""
    first_byte_at: float | None = None
    last_chunk_at: float | None = None
    chunks: int = 0
    failures: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        ttfb = None if self.first_byte_at is None else self.first_byte_at - self.started
        return {
            "id": self.id,
            "session": self.session,
            "requested_model": self.requested_model,
            "model": self.model,
            "provider": self.provider,
            "attempt": self.attempt,
            "state": self.phase,
            "stream": self.stream,
            "started": self.started,
            "ttfb_ms": None if ttfb is None else round(ttfb * 1000, 1),
            "chunks": self.chunks,
            "last_chunk_at": self.last_chunk_at,
            "failures": list(self.failures),
        }


class GatewayState:
    """Active requests, pool order and enablement, with events out and snapshots in."""

    def __init__(
        self,
        providers: Iterable[ProviderSettings],
        models: Iterable[ModelSettings],
        *,
        clock: Clock = time.time,
    ) -> None:
        models = list(models)
        self.catalog = Catalog(providers, models)
        self.pools = PoolChains(models)
        self.clock = clock
        self.active: dict[str, ActiveRequest] = {}
        self.demo_paused = False
        self.finished_count = 0
        self.failed_count = 0
        self._subscribers: list[Subscriber] = []
        self._ids = random.Random()  # seeded from the OS once; an id must be unique, not secret

    # --- events ---------------------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call `subscriber` on every change; returns the function that unsubscribes."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def _publish(self, topic: str, text: str = "") -> None:
        if self._subscribers:
            event = StateEvent(topic, text)
            for subscriber in list(self._subscribers):
                subscriber(event)

    # --- requests (called by the proxy) ---------------------------------------------------

    def begin_request(self, *, session: str, requested_model: str, stream: bool) -> ActiveRequest:
        request = ActiveRequest(
            id=f"{self._ids.getrandbits(48):012x}",
            session=session,
            requested_model=requested_model,
            stream=stream,
            started=self.clock(),
        )
        self.active[request.id] = request
        self._publish("requests")
        return request

    def begin_attempt(self, request: ActiveRequest, *, model: str, provider: str) -> None:
        request.attempt += 1
        request.model = model
        request.provider = provider
        request.phase = "waiting"
        self._publish("requests")

    def record_attempt_failure(self, request: ActiveRequest, reason: str) -> None:
        request.failures.append(f"{request.model}: {reason}")
        request.phase = "fallback"
        self._publish("requests", f"{request.id} {request.model} failed ({reason})")

    def record_chunks(self, request: ActiveRequest, count: int) -> None:
        """Hot path: no event, the TUI reads counts from snapshots at its own pace."""
        now = self.clock()
        if request.first_byte_at is None:
            request.first_byte_at = now
            request.phase = "streaming"
        request.last_chunk_at = now
        request.chunks += count

    def finish_request(self, request: ActiveRequest, record: RequestRecord) -> None:
        """Remove exactly this request from the active set (idempotent)."""
        if self.active.pop(request.id, None) is None:
            return
        request.phase = "done"
        self.finished_count += 1
        if record.error_kind is not None:
            self.failed_count += 1
        served = f" via {record.model}" if record.model else ""
        fault = f" {record.error_kind}" if record.error_kind else ""
        self._publish("requests", f"{request.id} {record.status}{fault}{served}")

    # --- pools and models (called by the TUI, the admin API) ------------------------------

    def chain(self, pool: str) -> list[str]:
        return self.pools.chain(pool)

    def is_usable(self, key: str) -> bool:
        """Enabled, and its provider has a key to send."""
        return key not in self.pools.disabled and self.catalog.provider_of(key).usable

    def move_in_pool(self, key: str, delta: int) -> int:
        position = self.pools.move(self._known(key), delta)
        self._publish("pools", f"{key} moved to position {position + 1}")
        return position

    def set_enabled(self, key: str, enabled: bool) -> None:
        (self.pools.disabled.discard if enabled else self.pools.disabled.add)(self._known(key))
        self._publish("pools", f"{key} {'enabled' if enabled else 'disabled'}")

    def set_demo_paused(self, paused: bool) -> None:
        self.demo_paused = paused
        self._publish("demo", f"demo traffic {'paused' if paused else 'resumed'}")

    def _known(self, key: str) -> str:
        if key not in self.catalog.models:
            raise KeyError(key)
        return key

    # --- snapshots ------------------------------------------------------------------------

    def pools_json(self) -> dict[str, list[dict[str, Any]]]:
        return {
            pool: [
                {
                    "model": key,
                    "provider": self.catalog.models[key].provider,
                    "id": self.catalog.models[key].id,
                    "enabled": key not in self.pools.disabled,
                    "usable": self.is_usable(key),
                }
                for key in self.pools.chain(pool)
            ]
            for pool in POOLS
        }

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready picture of everything, for the state API and the TUI."""
        return {
            "now": self.clock(),
            "active": [r.as_json() for r in self.active.values()],
            "pools": self.pools_json(),
            "totals": {"finished": self.finished_count, "failed": self.failed_count},
            "demo": {"paused": self.demo_paused},
        }
