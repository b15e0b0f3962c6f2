"""The posteriors pane, headless: each model's odds, and (`v`) its learned stream timers."""

from __future__ import annotations

import random

import msgspec
import pytest
from rich.text import Text

from tests.factories import FakeClock, make_settings, model
from tests.panes import PaneApp, column, make_state, rows
from tui_gateway.domain.beta import central_interval
from tui_gateway.domain.posteriors import Outcome
from tui_gateway.domain.state import GatewayState
from tui_gateway.domain.views import FlowView
from tui_gateway.tui.widgets import posteriors as posteriors_pane
from tui_gateway.tui.widgets.bars import interval_bar
from tui_gateway.tui.widgets.posteriors import PosteriorsPane


async def test_posteriors_pane_shows_mean_interval_counts_and_latency_by_pool() -> None:
    state = make_state()
    now = state.clock()
    for _ in range(9):
        state.book.record(Outcome("a/2", now, True, ttfb_ms=400.0))
    state.book.record(Outcome("a/2", now, False))
    state.move_in_pool("a/2", -1)
    pane = PosteriorsPane()
    async with PaneApp(state, pane).run_test() as pilot:
        await pilot.pause()
        assert column(pane, "model") == ["b/3", "a/2", "a/1", "b/4"]
        assert column(pane, "position") == ["f1", "b1", "b2", "s1"]
        [a2] = [r for r in rows(pane) if r[1] == "a/2"]
        assert a2[2:] == ["79", "·····▒▒█▒▒", "400ms", "", "9.0/1.0", "9/1"]
        assert column(pane, "ttfb")[0] == "—"
        state.move_in_pool("a/1", -1)
        await pilot.pause(0.1)
        assert column(pane, "model") == ["b/3", "a/1", "a/2", "b/4"]


async def test_posteriors_trend_follows_the_latency_of_finished_requests() -> None:
    state = make_state()
    pane = PosteriorsPane()
    async with PaneApp(state, pane, tick=False).run_test() as pilot:
        await pilot.pause()
        snapshot = state.snapshot()

        def finished(n: int, ttfb: float | None, error_kind: str | None = None) -> FlowView:
            return FlowView(
                id=f"r{n}", session="s", requested_model="auto", model="a/1", provider="a",
                attempt=1, state="done", stream=True, dialect="chat", started=0.0,
                ttfb_ms=ttfb, chunks=1, heartbeats=0, last_chunk_at=None, failures=(),
                finished_at=1.0, status=200, error_kind=error_kind,
            )  # fmt: skip

        for n, ttfb in enumerate([100.0, 200.0, 300.0, None]):
            snapshot = msgspec.structs.replace(
                snapshot, recent=(*snapshot.recent, finished(n, ttfb))
            )
            pane.show(snapshot)
            pane.show(snapshot)  # the same requests again count once
        failed = finished(9, 900.0, "5xx")
        pane.show(msgspec.structs.replace(snapshot, recent=(*snapshot.recent, failed)))
        assert str(pane.get_row("a/1")[5]) == "▁▅█"


async def test_posteriors_pane_computes_intervals_for_rows_in_view_when_their_counts_move(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 10: a 90% interval costs 50-500 µs, and every model's was computed on every repaint."""
    models = [model("a", f"m{n:02d}") for n in range(60)]
    settings = make_settings(providers=[{"name": "a", "kind": "simulated"}], models=models)
    state = GatewayState(settings, clock=FakeClock(), rng=random.Random(1))
    asked: list[tuple[float, float]] = []

    def counted(a: float, b: float, mass: float) -> tuple[float, float]:
        asked.append((a, b))
        return central_interval(a, b, mass)

    monkeypatch.setattr(posteriors_pane, "central_interval", counted)

    def drawn(key: str) -> str:
        p = state.snapshot().posteriors[key]  # with its interval, computed by the domain
        assert p.interval is not None
        assert str(pane.get_row(key)[3]) == str(interval_bar(p.mean, *p.interval))
        return key

    pane = PosteriorsPane()
    async with PaneApp(state, pane, tick=False).run_test(size=(100, 14)) as pilot:
        await pilot.pause()
        pane.show(state.snapshot(intervals=False))
        assert 0 < len(asked) < 60
        drawn("a/m00")
        asked.clear()
        pane.show(state.snapshot(intervals=False))
        assert asked == []  # nothing moved
        for key in ("a/m00", "a/m59"):  # in view, then far below it
            for success in (True, True, False):
                state.book.record(Outcome(key, state.clock(), success))
        pane.show(state.snapshot(intervals=False))
        first = state.book.posterior("a/m00")
        assert asked == [(first.alpha, first.beta)] and drawn("a/m00")
        pane.move_cursor(row=59, animate=False)
        await pilot.pause()
        pane.show(state.snapshot(intervals=False))
        last = state.book.posterior("a/m59")
        assert (last.alpha, last.beta) in asked and drawn("a/m59")


def dim_parts(text: Text) -> list[str]:
    """The parts of a cell drawn dim: all of it (its base style), then each dim span."""
    parts = [text.plain] if str(text.style) == "dim" else []
    return parts + [text.plain[s.start : s.end] for s in text.spans if str(s.style) == "dim"]


async def test_v_shows_each_models_learned_stream_timers_and_switches_back() -> None:
    """Issue 11: per model, `usual→limit` for its first byte and its longest gap; a model
    without history waits the configured timeouts (dim), and `v` brings the odds back."""
    state = make_state()
    for _ in range(10):
        state.timers.observe("a/1", first_byte_s=0.8, max_gap_s=0.05)
    state.timers.observe("a/2", first_byte_s=0.3, max_gap_s=None)  # too few to count yet
    pane = PosteriorsPane()
    async with PaneApp(state, pane).run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert pane.border_subtitle == "v timers"
        pane.focus()
        await pilot.press("v")
        assert pane.timers_view and pane.border_subtitle == "v odds"
        await pilot.pause(0.1)
        assert [str(c.label) for c in pane.ordered_columns] == [
            "#",
            "model",
            "1st byte",
            "gap",
            "n",
        ]
        assert rows(pane) == [
            ["f1", "b/3", "—→10", "—→20", "—"],
            ["b1", "a/1", "0.8→2.4", "0.05→2", "10/10"],
            ["b2", "a/2", "—→10", "—→20", "1/0"],
            ["s1", "b/4", "—→10", "—→20", "—"],
        ]
        [_, _, first_byte, gap, _] = pane.get_row("a/1")
        assert dim_parts(first_byte) == [] == dim_parts(gap)  # learned, known: nothing dim
        [_, _, first_byte, _, _] = pane.get_row("b/3")
        assert dim_parts(first_byte) == ["—→10", "→10"]  # the whole cell, and its limit
        for _ in range(10):  # new history shows on the next repaint
            state.timers.observe("b/3", first_byte_s=4.0, max_gap_s=9.0)
        await pilot.pause(0.1)
        assert rows(pane)[0] == ["f1", "b/3", "4→10", "9→20", "10/10"]
        await pilot.press("v")
        await pilot.pause(0.1)
        assert not pane.timers_view
        assert column(pane, "mean") == ["60", "60", "60", "60"]  # the prior
        assert pane.get_column_index("interval") == 3


def test_the_timers_columns_have_fixed_widths() -> None:
    """A column that widens with its content lays the whole screen out again each time."""
    assert [key for key, _, width in PosteriorsPane.TIMER_COLUMNS if width is None] == []


def test_timer_seconds_fit_in_four_cells() -> None:
    shown = [posteriors_pane._secs(s) for s in (0.001, 0.036, 0.8, 0.996, 2.4, 9.96, 12.4, 300)]
    assert shown == ["0", "0.04", "0.8", "1", "2.4", "10", "12", "300"]
