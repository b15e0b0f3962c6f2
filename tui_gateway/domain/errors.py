"""Upstream failures, as routing sees them.

    UpstreamError            any failed attempt; `kind` says which row of the routing rules applies
    ├── RateLimited          429: cool the key/model down, try another
    ├── Unavailable          5xx or the connection failed
    ├── Stalled              no headers, first chunk or next chunk in time
    ├── WrappedError         an HTTP 200 whose body (or a stream chunk) is really an error
    └── UpstreamClientError  4xx: the request itself was refused (kind `rejected`), or, on a
                             401/403, the API key it was sent with (kind `key_rejected`)

Adapters translate aiohttp exceptions and odd bodies into this tree at the edge, so nothing in
`domain/` ever sees aiohttp.

Every `ErrorKind` classifies itself: `TRAITS` below is the one table of what each kind means, and
statistics (posteriors.py), cooldowns (cooldowns.py), thread protection (protection.py) and the
client's error (proxy/outcomes.py) all read it, as `kind.neutral`, `kind.charges` (a failure in
the posterior: neither neutral nor `quota`), `kind.transient`, ...

    kind             blame     neutral  transient  stall  broke_off
    5xx              provider           yes
    connection       provider           yes
    timeout          provider           yes        yes
    stall            provider           yes        yes    yes
    truncated        provider                             yes
    wrapped          provider
    outrun           provider
    rate_limited     capacity
    quota            quota
    client_error     model
    rejected         nobody    yes
    key_rejected     key       yes
    client_closed    nobody    yes
    shutdown         nobody    yes
    no_candidate     nobody    yes
    invalid_request  nobody    yes
    unaligned        nobody    yes
    hedged           nobody    yes
    skipped          user      yes
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


class ErrorKind(StrEnum):
    SERVER = "5xx"
    CONNECTION = "connection"
    TIMEOUT = "timeout"
    STALL = "stall"
    TRUNCATED = "truncated"
    WRAPPED = "wrapped"
    RATE_LIMITED = "rate_limited"
    QUOTA = "quota"
    """A 429 from a key with `limits`: its quota is spent (the counters learn from it)."""
    CLIENT_ERROR = "client_error"
    REJECTED = "rejected"
    """The upstream refused the request itself (400/413/422): the client's mistake."""
    KEY_REJECTED = "key_rejected"
    """401/403: the provider refused the API key sent: the key's fault, not the model's."""
    CLIENT_CLOSED = "client_closed"
    SHUTDOWN = "shutdown"
    NO_CANDIDATE = "no_candidate"
    INVALID_REQUEST = "invalid_request"
    UNALIGNED = "unaligned"
    """A continuation's text could not be joined to what the client had (see alignment.py)."""
    OUTRUN = "outrun"
    """Late for its model, and a candidate started after it (`[routing] hedge`) sent content
    first: the provider was slow this time. Counted as a failure, with no cooldown."""
    HEDGED = "hedged"
    """Started to race a late attempt (`[routing] hedge`), which sent content first: closed.
    Being started later says nothing about the model."""
    SKIPPED = "skipped"
    """The user moved the request on from this attempt (a key on the screen, the admin API)."""

    @classmethod
    def parse(cls, value: ErrorKind | str) -> ErrorKind | None:
        """The kind named `value` (as logged), or None for a name this version does not know."""
        try:
            return cls(value)
        except ValueError:
            return None

    @property
    def traits(self) -> Traits:
        return TRAITS[self]

    @property
    def blame(self) -> Blame:
        return TRAITS[self].blame

    @property
    def neutral(self) -> bool:
        """Says nothing about the model: no statistics, no cooldown, no ban."""
        return TRAITS[self].neutral

    @property
    def charges(self) -> bool:
        """A failure in the model's posterior (not neutral, and not a spent quota)."""
        return TRAITS[self].charges

    @property
    def transient(self) -> bool:
        """Cools the whole model down, for everyone, for a short while."""
        return TRAITS[self].transient

    @property
    def stall(self) -> bool:
        """The upstream went quiet: the client is told it timed out."""
        return TRAITS[self].stall

    @property
    def broke_off(self) -> bool:
        """After the first byte: the model broke off mid-answer."""
        return TRAITS[self].broke_off


class Blame(StrEnum):
    """Whose fault an attempt's ending is, as far as routing can tell."""

    PROVIDER = "provider"
    """The upstream misbehaved: it erred, hung, broke off or dressed an error as an answer."""
    CAPACITY = "capacity"
    """The upstream is busy (a rate limit), not broken."""
    QUOTA = "quota"
    """The key's quota (`limits`) is spent: the key waits as after any 429, but a quota is not
    the model's fault, so its posterior is not charged."""
    MODEL = "model"
    """This model refused the request (a 4xx that another model may accept)."""
    KEY = "key"
    """The provider refused the API key (401/403): another key may be accepted (keys.py)."""
    NOBODY = "nobody"
    """Nothing upstream: the client left or sent what every upstream refuses, or the gateway
    stopped or had no candidate left."""
    USER = "user"
    """The user moved the request on: the model is left for this request and its conversation,
    and nothing is learned about it."""


@dataclass(frozen=True, slots=True)
class Traits:
    """What one kind of attempt ending means to statistics, cooldowns, protection and the client."""

    blame: Blame
    transient: bool = False
    """Cools the whole model down for everyone (cooldowns.py); a rate limit cools only its key."""
    stall: bool = False
    """The upstream went quiet: the client's error is a timeout (504, `stream_timeout`)."""
    broke_off: bool = False
    """After the first byte: the model broke off mid-answer, so its conversation is unpinned."""

    @property
    def neutral(self) -> bool:
        """Says nothing about the model: neither a success nor a failure, no cooldown, no ban."""
        return self.blame in (Blame.KEY, Blame.NOBODY, Blame.USER)

    @property
    def charges(self) -> bool:
        """Counts as a failure in the model's posterior (a spent quota cools, but charges not)."""
        return not self.neutral and self.blame is not Blame.QUOTA


_K, _B = ErrorKind, Blame
TRAITS = MappingProxyType(
    {
        _K.SERVER: Traits(_B.PROVIDER, transient=True),
        _K.CONNECTION: Traits(_B.PROVIDER, transient=True),
        _K.TIMEOUT: Traits(_B.PROVIDER, transient=True, stall=True),
        _K.STALL: Traits(_B.PROVIDER, transient=True, stall=True, broke_off=True),
        _K.TRUNCATED: Traits(_B.PROVIDER, broke_off=True),
        _K.WRAPPED: Traits(_B.PROVIDER),
        _K.OUTRUN: Traits(_B.PROVIDER),  # not transient: slow once, not down
        _K.RATE_LIMITED: Traits(_B.CAPACITY),
        _K.QUOTA: Traits(_B.QUOTA),
        _K.CLIENT_ERROR: Traits(_B.MODEL),
        _K.REJECTED: Traits(_B.NOBODY),
        _K.KEY_REJECTED: Traits(_B.KEY),
        _K.CLIENT_CLOSED: Traits(_B.NOBODY),
        _K.SHUTDOWN: Traits(_B.NOBODY),
        _K.NO_CANDIDATE: Traits(_B.NOBODY),
        _K.INVALID_REQUEST: Traits(_B.NOBODY),
        _K.UNALIGNED: Traits(_B.NOBODY),
        _K.HEDGED: Traits(_B.NOBODY),
        _K.SKIPPED: Traits(_B.USER),
    }
)
"""Every kind's traits: the one classification of error kinds (see the module docstring)."""

if missing := [k.value for k in ErrorKind if k not in TRAITS]:  # pragma: no cover
    raise RuntimeError(f"error kinds without traits: {', '.join(missing)}")

CATEGORIES = MappingProxyType(
    {
        "rate_limited": (_K.RATE_LIMITED, _K.QUOTA),
        "auth": (_K.KEY_REJECTED,),
        "timeout": (_K.TIMEOUT, _K.STALL, _K.OUTRUN),
        "server": (_K.SERVER, _K.CONNECTION),
        "wrapped": (_K.WRAPPED,),
        "cut": (_K.TRUNCATED, _K.UNALIGNED),
        "client": (_K.CLIENT_ERROR, _K.REJECTED, _K.INVALID_REQUEST, _K.CLIENT_CLOSED),
    }
)
"""The categories the analytics count failed attempts in (store/analytics.py), in order, with
their kinds; every other kind is in `NOT_UPSTREAM`."""
NOT_UPSTREAM = (_K.SHUTDOWN, _K.SKIPPED, _K.HEDGED, _K.NO_CANDIDATE)
"""Endings that are no upstream's error, in no category: the gateway stopped, the user moved the
request on, a hedge's loser was closed, nothing was tried."""
_SORTED = {*NOT_UPSTREAM, *(kind for kinds in CATEGORIES.values() for kind in kinds)}
if unsorted := sorted(set(ErrorKind) - _SORTED):  # pragma: no cover
    raise RuntimeError(f"error kinds in no category: {', '.join(unsorted)}")


class UpstreamError(Exception):
    """One upstream attempt failed."""

    kind: ErrorKind = ErrorKind.SERVER

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        kind: ErrorKind | None = None,
        code: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.retry_after_s = retry_after_s
        if kind is not None:
            self.kind = kind

    @property
    def retryable(self) -> bool:
        """Whether another candidate may succeed where this one failed."""
        return True

    def describe(self) -> str:
        """Short reason for logs and the all-candidates-failed message."""
        status = f"{self.status} " if self.status else ""
        return f"{status}{self.kind}: {self.message}"


class RateLimited(UpstreamError):
    kind = ErrorKind.RATE_LIMITED


class Unavailable(UpstreamError):
    kind = ErrorKind.SERVER


class Stalled(UpstreamError):
    kind = ErrorKind.STALL


class WrappedError(UpstreamError):
    kind = ErrorKind.WRAPPED


class UpstreamClientError(UpstreamError):
    kind = ErrorKind.CLIENT_ERROR

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        kind: ErrorKind | None = None,
        code: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, status=status, kind=kind, code=code, retry_after_s=retry_after_s)
        if kind is not None:
            return
        if self.code == "context_length_exceeded":
            self.kind = ErrorKind.TRUNCATED  # a model with a larger window may take it
        elif self.status in (400, 413, 422):
            self.kind = ErrorKind.REJECTED
        elif self.status in (401, 403):
            self.kind = ErrorKind.KEY_REJECTED  # the key's fault: another key may be accepted

    @property
    def retryable(self) -> bool:
        # 400/422 mean the request itself is bad and every upstream would refuse it, except a
        # context-length refusal, which a model with a larger window may accept. 401/403/404 are
        # about this provider (a bad key, an unknown model id): another one may serve it.
        return self.kind != ErrorKind.REJECTED
