"""Which models to try for one request, in which order."""

from __future__ import annotations

from .catalog import Target
from .state import GatewayState


def plan_candidates(state: GatewayState, target: Target, *, max_attempts: int) -> list[str]:
    """Model keys to try in order: the client's named model first, then its pool's chain.

    Disabled models and providers without keys are left out, except a model the client named
    explicitly and which is enabled. The list is cut at `max_attempts`.
    """
    order: list[str] = []
    if target.preferred is not None and state.is_usable(target.preferred):
        order.append(target.preferred)
    for key in state.chain(target.pool):
        if key not in order and state.is_usable(key):
            order.append(key)
    return order[:max_attempts]
