"""What the gateway learns from each upstream attempt, and the keys and capabilities it tracks.

Mixed into GatewayState (which owns the data); kept apart so the state's own module stays about
requests, controls and snapshots. The keys themselves live in a `KeyRing` (keys.py); the key
verbs here only add what the ring cannot know: which keys are rate-limited for a model.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from .active import ActiveRequest
from .catalog import Catalog
from .controls import Controls
from .cooldowns import Cooldowns
from .errors import ErrorKind
from .keys import KeyRing
from .posteriors import NEUTRAL_ERROR_KINDS, Outcome, PosteriorBook
from .protection import Decision, decide
from .scoring import ScoreBases
from .sticky import StickySessions

if TYPE_CHECKING:
    from collections.abc import Callable


class LearningFromAttempts:
    """Verbs the proxy calls as attempts start, succeed and fail."""

    # Provided by GatewayState.
    catalog: Catalog
    controls: Controls
    cooldowns: Cooldowns
    sessions: StickySessions
    book: PosteriorBook
    score_bases: ScoreBases
    clock: Callable[[], float]
    rng: random.Random
    prefill_refused: set[str]
    keys: KeyRing

    def _publish(self, topic: str, text: str = "") -> None:
        raise NotImplementedError  # GatewayState's

    def record_heartbeat(self, request: ActiveRequest) -> None:
        """A keep-alive went to the client while the upstream was quiet."""
        request.heartbeats += 1
        if request.phase != "continuing":
            request.phase = "heartbeat"

    def begin_continuation(self, request: ActiveRequest, failed: str, reason: str) -> None:
        request.phase = "continuing"
        self._publish("requests", f"{request.id} continuing after {failed} broke off ({reason})")

    def can_continue(self, model: str) -> bool:
        """The model's provider accepts a trailing assistant message (prefill) to continue from."""
        provider = self.catalog.models[model].provider
        return (
            self.catalog.providers[provider].continuation == "prefill"
            and provider not in self.prefill_refused
        )

    def refuse_prefill(self, provider: str) -> None:
        """The provider rejected a prefill: do not ask it to continue again in this run."""
        self.prefill_refused.add(provider)
        self._publish("requests", f"provider {provider} does not accept prefill; not asked again")

    def key_ids(self, provider: str) -> list[str]:
        """Stable names of a provider's API keys (`groq#1`, ...), safe to show and log."""
        return self.keys.ids(provider)

    def pick_key(self, model: str) -> tuple[str, str]:
        """The next valid key of the model's provider that is not rate-limited for it: (id, secret).

        Keys take turns; one cooling down for this model is passed over while another is free,
        and one the upstream rejected is never picked again.
        """
        provider = self.catalog.provider_names[model]
        valid = self.keys.valid_ids(provider)
        if len(valid) <= 1:
            return self.keys.pick(provider)
        return self.keys.pick(provider, self.cooldowns.usable_keys(model, valid, self.clock()))

    # --- learning from attempts (called by the proxy) -------------------------------------

    def record_success(
        self,
        request: ActiveRequest,
        *,
        model: str,
        key_id: str | None,
        started: float,
        ttfb_ms: float | None,
        tokens_per_s: float | None,
    ) -> None:
        now = self.clock()
        self.book.record(Outcome(model, started, True, ttfb_ms, tokens_per_s))
        self.score_bases.forget(model)
        self.cooldowns.record_success(model=model, key_id=key_id, now=now)
        self.sessions.pin(request.session, model, key_id, now)

    def decide(self, model: str, kind: ErrorKind, *, after_first_byte: bool) -> Decision:
        """What the model's provider's protection level says to do about this failure."""
        provider = self.catalog.models[model].provider
        return decide(self.controls.protection[provider], kind, after_first_byte=after_first_byte)

    def other_key_free(self, model: str, failed_key: str | None) -> bool:
        """Another valid key of the model's provider is not rate-limited for this model."""
        ids = self.keys.valid_ids(self.catalog.provider_names[model])
        return any(k != failed_key for k in self.cooldowns.usable_keys(model, ids, self.clock()))

    def record_failure(
        self,
        request: ActiveRequest,
        *,
        model: str,
        key_id: str | None,
        started: float,
        kind: ErrorKind,
        decision: Decision,
        reason: str,
        retry_after_s: float | None = None,
        cool_down: bool = True,
    ) -> None:
        """Learn from a failed attempt and apply the conversation's protection decision."""
        now = self.clock()
        provider = self.catalog.models[model].provider
        request.phase = "fallback"
        if kind in NEUTRAL_ERROR_KINDS:
            request.failures.append(f"{model}: {reason}")
            return  # nobody's fault: no statistics, no cooldown, no ban
        self.book.record(Outcome(model, started, False))
        self.score_bases.forget(model)
        text = f"{model} failed ({reason})"
        if cool_down:
            entry = self.cooldowns.record_failure(
                model=model, provider=provider, kind=kind, key_id=key_id, now=now,
                retry_after_s=retry_after_s,
            )  # fmt: skip
            if entry is not None:
                text += f"; cooling {entry.remaining(now):.0f} s"
        session = self.sessions.get(request.session, now)
        if decision.ban_provider and session is not None:
            self.sessions.ban_provider(request.session, provider, now)
            text += f"; {provider} banned for this conversation"
        if decision.clear_sticky and session is not None and session.model == model:
            self.sessions.unpin(request.session)
            text += "; conversation unpinned"
        request.failures.append(text)
        self._publish("requests", f"{request.id} {text}")
