"""The posteriors pane: what routing believes about each model's success rate and speed, and
(`v` switches the view) how long the stream timers wait for each model."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import ClassVar, cast

from rich.text import Text
from textual.binding import Binding, BindingType

from ...config import POOLS
from ...domain.beta import central_interval
from ...domain.views import FlowView, PosteriorView, Snapshot, TimerView
from ..host import AppHost
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

    The timers view (`v`) shows, per model, `usual→limit` in seconds for its first byte and for
    its longest gap between chunks: the usual is what its recent successful streams took (their
    95th percentile), the limit the silence the gateway allows before it moves the request on
    (learned from the usual, dim while it is the configured timeout). `n` counts the samples.

    | Key | Binding id | Action |
    | :- | :- | :- |
    | v | `posteriors.timers` | Switch between the odds and the timers. |
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("v", "toggle_timers", "Timers/odds", id="posteriors.timers"),
    ]
    HELP = (
        "What routing believes of each model. `v` switches to its stream timers: `usual→limit`"
        " seconds for the first byte and for the longest gap between chunks (usual: its recent"
        " streams' 95th percentile; limit: the silence allowed before the request moves on,"
        " dim while it is the configured timeout)."
    )

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
    TIMER_COLUMNS: ClassVar[list[Column]] = [
        ("position", "#", 3),
        ("model", "model", _MODEL_WIDTH),
        ("first_byte", "1st byte", 9),
        ("gap", "gap", 9),
        ("samples", "n", 7),
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
        self.timers_view = False
        """Showing the stream timers (`TIMER_COLUMNS`) rather than the odds."""
        self._configured: tuple[float, float] | None = None
        """The configured (first byte, stall) timeouts: the limits of a model without history."""
        self.border_subtitle = "v timers"

    def show(self, snapshot: Snapshot) -> None:
        self._note_latencies(snapshot.recent)
        order = sorted(snapshot.posteriors.values(), key=lambda p: (_pool_rank(p.pool), p.position))
        if self.timers_view:
            timers = snapshot.timers
            self.sync((p.model, self._timer_cells(p, timers.get(p.model))) for p in order)
            return
        window = self._window()
        self.sync((p.model, self._row(p, index in window)) for index, p in enumerate(order))
        for model in self._rows.keys() - snapshot.posteriors.keys():
            del self._rows[model]
            self._intervals.pop(model, None)

    def action_toggle_timers(self) -> None:
        self.timers_view = not self.timers_view
        self.use_columns(self.TIMER_COLUMNS if self.timers_view else self.COLUMNS)
        self.border_subtitle = "v odds" if self.timers_view else "v timers"
        self.refresh_now()

    def _timer_cells(self, p: PosteriorView, timer: TimerView | None) -> tuple[Text, ...]:
        if self._configured is None:
            streaming = cast(AppHost, self.app).gateway.streaming
            self._configured = (streaming.first_byte_timeout_s, streaming.stall_timeout_s)
        first_byte_s, stall_s = self._configured
        samples = "—"
        if timer is not None:
            samples = f"{compact(timer.first_byte_samples)}/{compact(timer.gap_samples)}"
        return (
            Text(f"{p.pool[0]}{p.position + 1}", style="dim"),
            Text(fit(p.model, _MODEL_WIDTH), style="" if timer else "dim"),
            _usual_limit(
                None if timer is None else timer.usual_first_byte_s,
                first_byte_s if timer is None else timer.first_byte_timeout_s,
                learned=timer is not None and timer.usual_first_byte_s is not None,
            ),
            _usual_limit(
                None if timer is None else timer.usual_gap_s,
                stall_s if timer is None else timer.stall_timeout_s,
                learned=timer is not None and timer.usual_gap_s is not None,
            ),
            Text(samples, style="dim", justify="right"),
        )

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


def _usual_limit(usual: float | None, limit: float, *, learned: bool) -> Text:
    """`0.8→2.4`: the usual seconds (`—` unknown), then the limit (dim if configured)."""
    text = Text("—" if usual is None else _secs(usual), style="" if usual is not None else "dim")
    text.append(f"→{_secs(limit)}", style="" if learned else "dim")
    return text


def _secs(s: float) -> str:
    """Seconds in at most 4 cells: `0.05`, `0.8`, `2.4`, then whole ones: `12`, `300`."""
    if s < 0.995:
        return f"{s:.2f}".rstrip("0").rstrip(".") or "0"
    if s < 9.95:
        return f"{s:.2g}"
    return f"{s:.0f}"


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
