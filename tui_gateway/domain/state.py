"""GatewayState: the one picture of the gateway, a thin front over its parts, changed by its verbs.

The parts each do one job and know nothing of the others' insides:

    Flows      the requests in flight and recently finished (flows.py)
    Router     what routing may use now, and the plans it makes (routing.py)
    Learner    what each attempt teaches: posteriors, cooldowns, stickiness (learning.py)
    KeyRing    the providers' API keys and which were rejected (keys.py)
    KeyHealth  keys out on a refusal, back on a passing check, kept across restarts (key_health.py)
    sessions   sticky conversations, and the index that finds them by history
    Controls   what the user decided: pool order, enablement, bans, protection (controls.py)
    Quotas     each limited model's use per key, and limits learned from 429s (quotas.py)

The shared ones report their changes to the cluster's mirror, when there is one (replica.py).

The proxy, the screen's keys and the admin API all call the verbs below; each change publishes a
typed event (events.py) and snapshots are frozen copies (views.py, snapshot.py).
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..config import Continuation, Settings
from ..config_limits import quota_policies
from .catalog import Catalog, Target
from .controls import Controls
from .conversations import ConversationIndex
from .cooldowns import Cooldowns
from .errors import ErrorKind
from .events import (
    ClientRejected,
    ContinuationBegan,
    ControlsChanged,
    CooldownsCleared,
    DemoToggled,
    Event,
    EventBus,
    LogHealthChanged,
    Note,
    SessionsCleared,
    Subscriber,
)
from .flow import Flow
from .flows import Flows
from .key_health import KeyHealth
from .keys import KeyCheck, KeyRing
from .learning import Learner
from .planning import plan_lazily
from .posteriors import BucketRow, PosteriorBook
from .protection import Decision
from .quotas import Quotas, Reservation
from .records import AttemptRecord, LogHealth
from .rejections import Rejections
from .replica import ClusterStatus
from .response_store import StoreCounts
from .routing import Plan, Router
from .sessions import session_preview
from .snapshot import build_pools, build_snapshot, detail_of
from .sticky import SessionEntry, StickySessions
from .timers import LearnedTimers
from .views import FlowDetail, PoolEntry, Snapshot

Clock = Callable[[], float]
PERSISTED_EVENTS: tuple[type[Event], ...] = (ControlsChanged,)
"""Events whose change must survive a restart."""

__all__ = ["PERSISTED_EVENTS", "Flow", "GatewayState"]


class GatewayState:
    """Requests in flight, what routing has learned, and what the user decided."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = time.time,
        rng: random.Random | None = None,
        ids: random.Random | None = None,
    ) -> None:
        routing = self.routing = settings.routing
        self.streaming = settings.streaming
        self.clock = clock
        self.rng = rng or random.Random(routing.seed)
        self.bus = EventBus()
        self.catalog = Catalog(settings.providers, settings.models)
        self.controls = Controls(settings.providers, settings.models)
        self.keys = KeyRing(settings.providers)
        self.cooldowns = Cooldowns(
            transient_s=routing.transient_cooldown_s, rate_limit_s=routing.rate_limit_cooldown_s
        )
        self.sessions = StickySessions(
            ttl_s=routing.sticky_ttl_s, cap=routing.sticky_cap, ban_ttl_s=routing.provider_ban_ttl_s
        )
        self.conversations = ConversationIndex(ttl_s=routing.sticky_ttl_s, cap=routing.sticky_cap)
        """Which conversation a request without a session header continues (by its history)."""
        self.book = PosteriorBook(window_s=routing.recency_window_days * 86400, prior=routing.prior)
        self.flows = Flows(self.bus, clock, ids)
        self.quotas = Quotas(quota_policies(settings.providers, settings.models))
        self.router = Router(
            routing=routing, catalog=self.catalog, controls=self.controls, keys=self.keys,
            cooldowns=self.cooldowns, sessions=self.sessions, book=self.book, flows=self.flows,
            quotas=self.quotas, clock=clock,
        )  # fmt: skip
        self.key_health = KeyHealth(self.keys, router=self.router, bus=self.bus, clock=clock)
        self.timers = LearnedTimers()
        """Each model's usual first byte and longest pause, and the timeouts they give."""
        self.learner = Learner(
            catalog=self.catalog, controls=self.controls, cooldowns=self.cooldowns,
            sessions=self.sessions, keys=self.keys, book=self.book,
            score_bases=self.router.score_bases, timers=self.timers, quotas=self.quotas,
            bus=self.bus, clock=clock,
        )  # fmt: skip
        self.cluster = ClusterStatus()
        """The link to the state shared with other gateways (`[cluster]`), if there is one."""
        self.rejections = Rejections()
        """Requests refused before routing (bad key, path or body), by cause."""
        self.demo_paused = False
        self.log_health: Callable[[], LogHealth] = LogHealth
        """How the request log's writer is doing (see `watch_log`); no log: all zero."""
        store = settings.dialects.responses
        self.responses_store: Callable[[], StoreCounts] = lambda: StoreCounts(
            0, store.store_cap, store.store_ttl_s
        )
        """How full the Responses door's store is (see `watch_responses_store`)."""

    # --- events and snapshots -------------------------------------------------------------

    def subscribe(
        self, subscriber: Subscriber, *, kinds: Iterable[type[Event]] | None = None
    ) -> Callable[[], None]:
        """Call `subscriber` on every event (or only on these types); returns the unsubscribe."""
        return self.bus.subscribe(subscriber, kinds=kinds)

    def snapshot(self, *, intervals: bool = True) -> Snapshot:
        """A frozen picture of everything; `intervals=False` leaves out the posteriors' 90%
        intervals (the screen computes them only for the rows it shows)."""
        return build_snapshot(self, intervals=intervals)

    def pools(self) -> dict[str, tuple[PoolEntry, ...]]:
        return build_pools(self)

    def find_request(self, request_id: str) -> FlowDetail | None:
        """A copy of a request in flight or recently finished (the detail screen)."""
        flow = self.flows.find(request_id)
        return None if flow is None else detail_of(flow)

    # --- requests (called by the proxy) ---------------------------------------------------

    @property
    def active(self) -> dict[str, Flow]:
        return self.flows.active

    @property
    def recent(self) -> deque[Flow]:
        return self.flows.recent

    @property
    def finished_count(self) -> int:
        return self.flows.finished

    def new_id(self, started: float) -> str:
        return self.flows.new_id(started)

    def open_session(
        self,
        named: tuple[str, str] | None,
        target: Target,
        messages: Sequence[Mapping[str, Any]],
    ) -> SessionEntry:
        """The conversation this request belongs to: the one a header names (`named` is its
        (value, header)), else the one whose history it continues, else a new one."""
        now = self.clock()
        key, source = named or (
            self.conversations.session_for(target.mode, messages, now),
            "history",
        )
        preview = lambda: session_preview(messages)  # noqa: E731 (built only if it is new)
        return self.sessions.open(key, mode=target.mode, preview=preview, now=now, source=source)

    def plan(self, target: Target, session: SessionEntry | None, flow: Flow | None = None) -> Plan:
        tokens, notes = (0, None) if flow is None else (flow.quota_tokens, flow.passed_over)
        return plan_lazily(self.router, target, session, self.rng, tokens=tokens, notes=notes)

    def begin_request(
        self, *, session: str, requested_model: str, stream: bool,
        body: Mapping[str, Any] | None = None, dialect: str = "chat", client: str | None = None,
    ) -> Flow:  # fmt: skip
        """A request is in flight; `client`: the `[[clients]]` name of the key it came with."""
        return self.flows.begin(
            session=session, requested_model=requested_model, stream=stream, body=body,
            dialect=dialect, client=client,
        )  # fmt: skip

    def begin_attempt(
        self, flow: Flow, *, model: str, provider: str, text_from: int | None = None,
        hedge: bool = False,
    ) -> None:  # fmt: skip
        """An attempt starts (`text_from`: continuing after that many characters; `hedge`: racing
        the attempt under way to a first byte)."""
        self.flows.begin_attempt(
            flow, model=model, provider=provider, text_from=text_from, hedge=hedge
        )

    def hedge_won(self, flow: Flow) -> None:
        self.flows.hedge_won(flow)

    def finish_request(self, flow: Flow) -> bool:
        return self.flows.finish(flow)  # exactly this request out of the active set; idempotent

    def begin_continuation(self, flow: Flow, failed: str, reason: str) -> None:
        flow.phase = "continuing"
        self.bus.publish(ContinuationBegan(flow.id, failed, reason))

    def skip_request(self, request_id: str) -> bool | None:
        """Move a request in flight on from its attempt, as a stall would, blaming no one.
        None: not in flight; False: no attempt is waiting now (between two, say)."""
        if moved := self.flows.move_on(request_id):
            self.note(f"{request_id} moved on by the user")
        return moved

    def _move_on(self, serving: Callable[[Flow], bool], why: str) -> None:
        if moved := self.flows.move_on_all(serving):
            self.note(f"{why}: {', '.join(moved)} moved on")

    # --- learning from attempts (called by the proxy) -------------------------------------

    def pick_key(self, model: str, tokens: int = 0) -> tuple[str, str] | None:
        """A key to send `model` with (None: every key is at the model's quota)."""
        return self.learner.pick_key(model, tokens)

    def other_key_free(self, model: str, failed_key: str | None, tokens: int = 0) -> bool:
        return self.learner.other_key_free(model, failed_key, tokens)

    def reserve_quota(self, key_id: str, model: str, tokens: int) -> Reservation | None:
        return self.learner.reserve_quota(key_id, model, tokens)

    def can_continue(self, model: str) -> bool:
        return self.learner.can_continue(model)

    def continuation(self, model: str) -> Continuation | None:
        return self.learner.continuation(model)

    def refuse_prefill(self, model: str, reason: str) -> None:
        self.learner.refuse_prefill(model, reason)

    def decide(self, model: str, kind: ErrorKind, *, after_first_byte: bool) -> Decision:
        return self.learner.decide(model, kind, after_first_byte=after_first_byte)

    def record_success(
        self, flow: Flow, attempt: AttemptRecord, *, key_id: str | None,
        quota: Reservation | None = None,
    ) -> None:  # fmt: skip
        self.learner.record_success(flow, attempt, key_id=key_id, quota=quota)

    def record_failure(
        self, flow: Flow, attempt: AttemptRecord, *, kind: ErrorKind, key_id: str | None,
        decision: Decision, reason: str, retry_after_s: float | None = None,
        cool_down: bool = True, quota: Reservation | None = None,
    ) -> None:  # fmt: skip
        self.learner.record_failure(
            flow, attempt, kind=kind, key_id=key_id, decision=decision, reason=reason,
            retry_after_s=retry_after_s, cool_down=cool_down, quota=quota,
        )  # fmt: skip

    def reject_key(self, key_id: str, *, status: int | None, reason: str) -> None:
        """The upstream refused this API key (401/403): not sent again until a check passes;
        when it was the provider's last valid key, routing leaves the provider's models out."""
        self.key_health.reject(key_id, status=status, reason=reason)

    def key_checked(self, check: KeyCheck) -> None:
        """A key check's result: `ok` brings an invalid key back, `invalid` takes it out as
        `reject_key` does, `error` and `timeout` change nothing (key_health.py)."""
        self.key_health.checked(check)

    def keys_rejected_notes(self, pool: str) -> list[str]:
        return self.router.keys_rejected_notes(pool)

    def load_history(self, rows: Iterable[BucketRow]) -> None:
        """What earlier runs taught, aggregated from the request log."""
        self.learner.load_history(rows)

    def refresh_posteriors(self) -> None:
        self.learner.refresh()

    # --- what routing may use (the screen, the admin API, the routing benchmark) ----------

    def chain(self, pool: str) -> list[str]:
        return self.router.chain(pool)

    def is_usable(self, key: str) -> bool:
        return self.router.is_usable(key)

    def usable_models(self) -> frozenset[str]:
        return self.router.usable_models()

    def available_at(self, key: str, now: float, tokens: int = 0) -> float:
        return self.router.available_at(key, now, tokens)

    # --- the user's controls (the screen, the admin API) ----------------------------------

    def restore_controls(self, saved: dict[str, Any]) -> None:
        """Apply what a previous run saved (pool order, enablement, bans, protection)."""
        self.controls.restore(saved, set(self.catalog.models))
        self._changed("")

    def _changed(self, line: str) -> None:
        """The user changed a control: drop what was derived from the old ones, then tell."""
        self.router.invalidate()
        self.controls.report(line)
        self.bus.publish(ControlsChanged(line))

    def move_in_pool(self, key: str, delta: int) -> int:
        position = self.controls.pools.move(self._known(key), delta)
        self._changed(f"{key} moved to position {position + 1}")
        return position

    def set_enabled(self, key: str, enabled: bool) -> None:
        disabled = self.controls.pools.disabled
        (disabled.discard if enabled else disabled.add)(self._known(key))
        self._changed(f"{key} {'enabled' if enabled else 'disabled'}")

    def ban_model(self, key: str) -> None:
        """Out of routing everywhere; requests it is serving now move on at once."""
        self.controls.banned_models.add(self._known(key))
        self._changed(f"{key} banned")
        self._move_on(lambda flow: flow.model == key, f"{key} was banned")

    def unban_model(self, key: str) -> None:
        self.controls.banned_models.discard(self._known(key))
        self._changed(f"{key} unbanned")

    def ban_provider(self, provider: str) -> None:
        """Its models out of routing everywhere; requests on them now move on at once."""
        self.controls.banned_providers.add(self._known(provider, self.catalog.providers))
        self._changed(f"provider {provider} banned")
        self._move_on(lambda flow: flow.provider == provider, f"provider {provider} was banned")

    def unban_provider(self, provider: str) -> None:
        self.controls.banned_providers.discard(self._known(provider, self.catalog.providers))
        self._changed(f"provider {provider} unbanned")

    def set_protection(self, provider: str, level: str) -> None:
        self.controls.set_protection(self._known(provider, self.catalog.providers), level)
        self._changed(f"provider {provider} protection: {level}")

    def clear_sticky(self, session: str) -> bool:
        if cleared := self.sessions.clear(session):
            self.bus.publish(SessionsCleared(1, session))
        return cleared

    def clear_all_sticky(self) -> int:
        count = self.sessions.clear_all()
        self.bus.publish(SessionsCleared(count))
        return count

    def clear_cooldowns(self, key: str | None = None) -> int:
        count = self.cooldowns.clear(None if key is None else self._known(key))
        self.bus.publish(CooldownsCleared(count, key))
        return count

    def set_demo_paused(self, paused: bool) -> None:
        self.demo_paused = paused
        self.bus.publish(DemoToggled(paused))

    def _known(self, key: str, among: Mapping[str, object] | None = None) -> str:
        """`key` if it names a model (or one of `among`), else KeyError."""
        if key not in (self.catalog.models if among is None else among):
            raise KeyError(key)
        return key

    # --- what the edges report ------------------------------------------------------------

    def watch_log(self, health: Callable[[], LogHealth]) -> None:
        self.log_health = health  # the log keeps the counts snapshots read

    def watch_responses_store(self, counts: Callable[[], StoreCounts]) -> None:
        self.responses_store = counts  # the Responses door's store says how full it is

    def log_health_changed(self, health: LogHealth) -> None:
        """The log's writer started or stopped failing, or repaired or dropped rows: say so."""
        self.bus.publish(LogHealthChanged(health))

    def client_rejected(self, cause: str) -> None:
        """A request was refused before routing: count it; say so unless said just now."""
        line = self.rejections.count(cause, self.clock())
        if line is not None:
            self.bus.publish(ClientRejected(line))

    def note(self, text: str) -> None:
        """A line for the event log that changes nothing else."""
        self.bus.publish(Note(text))
