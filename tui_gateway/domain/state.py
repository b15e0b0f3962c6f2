"""GatewayState: the one mutable picture of the gateway, changed only through its verbs.

The proxy, the TUI's keys and the admin API all call these methods. Each change publishes a small
event; with no subscriber (headless) publishing costs one truth test.
"""

from __future__ import annotations

import random
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..config import Settings
from .active import TIMELINE_LIMIT, ActiveRequest
from .catalog import Catalog
from .controls import Controls
from .conversations import ConversationIndex
from .cooldowns import Cooldowns
from .keys import KeyRing
from .learning import LearningFromAttempts
from .posteriors import PosteriorBook
from .records import LogHealth, RequestRecord
from .rejections import Rejections
from .response_store import StoreCounts
from .scoring import ScoreBases
from .snapshot import pools_json, snapshot
from .sticky import StickySessions

Clock = Callable[[], float]
RECENT_LIMIT = 200
PERSISTED_TOPICS = frozenset({"pools", "bans", "protection"})
"""Events whose change must survive a restart."""

__all__ = ["ActiveRequest", "GatewayState", "StateEvent"]


@dataclass(frozen=True, slots=True)
class StateEvent:
    """Something changed: `topic` names the pane that cares, `text` is a line for the event log."""

    topic: str
    text: str = ""


Subscriber = Callable[[StateEvent], None]


class GatewayState(LearningFromAttempts):
    """Requests in flight, what routing has learned, and what the user decided."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = time.time,
        rng: random.Random | None = None,
        ids: random.Random | None = None,
    ) -> None:
        routing = settings.routing
        self.routing = routing
        self.catalog = Catalog(settings.providers, settings.models)
        self.controls = Controls(settings.providers, settings.models)
        self.cooldowns = Cooldowns(
            transient_s=routing.transient_cooldown_s, rate_limit_s=routing.rate_limit_cooldown_s
        )
        self.sessions = StickySessions(
            ttl_s=routing.sticky_ttl_s, cap=routing.sticky_cap, ban_ttl_s=routing.provider_ban_ttl_s
        )
        self.rejections = Rejections()
        """Requests refused before routing (bad key, path or body), by cause."""
        self.conversations = ConversationIndex(ttl_s=routing.sticky_ttl_s, cap=routing.sticky_cap)
        """Which conversation a request without a session header continues (by its history)."""
        self.book = PosteriorBook(window_s=routing.recency_window_days * 86400, prior=routing.prior)
        self.clock = clock
        self.rng = rng or random.Random(routing.seed)
        self.active: dict[str, ActiveRequest] = {}
        self.busy_sessions: dict[str, Counter[str]] = {}
        """provider -> sessions with a request in flight on it (for the concurrency guard)."""
        self.prefill_refused: set[str] = set()
        self.recent: deque[ActiveRequest] = deque(maxlen=RECENT_LIMIT)
        """Finished requests, newest last: the TUI lingers on them and opens their details."""
        self.demo_paused = False
        self.finished_count = 0
        self.failed_count = 0
        self._everything: list[Subscriber] = []
        self._by_topic: dict[str, list[Subscriber]] = {}
        # Seeded from the OS once: an id must be unique, not secret (tests pass a seeded one).
        self._ids = ids or random.Random()
        self.keys = KeyRing(settings.providers)
        self._usable: frozenset[str] | None = None
        self._usable_chains: dict[str, list[str]] = {}
        self.score_bases = ScoreBases()
        self.log_health: Callable[[], LogHealth] = LogHealth
        """How the request log's writer is doing (see `watch_log`); no log: all zero."""
        store = settings.dialects.responses
        self.responses_store: Callable[[], StoreCounts] = lambda: StoreCounts(
            0, store.store_cap, store.store_ttl_s
        )
        """How full the Responses door's store is (see `watch_responses_store`)."""

    # --- events ---------------------------------------------------------------------------

    def subscribe(
        self, subscriber: Subscriber, *, topics: Iterable[str] | None = None
    ) -> Callable[[], None]:
        """Call `subscriber` on every change (or only on these `topics`); returns the unsubscribe.

        A topic nobody listens to costs one dict lookup: the request path publishes three events
        per request, and headless there is only the persistence listener, which wants none.
        """
        lists = [self._by_topic.setdefault(t, []) for t in topics] if topics else [self._everything]
        for subscribers in lists:
            subscribers.append(subscriber)

        def unsubscribe() -> None:
            for subscribers in lists:
                subscribers.remove(subscriber)

        return unsubscribe

    def _publish(self, topic: str, text: str = "") -> None:
        subscribers = self._by_topic.get(topic)
        if self._everything or subscribers:
            event = StateEvent(topic, text)
            for subscriber in [*self._everything, *(subscribers or ())]:
                subscriber(event)

    # --- requests (called by the proxy) ---------------------------------------------------

    def new_id(self) -> str:
        """A request id: 12 hex digits, unique across runs (they share one log)."""
        return f"{self._ids.getrandbits(48):012x}"

    def begin_request(
        self,
        *,
        session: str,
        requested_model: str,
        stream: bool,
        body: dict[str, Any] | None = None,
        dialect: str = "chat",
    ) -> ActiveRequest:
        request = ActiveRequest(
            id=self.new_id(),
            session=session,
            requested_model=requested_model,
            stream=stream,
            started=self.clock(),
            body=body,
            dialect=dialect,
        )
        self.active[request.id] = request
        self._publish("requests")
        return request

    def begin_attempt(self, request: ActiveRequest, *, model: str, provider: str) -> None:
        if request.provider is not None:
            self._release(request)
        request.attempt += 1
        request.model = model
        request.provider = provider
        request.phase = "waiting"
        sessions = self.busy_sessions.get(provider)
        if sessions is None:
            sessions = self.busy_sessions[provider] = Counter()
        sessions[request.session] += 1
        self._publish("requests")

    def record_chunks(self, request: ActiveRequest, count: int) -> None:
        """Hot path: no event, the TUI reads counts from snapshots at its own pace."""
        now = self.clock()
        if request.first_byte_at is None or request.phase != "streaming":
            request.first_byte_at = request.first_byte_at or now
            request.phase = "streaming"
        request.last_chunk_at = now
        request.chunks += count
        if len(request.timeline) < TIMELINE_LIMIT:
            request.timeline.append((now, count))

    def finish_request(self, request: ActiveRequest, record: RequestRecord) -> None:
        """Remove exactly this request from the active set (idempotent)."""
        if self.active.pop(request.id, None) is None:
            return
        self._release(request)
        request.phase = "done"
        request.finished_at = self.clock()
        request.record = record
        self.recent.append(request)
        self.finished_count += 1
        if record.error_kind is not None:
            self.failed_count += 1
        if record.error_kind is None and request.attempt <= 1:
            self._publish("requests")  # a plain success: the panes repaint, the log stays quiet
            return
        served = f" via {record.model}" if record.model else ""
        fault = f" {record.error_kind}" if record.error_kind else ""
        tries = f" after {request.attempt} attempts" if request.attempt > 1 else ""
        self._publish("requests", f"{request.id} {record.status}{fault}{served}{tries}")

    def _release(self, request: ActiveRequest) -> None:
        if request.provider is None:
            return
        sessions = self.busy_sessions.get(request.provider)
        if sessions is not None:
            sessions[request.session] -= 1
            if sessions[request.session] <= 0:
                del sessions[request.session]

    def any_guarded_provider_busy(self) -> bool:
        """Some `provider-ban` provider has a request in flight (cheap pre-check for routing)."""
        protection = self.controls.protection
        return any(s and protection[p] == "provider-ban" for p, s in self.busy_sessions.items())

    def provider_busy_elsewhere(self, provider: str, session: str) -> bool:
        """Another conversation has a request in flight on this provider."""
        sessions = self.busy_sessions.get(provider)
        return bool(sessions) and any(s != session for s in sessions)  # type: ignore[union-attr]

    # --- pools, models, providers, sessions (the TUI, the admin API) ----------------------

    def chain(self, pool: str) -> list[str]:
        return self.controls.pools.chain(pool)

    def usable_models(self) -> frozenset[str]:
        """Every model `is_usable` says yes to; cached until the user changes something."""
        if self._usable is None:
            self._usable = frozenset(k for k in self.catalog.models if self.is_usable(k))
            self._usable_chains.clear()
        return self._usable

    def usable_chain(self, pool: str) -> list[str]:
        """The pool's chain without unusable models (cached like `usable_models`; do not mutate)."""
        usable = self.usable_models()
        chain = self._usable_chains.get(pool)
        if chain is None:
            chain = self._usable_chains[pool] = [k for k in self.chain(pool) if k in usable]
        return chain

    def cooling_models(self, now: float) -> set[str]:
        """Models with any cooldown running (on the model, or on one of its keys)."""
        if not self.cooldowns:
            return set()
        return {entry.model for entry in self.cooldowns.entries(now)}

    def available_at(self, key: str, now: float) -> float:
        """When the model can next be used: `now`, or when its cooldown ends."""
        ids = self.keys.valid_ids(self.catalog.provider_names[key])
        return self.cooldowns.available_at(key, ids, now)

    def refresh_posteriors(self) -> None:
        """Re-derive the recency decay (periodically, off the request path)."""
        self.book.refresh(self.clock())
        self.score_bases.forget()

    def restore_controls(self, saved: dict[str, Any]) -> None:
        """Apply what a previous run saved (pool order, enablement, bans, protection)."""
        self.controls.restore(saved, set(self.catalog.models))
        self._changed("pools")

    def _changed(self, topic: str, text: str = "") -> None:
        """The user changed a control: drop what was derived from the old ones, then tell."""
        self._usable = None
        self.score_bases.forget()
        self._publish(topic, text)

    def is_usable(self, key: str) -> bool:
        """Enabled, not banned, and its provider has a key to send and is not banned."""
        model = self.catalog.models[key]
        return (
            key not in self.controls.pools.disabled
            and key not in self.controls.banned_models
            and model.provider not in self.controls.banned_providers
            and self.catalog.providers[model.provider].usable
            and not self.keys.all_invalid(model.provider)
        )

    def reject_key(self, key_id: str, *, status: int | None, reason: str) -> None:
        """The upstream refused this API key (401/403): it is not sent again until a restart.

        When it was the provider's last valid key, routing leaves the provider's models out.
        """
        keys = self.keys
        if not keys.invalidate(key_id, reason=reason, status=status, now=self.clock()):
            return  # a request in flight sent it too and already marked it
        provider = keys.provider_of(key_id)
        code = "" if status is None else f" ({status})"
        text = f"{key_id} ({keys.masked(key_id)}) rejected by {provider}{code}"
        text += ": not used again until restart"
        if keys.all_invalid(provider):
            self._changed("keys", f"{text}; {provider} has no valid key left: its models are out")
        else:
            self._publish("keys", text)

    def keys_rejected_notes(self, pool: str) -> list[str]:
        """Why models of this pool are left out for their keys, one line per provider.

        `provider mock skipped: all 2 API keys were rejected (401)`, for each provider with
        models in the pool and no valid key left, in chain order.
        """
        notes: dict[str, str] = {}
        for key in self.chain(pool):
            provider = self.catalog.provider_names[key]
            if provider not in notes and (why := self.keys.describe_rejection(provider)):
                notes[provider] = f"provider {provider} skipped: {why}"
        return list(notes.values())

    def move_in_pool(self, key: str, delta: int) -> int:
        position = self.controls.pools.move(self._known(key), delta)
        self._changed("pools", f"{key} moved to position {position + 1}")
        return position

    def set_enabled(self, key: str, enabled: bool) -> None:
        disabled = self.controls.pools.disabled
        (disabled.discard if enabled else disabled.add)(self._known(key))
        self._changed("pools", f"{key} {'enabled' if enabled else 'disabled'}")

    def ban_model(self, key: str) -> None:
        self.controls.banned_models.add(self._known(key))
        self._changed("bans", f"{key} banned")

    def unban_model(self, key: str) -> None:
        self.controls.banned_models.discard(self._known(key))
        self._changed("bans", f"{key} unbanned")

    def ban_provider(self, provider: str) -> None:
        self.controls.banned_providers.add(self._known_provider(provider))
        self._changed("bans", f"provider {provider} banned")

    def unban_provider(self, provider: str) -> None:
        self.controls.banned_providers.discard(self._known_provider(provider))
        self._changed("bans", f"provider {provider} unbanned")

    def set_protection(self, provider: str, level: str) -> None:
        self.controls.set_protection(self._known_provider(provider), level)
        self._changed("protection", f"provider {provider} protection: {level}")

    def clear_sticky(self, session: str) -> bool:
        cleared = self.sessions.clear(session)
        if cleared:
            self._publish("sessions", f"session {session[:8]} cleared")
        return cleared

    def clear_all_sticky(self) -> int:
        count = self.sessions.clear_all()
        self._publish("sessions", f"{count} sessions cleared")
        return count

    def clear_cooldowns(self, key: str | None = None) -> int:
        count = self.cooldowns.clear(None if key is None else self._known(key))
        self._publish("cooldowns", f"{count} cooldowns cleared")
        return count

    def find_request(self, request_id: str) -> ActiveRequest | None:
        """A request in flight or recently finished (the TUI's detail screen)."""
        found = self.active.get(request_id)
        if found is not None:
            return found
        return next((r for r in reversed(self.recent) if r.id == request_id), None)

    # --- the request log (its writer reports here) ----------------------------------------

    def watch_log(self, health: Callable[[], LogHealth]) -> None:
        """Where snapshots read the log's health from (the log itself, which keeps the counts)."""
        self.log_health = health

    def watch_responses_store(self, counts: Callable[[], StoreCounts]) -> None:
        """Where snapshots read how many Responses conversations are stored (the door's store)."""
        self.responses_store = counts

    def log_health_changed(self, health: LogHealth) -> None:
        """The log's writer started or stopped failing, or repaired or dropped rows: say so."""
        if health.failing:
            text = f"request log cannot write ({health.last_error}); {health.pending} rows kept"
        else:
            text = "request log writing again"
        if health.dropped:
            text += f"; {health.dropped} oldest rows dropped (backlog full)"
        if health.repaired:
            text += f"; {health.repaired} rows stored with unstorable text replaced"
        self._publish("log", text)

    def client_rejected(self, cause: str) -> None:
        """A request was refused before routing: count it; say so unless said just now."""
        line = self.rejections.count(cause, self.clock())
        if line is not None:
            self._publish("requests", line)

    def note(self, text: str) -> None:
        """A line for the event log that changes nothing else."""
        self._publish("requests", text)

    def set_demo_paused(self, paused: bool) -> None:
        self.demo_paused = paused
        self._publish("demo", f"demo traffic {'paused' if paused else 'resumed'}")

    def _known(self, key: str) -> str:
        if key not in self.catalog.models:
            raise KeyError(key)
        return key

    def _known_provider(self, name: str) -> str:
        if name not in self.catalog.providers:
            raise KeyError(name)
        return name

    # --- snapshots ------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready picture of everything, for the state API and the TUI."""
        return snapshot(self)

    def pools_json(self) -> dict[str, list[dict[str, Any]]]:
        return pools_json(self)
