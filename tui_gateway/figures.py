"""How the log's figures (store/analytics.py) read: the same in `tui-gateway stats` and on the
analytics screen, so a number never reads two ways."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .store.analytics import Usage

__all__ = ["NONE", "latency", "row_name", "speed"]

NONE = "–"
"""A figure there is nothing to compute from (no request succeeded)."""


def latency(ms: int | None) -> str:
    """`850 ms`, then `12.3 s` from 10 s on."""
    if ms is None:
        return NONE
    return f"{ms} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


def speed(tokens_per_s: float | None) -> str:
    return NONE if tokens_per_s is None else f"{tokens_per_s:.0f}"


def row_name(row: Usage, *, by_provider: bool) -> str:
    """The model (or provider) a row is about; requests refused before routing have none."""
    return (row.provider if by_provider else row.model) or "(no model)"
