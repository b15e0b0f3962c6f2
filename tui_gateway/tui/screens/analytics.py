"""What the log knows, over a range: requests and failures over time, errors per provider, and a
table per model or per provider (latency, first byte, tokens, speed).

The figures come from `GatewayView.analytics` (store/analytics.py's SQL aggregations, run in
aiosqlite's thread; attached, `GET /gateway/stats`), in a worker, so the screen never waits on
the log. The charts are textual-plotext's: Textualize's own widget over plotext, pure Python
(textual-plot would bring numpy along for two small charts). This module is imported when the
screen first opens, so a screen that never opens it never loads plotext.

| Key          | Action                                     | Binding id            |
| ------------ | ------------------------------------------ | --------------------- |
| `1` `2` `3` `4` | last hour, 24 hours, 7 days, 30 days    | `analytics.range`     |
| `v`          | the table per model or per provider        | `analytics.providers` |
| `r`          | ask the log again                          | `analytics.refresh`   |
| `escape` `q` | back to the main screen                    | `analytics.back`      |
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar, cast

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual_plotext import PlotextPlot

from ...figures import latency, row_name, speed
from ...store.analytics import CATEGORIES, Analytics, Usage
from ..host import AppHost
from ..widgets.bars import compact

__all__ = ["AnalyticsScreen", "summary_text", "usage_cells"]

RANGE_KEYS = {"1": "1h", "2": "24h", "3": "7d", "4": "30d"}
_RANGE_WORDS = {
    "1h": "last hour", "24h": "last 24 hours", "7d": "last 7 days", "30d": "last 30 days",
}  # fmt: skip
_CATEGORY_COLOURS = {
    "rate_limited": "yellow", "auth": "magenta", "timeout": "orange", "server": "red",
    "wrapped": "cyan", "cut": "blue", "client": "gray",
}  # fmt: skip
USAGE_COLUMNS: list[tuple[str, int | None]] = [
    ("model", None), ("req", 6), ("ok %", 6), ("p50", 7), ("p95", 7), ("1st byte", 8),
    ("in", 6), ("out", 6), ("tok/s", 6),
]  # fmt: skip


def summary_text(figures: Analytics) -> Text:
    """`1,234 requests · 96.1% ok · 41 fallbacks · 3 continuations` over the range."""
    words = _RANGE_WORDS.get(figures.range, figures.range)
    text = Text.assemble((words, "bold"), "  ")
    if not figures.requests:
        return text.append("no requests in the log for this range", "dim")
    rate = figures.succeeded / figures.requests
    style = "green" if rate >= 0.95 else "yellow" if rate >= 0.8 else "red"
    text.append(f"{figures.requests:,} requests · ").append(f"{rate:.1%} ok", style)
    return text.append(
        f" · {figures.failed:,} failed · {figures.fallbacks:,} with a fallback"
        f" · {figures.continuations:,} continued"
    )


def usage_cells(row: Usage, *, by_provider: bool) -> tuple[Text, ...]:
    """One table row: the model (or provider), then its figures, right-aligned."""
    name = row_name(row, by_provider=by_provider)
    rate = row.success_rate
    rate_style = "green" if rate >= 0.95 else "yellow" if rate >= 0.8 else "red"
    figures = (
        (compact(row.requests), ""),
        (f"{rate * 100:.1f}", rate_style),
        (latency(row.latency_p50_ms), ""),
        (latency(row.latency_p95_ms), ""),
        (latency(row.ttfb_p50_ms), ""),
        (compact(row.tokens_in), "dim"),
        (compact(row.tokens_out), "dim"),
        (speed(row.tokens_per_s), ""),
    )
    return (Text(name), *(Text(value, style=style, justify="right") for value, style in figures))


def _time_label(at: float, range_name: str) -> str:
    if range_name in ("1h", "24h"):
        return time.strftime("%H:%M", time.localtime(at))
    return time.strftime("%a %d" if range_name == "7d" else "%d %b", time.localtime(at))


class AnalyticsScreen(Screen[None]):
    """The request log's figures over a range chosen with one key."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "app.pop_screen", "Back", id="analytics.back"),
        Binding("1", "range('1h')", "1h", id="analytics.range_1h"),
        Binding("2", "range('24h')", "24h", id="analytics.range_24h"),
        Binding("3", "range('7d')", "7d", id="analytics.range_7d"),
        Binding("4", "range('30d')", "30d", id="analytics.range_30d"),
        Binding("v", "toggle_providers", "Models/providers", id="analytics.providers"),
        Binding("r", "refresh", "Refresh", id="analytics.refresh"),
    ]
    DEFAULT_CSS = """
    AnalyticsScreen #summary { height: 1; padding: 0 1; }
    AnalyticsScreen #charts { height: 11; }
    AnalyticsScreen #over-time { width: 3fr; }
    AnalyticsScreen #errors { width: 2fr; }
    AnalyticsScreen DataTable { height: 1fr; border: round $secondary; }
    """

    def __init__(self, range_name: str = "24h", *, figures: Analytics | None = None) -> None:
        super().__init__()
        self.range_name = range_name
        self.by_provider = False
        self.figures = figures
        """The figures shown; given up front (a test), they are shown without asking the log."""

    @property
    def host(self) -> AppHost:
        return cast(AppHost, self.app)

    def compose(self) -> ComposeResult:
        yield Static(id="summary")
        with Horizontal(id="charts"):
            yield PlotextPlot(id="over-time")
            yield PlotextPlot(id="errors")
        yield DataTable(id="usage", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        if self.figures is not None:
            self._show(self.figures)
        else:
            self.action_refresh()

    def action_range(self, range_name: str) -> None:
        if range_name != self.range_name or self.figures is None:
            self.range_name = range_name
            self.action_refresh()

    def action_toggle_providers(self) -> None:
        self.by_provider = not self.by_provider
        if self.figures is not None:
            self._fill_table(self.figures)

    def action_refresh(self) -> None:
        self.query_one("#summary", Static).update(
            Text(f"{_RANGE_WORDS[self.range_name]}  asking the log…", style="dim")
        )
        self._load(self.range_name)

    @work(exclusive=True, group="analytics", exit_on_error=False)
    async def _load(self, range_name: str) -> None:
        try:
            figures = await self.host.gateway.analytics(range_name)
        except Exception as exc:  # the log is unreadable, or the attached gateway went away
            self.query_one("#summary", Static).update(
                Text(f"{_RANGE_WORDS[range_name]}  could not read the log: {exc}", style="red")
            )
            return
        if range_name == self.range_name:  # a newer range was asked for meanwhile: it wins
            self._show(figures)

    def _show(self, figures: Analytics) -> None:
        self.figures = figures
        self.query_one("#summary", Static).update(summary_text(figures))
        self._plot_over_time(figures)
        self._plot_errors(figures)
        self._fill_table(figures)

    def _plot_over_time(self, figures: Analytics) -> None:
        widget = self.query_one("#over-time", PlotextPlot)
        plt = widget.plt
        plt.clear_figure()
        points = figures.series
        x = list(range(len(points)))
        plt.plot(x, [p.requests for p in points], label="requests", color="green", marker="braille")
        plt.plot(x, [p.failed for p in points], label="failed", color="red", marker="braille")
        ticks = x[:: max(1, len(x) // 4)]
        plt.xticks(
            [float(i) for i in ticks], [_time_label(points[i].start, figures.range) for i in ticks]
        )
        step = figures.bucket_s / 60
        plt.title(f"requests per {step:.0f} min" if step < 120 else f"requests per {step / 60:g} h")
        widget.refresh()

    def _plot_errors(self, figures: Analytics) -> None:
        widget = self.query_one("#errors", PlotextPlot)
        plt = widget.plt
        plt.clear_figure()
        rows = figures.errors[:6]
        if not rows:
            plt.title("no failed attempts")
            widget.refresh()
            return
        names = [r.provider for r in rows]
        shown = [c for c in CATEGORIES if any(r.counts.get(c) for r in rows)]
        # textual-plotext's stub types `stacked_bar` as one label and one colour; plotext itself
        # takes one of each per stack (`labels`, `color` lists), which is what a legend needs.
        cast(Any, plt).stacked_bar(
            names,
            [[r.counts.get(c, 0) for r in rows] for c in shown],
            labels=shown,
            color=[_CATEGORY_COLOURS[c] for c in shown],
            orientation="horizontal",
            width=0.6,
        )
        plt.title("failed attempts by cause")
        widget.refresh()

    def _fill_table(self, figures: Analytics) -> None:
        table = self.query_one(DataTable)
        table.clear(columns=True)
        first = "provider" if self.by_provider else "model"
        for label, width in [(first, None), *USAGE_COLUMNS[1:]]:
            table.add_column(label, width=width)
        rows: Sequence[Usage] = figures.providers if self.by_provider else figures.models
        table.border_title = f"per {first} (v: per {'model' if self.by_provider else 'provider'})"
        for n, row in enumerate(rows):
            table.add_row(*usage_cells(row, by_provider=self.by_provider), key=str(n))
