"""Walking one request's candidate list: what to try next after each failure.

Rules, in order, after an attempt fails before any byte reached the client:

1. A 429 (kind `rate_limited`, or `quota` on a key with limits), or a 401/403 (the key was
   rejected), while another key of the same provider is free
   for that model: the same model again, on that key, at once.
2. The preferred model (named by the client or sticky) answered 429 with a Retry-After of at
   most `max_retry_after_wait_s`: wait that long and try it again, rather than moving the
   conversation to another model.
3. The preferred model's first 5xx: try it once more before falling over.
4. Otherwise the next candidate, leaving out the failed model and, when protection banned its
   provider, every model of that provider.

After the first byte a failed model is left out (`exclude`), except that a model that refused a
prefilled continuation is offered once more (`again`), to be asked by instruction.

Candidates of a provider whose keys were all rejected are passed over without a try, even those
planned before its last key went.

Every try counts against `max_attempts`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import ErrorKind
from .protection import Decision
from .routing import Candidate

_ANOTHER_KEY = frozenset({ErrorKind.RATE_LIMITED, ErrorKind.QUOTA, ErrorKind.KEY_REJECTED})
"""Failures of the key rather than the model: the same model may answer on another key."""


@dataclass(frozen=True, slots=True)
class Retry:
    """Try the same candidate again after `wait_s` seconds."""

    candidate: Candidate
    wait_s: float = 0.0
    why: str = ""


@dataclass(slots=True)
class AttemptPlan:
    candidates: list[Candidate]
    max_attempts: int
    max_retry_after_wait_s: float = 3.0
    more: Callable[[], list[Candidate]] | None = None
    """Called once, when `candidates` run out: the rest of the pool, ranked only if needed."""
    only: Callable[[Candidate], bool] | None = None
    """When set, candidates it says no to are passed over (e.g. those that cannot continue)."""
    keys_rejected: Callable[[str], bool] | None = None
    """Provider -> whether all its keys were rejected; when set, its candidates are passed over."""
    tries: int = 0
    _next: int = 0
    _skipped_models: set[str] = field(default_factory=set)
    _skipped_providers: set[str] = field(default_factory=set)
    _retried: set[tuple[str, str]] = field(default_factory=set)
    _pending: Retry | None = None

    def next(self) -> tuple[Candidate, float] | None:
        """The candidate to try now and how long to wait first; None when the plan is spent."""
        if self.tries >= self.max_attempts:
            return None
        if self._pending is not None:
            retry, self._pending = self._pending, None
            if not self._keyless(retry.candidate):
                self.tries += 1
                return retry.candidate, retry.wait_s
        while True:
            if self._next >= len(self.candidates):
                if self.more is None:
                    return None
                more, self.more = self.more, None
                known = {c.model for c in self.candidates}
                self.candidates += [c for c in more() if c.model not in known]
                continue
            candidate = self.candidates[self._next]
            self._next += 1
            if candidate.model in self._skipped_models:
                continue
            if candidate.provider in self._skipped_providers:
                continue
            if self.only is not None and not self.only(candidate):
                continue
            if self._keyless(candidate):
                continue
            self.tries += 1
            return candidate, 0.0

    def _keyless(self, candidate: Candidate) -> bool:
        return self.keys_rejected is not None and self.keys_rejected(candidate.provider)

    def failed(
        self,
        candidate: Candidate,
        kind: ErrorKind,
        decision: Decision,
        *,
        retry_after_s: float | None = None,
        other_key_free: bool = False,
    ) -> Retry | None:
        """Record a failure before the first byte; returns the retry it earned, if any."""
        retry = self._retry(candidate, kind, retry_after_s, other_key_free)
        if retry is not None:
            self._retried.add((candidate.model, retry.why))
            self._pending = retry
            return retry
        self._skipped_models.add(candidate.model)
        if decision.ban_provider:
            self._skipped_providers.add(candidate.provider)
        return None

    def passed_over(self, candidate: Candidate) -> None:
        """`candidate` was not tried after all (every key at its quota): no try spent on it."""
        self.tries -= 1
        self._skipped_models.add(candidate.model)

    def again(self, candidate: Candidate, why: str) -> None:
        """Offer `candidate` once more, next (asked another way: a refused prefill)."""
        if (candidate.model, why) not in self._retried:
            self._retried.add((candidate.model, why))
            self._pending = Retry(candidate, 0.0, why)

    def exclude(self, candidate: Candidate, decision: Decision) -> None:
        """Leave out a model that failed mid-answer (and its provider, if protection banned it)."""
        self._pending = None
        self._skipped_models.add(candidate.model)
        if decision.ban_provider:
            self._skipped_providers.add(candidate.provider)

    def _retry(
        self,
        candidate: Candidate,
        kind: ErrorKind,
        retry_after_s: float | None,
        other_key_free: bool,
    ) -> Retry | None:
        def once(why: str, wait_s: float = 0.0) -> Retry | None:
            done = (candidate.model, why) in self._retried
            return None if done else Retry(candidate, wait_s, why)

        if kind in _ANOTHER_KEY and other_key_free:
            # Not once: each 429 cools the key that sent it and each 401/403 invalidates it,
            # so this ends when keys run out.
            return Retry(candidate, 0.0, "another key")
        if not candidate.preferred:
            return None
        if (
            kind == ErrorKind.RATE_LIMITED
            and retry_after_s is not None
            and retry_after_s <= self.max_retry_after_wait_s
        ):
            return once("retry-after", retry_after_s)
        if kind == ErrorKind.SERVER:
            return once("first 5xx")
        return None
