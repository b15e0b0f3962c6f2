"""Helpers for the pane tests: a small state, an app of just the panes, and its rows as text."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import DataTable

from tests.factories import FakeClock, make_settings, model
from tui_gateway.domain.state import GatewayState
from tui_gateway.tui.widgets.bars import KeyedTable


def make_state() -> GatewayState:
    settings = make_settings(
        providers=[
            {
                "name": "a",
                "kind": "simulated",
                "protection": "provider-ban",
                "api_keys": ["k1", "k2"],
            },
            {"name": "b", "kind": "simulated"},
        ],
        models=[
            model("a", "1"),
            model("a", "2"),
            model("b", "3", pool="fast"),
            model("b", "4", pool="smart"),
        ],
    )
    return GatewayState(settings, clock=FakeClock(), rng=random.Random(1))


class PaneApp(App[None]):
    """Just the panes, repainted from the state's snapshot like the real app does."""

    def __init__(self, state: GatewayState, *panes: KeyedTable, tick: bool = True) -> None:
        super().__init__()
        self.state = state
        # What panes read of the config (the requests pane's and the timers' configured limits).
        self.gateway = SimpleNamespace(streaming=state.streaming)
        self.panes = panes
        self.tick = tick

    def compose(self) -> ComposeResult:
        yield from self.panes

    def on_mount(self) -> None:
        if self.tick:
            self.repaint()
            self.set_interval(0.05, self.repaint)

    def repaint(self) -> None:
        snapshot = self.state.snapshot()
        for pane in self.panes:
            pane.show(snapshot)


def rows(table: DataTable[Any]) -> list[list[str]]:
    """Each row's cells as the plain text the screen shows."""
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def column(table: DataTable[Any], key: str) -> list[str]:
    index = table.get_column_index(key)
    return [row[index] for row in rows(table)]


async def select(pilot: Pilot[None], pane: KeyedTable, key: str) -> None:
    pane.focus()
    pane.move_cursor(row=pane.get_row_index(key))
    await pilot.pause()
    assert pane.cursor_key() == key
