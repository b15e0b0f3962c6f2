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
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    SERVER = "5xx"
    CONNECTION = "connection"
    TIMEOUT = "timeout"
    STALL = "stall"
    TRUNCATED = "truncated"
    WRAPPED = "wrapped"
    RATE_LIMITED = "rate_limited"
    CLIENT_ERROR = "client_error"
    REJECTED = "rejected"
    """The upstream refused the request itself (400/413/422): the client's mistake."""
    KEY_REJECTED = "key_rejected"
    """401/403: the provider refused the API key sent: the key's fault, not the model's."""
    CLIENT_CLOSED = "client_closed"
    SHUTDOWN = "shutdown"
    NO_CANDIDATE = "no_candidate"
    INVALID_REQUEST = "invalid_request"


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
