"""The posteriors pane: what routing believes about each model's success rate and speed."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import ClassVar

from rich.text import Text

from ...config import POOLS
from ...domain.beta import central_interval
from ...domain.views import FlowView, PosteriorView, Snapshot
from .bars import Column, KeyedTable, compact, fit, interval_bar, sparkline

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
        ("raw", "s/f", 9),
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
        is computed again only when its posterior moved, and only while its row is in view."""
        self._rows: dict[str, tuple[PosteriorView, tuple[float, ...], tuple[Text, ...], bool]] = {}
        """Model -> (view, trend, cells, whether drawn with its own interval): a row whose
        posterior and trend did not change is not drawn again, unless it comes into view with
        an interval left from before."""

    def show(self, snapshot: Snapshot) -> None:
        self._note_latencies(snapshot.recent)
        order = sorted(snapshot.posteriors.values(), key=lambda p: (_pool_rank(p.pool), p.position))
        window = self._window()
        self.sync((p.model, self._row(p, index in window)) for index, p in enumerate(order))
        for model in self._rows.keys() - snapshot.posteriors.keys():
            del self._rows[model]
            self._intervals.pop(model, None)

    def _window(self) -> range:
        """Rows worth an up-to-date interval: those in view and a page either side.

        Before the first layout the pane has no height yet; the terminal's bounds it.
        """
        page = self.scrollable_content_region.height or self.app.size.height
        top = round(self.scroll_y)
        return range(max(0, top - page), top + 2 * page)

    def _row(self, p: PosteriorView, in_view: bool) -> tuple[Text, ...]:
        trend = tuple(self._ttfb.get(p.model, ()))
        drawn = self._rows.get(p.model)
        if drawn is not None:
            view, drawn_trend, cells, exact = drawn
            if view == p and drawn_trend == trend and (exact or not in_view):
                return cells
        interval, exact = self._interval(p, compute=in_view)
        cells = self._cells(p, interval, trend)
        self._rows[p.model] = (p, trend, cells, exact)
        return cells

    def _note_latencies(self, recent: Iterable[FlowView]) -> None:
        counted: set[str] = set()
        for request in recent:
            counted.add(request.id)
            model, ttfb = request.model, request.ttfb_ms
            # A whole reply's first byte is its whole latency: only streams show time to first byte.
            if (
                request.id in self._counted
                or request.error_kind
                or ttfb is None
                or not request.stream
            ):
                continue
            if model is not None:
                self._ttfb.setdefault(model, deque(maxlen=HISTORY)).append(ttfb)
        self._counted = counted

    def _interval(self, p: PosteriorView, *, compute: bool) -> tuple[tuple[float, float], bool]:
        """The 90% interval to draw, and whether it is `p`'s own (not one left from before).

        Out of view (`compute=False`) a row keeps the interval it last had, or only its mean
        before it ever had one; it gets its own once it comes into view.
        """
        if p.interval is not None:
            return p.interval, True
        known = self._intervals.get(p.model)
        if known is not None and known[0] == p.alpha and known[1] == p.beta:
            return known[2], True
        if not compute:
            return (p.mean, p.mean) if known is None else known[2], False
        interval = central_interval(p.alpha, p.beta, 0.9)
        self._intervals[p.model] = (p.alpha, p.beta, interval)
        return interval, True

    def _cells(
        self, p: PosteriorView, interval: tuple[float, float], trend: tuple[float, ...]
    ) -> tuple[Text, ...]:
        seen = p.seen
        low, high = interval
        model = Text(fit(p.model, _MODEL_WIDTH), style="" if seen else "dim")
        mean = Text(f"{round(p.mean * 100):d}", justify="right", style="" if seen else "dim")
        weighted = f"{_count(p.weighted_successes)}/{_count(p.weighted_failures)}"
        return (
            Text(f"{p.pool[0]}{p.position + 1}", style="dim"),
            model,
            mean,
            interval_bar(p.mean, low, high, width=10),
            Text(_ms(p.ttfb_ms), justify="right"),
            sparkline(trend, width=HISTORY),
            Text(weighted, style="dim"),
            Text(f"{compact(p.successes)}/{compact(p.failures)}", style="dim"),
        )


def _pool_rank(pool: str) -> int:
    return POOLS.index(pool) if pool in POOLS else len(POOLS)


def _count(x: float) -> str:
    return f"{x:.1f}" if x < 100 else compact(round(x))


def _ms(ms: float | None) -> str:
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms:.0f}ms"
    return f"{ms / 1000:.1f}s" if ms < 10_000 else f"{ms / 1000:.0f}s"
