"""Rescuing a stuck request from the screen: which one is quietest, and what to tell the user.

Pure functions over `FlowView`s, shared by the requests pane's keys, the app's `!`, the command
palette and the detail screen, so each says the same thing about the same outcome.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..domain.views import FlowView

__all__ = ["ban_message", "quietest", "silence", "skip_message"]


def silence(request: FlowView, now: float) -> float:
    """Seconds since the upstream last sent anything (since the start, before the first byte)."""
    last = request.last_chunk_at
    return now - (request.started if last is None else last)


def quietest(requests: Iterable[FlowView], now: float) -> FlowView | None:
    """The request in flight that has been silent longest (the oldest of equals), or None."""
    best: FlowView | None = None
    best_key = (0.0, 0.0)
    for request in requests:
        if request.finished_at is not None:
            continue
        key = (silence(request, now), -request.started)
        if best is None or key > best_key:
            best, best_key = request, key
    return best


def skip_message(request_id: str, moved: bool | None, model: str | None) -> tuple[str, bool]:
    """What `GatewayState.skip_request` did, in words, and whether that is a warning.

    Args:
        request_id: The request asked to move on.
        moved: What `skip_request` returned: True moved on, False between attempts (nothing
            to cut now), None not in flight (it finished in the meantime).
        model: The model its attempt was on, as last seen on the screen.
    """
    if moved:
        return f"moved {request_id} on from {model or 'its model'}", False
    if moved is False:
        return f"{request_id} is between attempts: nothing to cut right now", True
    return f"{request_id} already finished", True


def ban_message(what: str, moving: int) -> str:
    """The note after a ban from the requests pane; `moving`: requests in flight on it."""
    if not moving:
        return f"banned {what}"
    if moving == 1:
        return f"banned {what}: its request in flight moves on"
    return f"banned {what}: its {moving} requests in flight move on"
