"""What the gateway learns from each upstream attempt: posteriors, cooldowns, stickiness, keys.

The relay reports every attempt's end here (through the state's verbs). A success feeds the
model's posterior and pins the conversation to it; a failure feeds the posterior, cools the model
(or one key) down and applies the provider's protection level to the conversation; a failure that
is nobody's fault (the client left, the gateway stopped) teaches nothing. Also here: which key a
model is sent with, and which providers take a prefill to continue a broken answer.

Quotas (quotas.py): a key is picked only if the model's limits let it take the request; the
attempt is counted when it is sent (`reserve_quota`) and settled with the upstream's usage when
it ends. A 429 from a key with limits is the quota's doing, not the model's (kind `quota`): it
releases the refused count, may lower the key's effective limit, and charges no posterior.

Prefill refusals are shared between gateways (changes.py): each is reported, and `apply`
takes one made elsewhere. The cooldowns, sessions and posteriors report their own changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..config import Continuation
from .catalog import Catalog
from .changes import Change, Reporting
from .controls import Controls
from .cooldowns import Cooldowns
from .errors import ErrorKind
from .events import AttemptFailed, EventBus, Note, PrefillRefused
from .flow import Flow
from .keys import KeyRing
from .posteriors import BucketRow, Outcome, PosteriorBook, attempt_outcome
from .protection import Decision, decide
from .quotas import Quotas, Reservation
from .records import AttemptRecord
from .scoring import ScoreBases
from .sticky import StickySessions
from .timers import LearnedTimers


class Learner(Reporting):
    """Verbs the proxy calls as attempts succeed and fail."""

    PART = "prefill"

    def __init__(
        self,
        *,
        catalog: Catalog,
        controls: Controls,
        cooldowns: Cooldowns,
        sessions: StickySessions,
        keys: KeyRing,
        book: PosteriorBook,
        score_bases: ScoreBases,
        timers: LearnedTimers,
        quotas: Quotas | None = None,
        bus: EventBus,
        clock: Callable[[], float],
    ) -> None:
        self.catalog = catalog
        self.controls = controls
        self.cooldowns = cooldowns
        self.sessions = sessions
        self.keys = keys
        self.book = book
        self.score_bases = score_bases
        self.timers = timers
        self.quotas = quotas or Quotas()
        self._bus = bus
        self._clock = clock
        self.prefill_refused: dict[str, str] = {}
        """Model -> why it refused an assistant prefill (its 400's message); kept across runs."""

    # --- keys and capabilities ------------------------------------------------------------

    def pick_key(self, model: str, tokens: int = 0) -> tuple[str, str] | None:
        """The next valid key of the model's provider that is not rate-limited for it: (id, secret).

        Keys take turns; one cooling down for this model is passed over while another is free,
        and one the upstream rejected is never picked again. With limits, only a key whose quota
        takes one more request of `tokens` is picked; None when no key's does.
        """
        provider = self.catalog.provider_names[model]
        valid = self.keys.valid_ids(provider)
        quotas = self.quotas
        if not quotas.limited(model):
            if len(valid) <= 1:
                return self.keys.pick(provider)
            return self.keys.pick(provider, self.cooldowns.usable_keys(model, valid, self._clock()))
        now = self._clock()
        fits = [k for k in valid if quotas.allows(k, model, now, tokens)]
        if not fits:
            return None
        free = self.cooldowns.usable_keys(model, fits, now)
        return self.keys.pick(provider, free or fits)

    def other_key_free(self, model: str, failed_key: str | None, tokens: int = 0) -> bool:
        """Another valid key of the model's provider is not rate-limited for this model (and,
        with limits, its quota takes one more request of `tokens`)."""
        ids = self.keys.valid_ids(self.catalog.provider_names[model])
        now = self._clock()
        free = [k for k in self.cooldowns.usable_keys(model, ids, now) if k != failed_key]
        if not self.quotas.limited(model):
            return bool(free)
        return any(self.quotas.allows(k, model, now, tokens) for k in free)

    def reserve_quota(self, key_id: str, model: str, tokens: int) -> Reservation | None:
        """Count an attempt being sent on the key (None: the model has no limits)."""
        if not self.quotas.limited(model):
            return None
        return self.quotas.reserve(key_id, model, self._clock(), tokens)

    def continuation(self, model: str) -> Continuation | None:
        """How a broken answer would be continued on `model` now, or None if it is not.

        `auto` (the default) prefills unless the model refused a prefill, then instructs; an
        explicit `prefill` that was refused leaves the model out of continuations.
        """
        settings = self.catalog.models[model]
        mode = settings.continuation or self.catalog.providers[settings.provider].continuation
        if mode == "none":
            return None
        if mode == "instruct":
            return "instruct"
        refused = model in self.prefill_refused
        if mode == "prefill":
            return None if refused else "prefill"
        return "instruct" if refused else "prefill"

    def can_continue(self, model: str) -> bool:
        return self.continuation(model) is not None

    def refuse_prefill(self, model: str, reason: str) -> None:
        """The model answered a prefill with a 400 about it: instruct it from now on."""
        self.prefill_refused[model] = reason
        self._report(model, reason)
        self._bus.publish(PrefillRefused(model, reason))

    def apply(self, change: Change) -> None:
        """A model refused a prefill on another gateway: continue it by instruction here too."""
        if change.key in self.catalog.models and change.key not in self.prefill_refused:
            self.prefill_refused[change.key] = str(change.value)
            self._bus.publish(PrefillRefused(change.key, str(change.value)))

    def changes(self) -> list[Change]:
        """Every refusal as a change: what a fresh shared store is seeded with."""
        return [Change(self.PART, m, why) for m, why in self.prefill_refused.items()]

    def restore_refusals(self, saved: dict[str, str]) -> None:
        """The refusals saved by an earlier run, for the models this config still has."""
        self.prefill_refused.update(
            (model, str(reason)) for model, reason in saved.items() if model in self.catalog.models
        )

    # --- learning from attempts -----------------------------------------------------------

    def decide(self, model: str, kind: ErrorKind, *, after_first_byte: bool) -> Decision:
        """What the model's provider's protection level says to do about this failure."""
        provider = self.catalog.models[model].provider
        return decide(self.controls.protection[provider], kind, after_first_byte=after_first_byte)

    def record_success(
        self,
        flow: Flow,
        attempt: AttemptRecord,
        *,
        key_id: str | None,
        quota: Reservation | None = None,
    ) -> None:
        """The attempt answered: the same outcome the log's reload derives from its row.

        `quota`: the attempt's count, settled with the tokens the request used.
        """
        if quota is not None and key_id is not None:
            used = (flow.tokens_in or 0) + (flow.tokens_out or 0)
            self.quotas.settle(quota, used or None)
            self.quotas.succeeded(key_id, attempt.model, self._clock())
        outcome = attempt_outcome(attempt, streamed=flow.stream, tokens_out=flow.tokens_out)
        if outcome is not None:
            self._learn(outcome)
        if flow.stream:  # what its timers learn: how soon it starts, how long it pauses
            self.timers.observe(
                attempt.model,
                first_byte_s=None if attempt.ttfb_ms is None else attempt.ttfb_ms / 1000,
                max_gap_s=None if attempt.max_gap_ms is None else attempt.max_gap_ms / 1000,
            )
        now = self._clock()
        self.cooldowns.record_success(model=attempt.model, key_id=key_id, now=now)
        self.sessions.pin(flow.session, attempt.model, key_id, now)

    def record_failure(
        self,
        flow: Flow,
        attempt: AttemptRecord,
        *,
        kind: ErrorKind,
        key_id: str | None,
        decision: Decision,
        reason: str,
        retry_after_s: float | None = None,
        cool_down: bool = True,
        quota: Reservation | None = None,
    ) -> None:
        """Learn from a failed attempt and apply the conversation's protection decision.

        `quota`: the attempt's count; a 429 (kind `quota`) gives it back and may lower the key's
        limit, any other failure keeps it (the request was sent).
        """
        now = self._clock()
        model = attempt.model
        provider = self.catalog.models[model].provider
        flow.phase = "fallback"
        if quota is not None:
            if kind == ErrorKind.QUOTA and key_id is not None:
                self._quota_refused(flow, model, key_id, quota, now)
            else:
                self.quotas.settle(quota, None)
        if kind.neutral:
            flow.decisions.append(f"{model}: {reason}")
            return  # nobody's fault: no statistics, no cooldown, no ban
        outcome = attempt_outcome(attempt, streamed=flow.stream, tokens_out=None)
        if outcome is not None:
            self._learn(outcome)
        text = f"{model} failed ({reason})"
        if cool_down:
            entry = self.cooldowns.record_failure(
                model=model, provider=provider, kind=kind, key_id=key_id, now=now,
                retry_after_s=retry_after_s,
            )  # fmt: skip
            if entry is not None:
                text += f"; cooling {entry.remaining(now):.0f} s"
        session = self.sessions.get(flow.session, now)
        if decision.ban_provider and session is not None:
            self.sessions.ban_provider(flow.session, provider, now)
            text += f"; {provider} banned for this conversation"
        if decision.clear_sticky and session is not None and session.model == model:
            self.sessions.unpin(flow.session)
            text += "; conversation unpinned"
        flow.decisions.append(text)
        if self._bus.wants(AttemptFailed):
            self._bus.publish(AttemptFailed(flow.id, model, str(kind), text))

    def _quota_refused(
        self, flow: Flow, model: str, key_id: str, quota: Reservation, now: float
    ) -> None:
        """A 429 from a key with limits: under them, the provider's real limit is lower."""
        lowered = self.quotas.rate_limited(key_id, model, now, refused=quota)
        if lowered is None:
            return
        view = self.quotas.view(key_id, model, now)
        window = next((w for w in view.windows if w.name == lowered), None) if view else None
        if window is not None:
            text = (
                f"{key_id} {model}: {lowered} lowered to {window.limit} (a 429 under the"
                f" configured {window.configured}); raised back as requests succeed"
            )
            flow.decisions.append(text)
            self._bus.publish(Note(text))

    def _learn(self, outcome: Outcome) -> None:
        self.book.record(outcome)
        self.score_bases.forget(outcome.model)

    # --- history --------------------------------------------------------------------------

    def load_history(self, rows: Iterable[BucketRow]) -> None:
        """What the log remembers of earlier runs (aggregated off the event loop)."""
        self.book.load(list(rows), self._clock())
        self.score_bases.forget()

    def refresh(self) -> None:
        """Re-derive the recency decay (periodically, off the request path)."""
        self.book.refresh(self._clock())
        self.score_bases.forget()
