"""The errors a client sees when its request cannot be served, each recorded on its flow."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..domain.errors import ErrorKind, UpstreamError
from ..domain.flow import Flow
from .errors import APIError


def refused(flow: Flow, exc: UpstreamError) -> APIError:
    """A 4xx that every upstream would give: return the provider's reason, do not retry."""
    status = exc.status or 400
    flow.fail(status, exc.kind, exc.message)
    return APIError(status, exc.message, code=exc.code or "upstream_rejected")


def exhausted(flow: Flow, *, skipped: Sequence[str] = ()) -> APIError:
    """Every candidate failed; `skipped` says which providers were left out, and why."""
    failures = flow.failures
    kinds = {exc.kind for _, exc in failures}
    if kinds and kinds <= {ErrorKind.RATE_LIMITED, ErrorKind.QUOTA}:
        status, code = 429, "rate_limit_exceeded"
    elif kinds and all(kind.stall for kind in kinds):
        status, code = 504, "upstream_timeout"
    elif failures and all(e.code == "context_length_exceeded" for _, e in failures):
        # Every model said the conversation is too long for it: the client should shorten it
        # (Codex compacts on this code), not wait and retry.
        status, code = 400, "context_length_exceeded"
    elif kinds == {ErrorKind.KEY_REJECTED}:
        # Our keys, not the client's: never the upstream's 401, which would blame the client.
        status, code = 502, "upstream_keys_rejected"
    else:
        status, code = 502, "all_candidates_failed"
    tried = "; ".join(f"{model} ({exc.describe()})" for model, exc in failures)
    message = "; ".join([f"all {len(failures)} candidates failed: {tried}", *skipped])
    flow.fail(status, kinds.pop() if len(kinds) == 1 else "upstream_error", message)
    headers = {}
    waits = [e.retry_after_s for _, e in failures if e.retry_after_s is not None]
    if status == 429 and waits:
        headers["Retry-After"] = str(max(1, round(min(waits))))
    overloaded = bool(failures) and all(e.status in (503, 529) for _, e in failures)
    return APIError(
        status, message, type="upstream_error", code=code, headers=headers, overloaded=overloaded
    )


def at_quota(flow: Flow, pool: str, frees_in_s: float) -> APIError:
    """Every model the request could use is at its quota (`limits`) for longer than it may wait:
    a 429 with a Retry-After for when the first comes back. Nothing was sent upstream."""
    wait = max(1, math.ceil(frees_in_s))
    passed = "; ".join(flow.passed_over)
    message = f"every model of pool '{pool}' is at its quota; the first frees in {wait} s"
    message += f" ({passed})" if passed else ""
    flow.fail(429, ErrorKind.QUOTA, message)
    return APIError(
        429, message, type="rate_limit_error", code="quota_exceeded",
        headers={"Retry-After": str(wait)},
    )  # fmt: skip


def shut_down(flow: Flow) -> APIError:
    flow.attempt_interrupted(ErrorKind.SHUTDOWN)
    flow.fail(503, ErrorKind.SHUTDOWN, "the gateway shut down during the request")
    return APIError(503, "the gateway is shutting down", type="server_shutdown", code="shutdown")


def mid_stream_error(exc: UpstreamError, model: str) -> APIError:
    kind = "stream_timeout" if exc.kind.stall else "upstream_error"
    message = f"{model} failed after the stream started: {exc.describe()}"
    return APIError(502, message, type=kind, code=str(exc.kind))
