"""The posteriors pane: what routing believes about each model's success rate and speed."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import ClassVar

from rich.text import Text

from ...config import POOLS
from ...domain.beta import central_interval
from ...domain.views import FlowView, PosteriorView, Snapshot
from .bars import Column, KeyedTable, fit, interval_bar, sparkline

__all__ = ["PosteriorsPane"]

HISTORY = 8
"""Recent time-to-first-byte values kept per model for the sparkline."""
_MODEL_WIDTH = 16


class PosteriorsPane(KeyedTable):
    """Each model's Beta posterior, by pool then chain position. Read-only.

    `#` is the pool's initial and the chain position; `p%` the posterior mean; the bar spans
    [0, 1] with the 90 % interval shaded and the mean's cell solid; `ttfb` the recency-weighted
    mean time to first byte and `trend` the last few requests' own; `w s/f` the decayed
    successes/failures the posterior counts and `s/f` the raw ones inside the window.
    """

    COLUMNS: ClassVar[list[Column]] = [
        ("position", "#", 3),
        ("model", "model", _MODEL_WIDTH),
        ("mean", "p%", 3),
        ("interval", "90% range", 10),
        ("ttfb", "ttfb", 5),
        ("trend", "trend", HISTORY),
        ("weighted", "w s/f", 9),
        ("raw", "s/f", None),
    ]
    TITLE = "Posteriors"

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self._ttfb: dict[str, deque[float]] = {}
        """Model -> time to first byte of its latest successful requests, oldest first."""
        self._counted: set[str] = set()
        """Ids of the finished requests (in the last snapshot) already in `_ttfb`."""
        self._intervals: dict[str, tuple[float, float, tuple[float, float]]] = {}
        """Model -> (alpha, beta, 90% interval): a Beta quantile costs 50-500 µs, so each model's
        is computed again only when its posterior moved, not on every repaint."""

    def show(self, snapshot: Snapshot) -> None:
        self._note_latencies(snapshot.recent)
        order = sorted(snapshot.posteriors.values(), key=lambda p: (_pool_rank(p.pool), p.position))
        self.sync((p.model, self._cells(p)) for p in order)

    def _note_latencies(self, recent: Iterable[FlowView]) -> None:
        counted: set[str] = set()
        for request in recent:
            counted.add(request.id)
            model, ttfb = request.model, request.ttfb_ms
            if request.id in self._counted or request.error_kind or ttfb is None:
                continue
            if model is not None:
                self._ttfb.setdefault(model, deque(maxlen=HISTORY)).append(ttfb)
        self._counted = counted

    def _interval(self, p: PosteriorView) -> tuple[float, float]:
        if p.interval is not None:
            return p.interval
        known = self._intervals.get(p.model)
        if known is None or known[0] != p.alpha or known[1] != p.beta:
            known = self._intervals[p.model] = (
                p.alpha, p.beta, central_interval(p.alpha, p.beta, 0.9)
            )  # fmt: skip
        return known[2]

    def _cells(self, p: PosteriorView) -> tuple[Text, ...]:
        seen = p.seen
        low, high = self._interval(p)
        model = Text(fit(p.model, _MODEL_WIDTH), style="" if seen else "dim")
        mean = Text(f"{round(p.mean * 100):d}", justify="right", style="" if seen else "dim")
        weighted = f"{_count(p.weighted_successes)}/{_count(p.weighted_failures)}"
        return (
            Text(f"{p.pool[0]}{p.position + 1}", style="dim"),
            model,
            mean,
            interval_bar(p.mean, low, high, width=10),
            Text(_ms(p.ttfb_ms), justify="right"),
            sparkline(self._ttfb.get(p.model, ()), width=HISTORY),
            Text(weighted, style="dim"),
            Text(f"{p.successes}/{p.failures}", style="dim"),
        )


def _pool_rank(pool: str) -> int:
    return POOLS.index(pool) if pool in POOLS else len(POOLS)


def _count(x: float) -> str:
    return f"{x:.1f}" if x < 100 else f"{x:.0f}"


def _ms(ms: float | None) -> str:
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms:.0f}ms"
    return f"{ms / 1000:.1f}s" if ms < 10_000 else f"{ms / 1000:.0f}s"
