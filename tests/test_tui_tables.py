"""What a repaint costs the tables: cells drawn again only when they change, and no layout pass
for a count that grows or a load that ramps up (the screen's cost, issue 4)."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets import DataTable

from tests.factories import FakeClock, make_settings, model
from tui_gateway.domain.state import GatewayState
from tui_gateway.domain.views import FlowView, Snapshot
from tui_gateway.tui.widgets import CooldownsPane, PoolsPane, PosteriorsPane, SessionsPane
from tui_gateway.tui.widgets.bars import compact
from tui_gateway.tui.widgets.requests import MAX_ROWS, RequestsPane
from tui_gateway.tui.widgets.table import CachedCellsTable, same_cell

NOW = 1_000_000.0


class TableApp(App[None]):
    def __init__(self, table: DataTable[Any]) -> None:
        super().__init__()
        self.table = table
        settings = make_settings(providers=[{"name": "a", "kind": "simulated"}], models=[])
        self.gateway = SimpleNamespace(streaming=settings.streaming)  # what RequestsPane reads

    def compose(self) -> ComposeResult:
        yield self.table


def count_draws(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Every cell Textual's DataTable draws from now on, as (row, column)."""
    drawn: list[tuple[int, int]] = []
    draw = DataTable._render_cell

    def counted(self: DataTable[Any], row: int, column: int, *args: Any, **kw: Any) -> Any:
        drawn.append((row, column))
        return draw(self, row, column, *args, **kw)

    monkeypatch.setattr(DataTable, "_render_cell", counted)
    return drawn


class SmallTable(CachedCellsTable[Text]):
    """Three rows of three cells, `r0`..`r2` by columns `a`, `b`, `c`."""

    def on_mount(self) -> None:
        for name in "abc":
            self.add_column(name, key=name)
        for row in range(3):
            self.add_row(*(Text(f"{row}{col}") for col in "abc"), key=f"r{row}")


def small_table() -> SmallTable:
    return SmallTable(cursor_type="row")


async def test_a_repaint_draws_again_only_the_cells_that_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = small_table()
    async with TableApp(table).run_test() as pilot:
        await pilot.pause()
        drawn = count_draws(monkeypatch)
        table.update_cell("r2", "b", Text("new"))
        await pilot.pause()
        assert drawn == [(2, 1)]  # not the header, not the other eight cells
        assert str(table.get_cell("r2", "b")) == "new"


async def test_write_cells_writes_in_place_and_draws_just_those_cells(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = small_table()
    async with TableApp(table).run_test() as pilot:
        await pilot.pause()
        drawn = count_draws(monkeypatch)
        table.write_cells([(0, 2, Text("x")), (1, 0, Text("y"))])
        await pilot.pause()
        assert sorted(drawn) == [(0, 2), (1, 0)]
        assert [str(c) for c in table.get_row_at(0)] == ["0a", "0b", "x"]
        assert [str(c) for c in table.get_row_at(1)] == ["y", "1b", "1c"]


async def test_a_cell_restyled_with_the_same_text_is_drawn_again() -> None:
    """`Text.__eq__` ignores the style: the cache must not."""
    assert Text("stalling", style="bold yellow") == Text("stalling", style="bold red")
    assert not same_cell(Text("stalling", style="bold yellow"), Text("stalling", style="bold red"))
    table = small_table()
    async with TableApp(table).run_test() as pilot:
        await pilot.pause()
        before = table.render_line(2)  # the header is line 0, the cursor's row line 1
        table.update_cell("r1", "a", Text("1a", style="red"))
        await pilot.pause()
        assert table.render_line(2).text == before.text
        assert table.render_line(2) != before


async def test_after_a_theme_change_cells_look_as_in_a_fresh_table() -> None:
    table, fresh = small_table(), small_table()
    async with TableApp(table).run_test() as pilot:
        await pilot.pause()
        pilot.app.theme = "textual-light"
        await pilot.pause()
        redrawn = [table.render_line(y) for y in range(4)]
    async with TableApp(fresh).run_test() as pilot:
        pilot.app.theme = "textual-light"
        await pilot.pause()
        assert [fresh.render_line(y) for y in range(4)] == redrawn


# --- the requests pane: row slots ------------------------------------------------------------


STREAMING: dict[str, Any] = {
    "session": "sess01", "requested_model": "auto", "model": "a/1", "provider": "a",
    "attempt": 1, "state": "streaming", "stream": True, "dialect": "chat", "ttfb_ms": 5.0,
    "chunks": 3, "heartbeats": 0, "last_chunk_at": NOW, "failures": (), "finished_at": None,
    "status": None, "error_kind": None,
}  # fmt: skip


def flows(count: int) -> tuple[FlowView, ...]:
    """`count` requests streaming, oldest first."""
    return tuple(
        FlowView(id=f"req{n:04d}xx", started=NOW - 1 + n * 0.001, **STREAMING) for n in range(count)
    )


def snapshot(active: tuple[FlowView, ...]) -> Snapshot:
    state = GatewayState(
        make_settings(providers=[{"name": "a", "kind": "simulated"}], models=[model("a", "1")]),
        clock=FakeClock(NOW),
        rng=random.Random(1),
    )
    return msgspec.structs.replace(state.snapshot(), now=NOW, active=active, recent=())


async def test_requests_pane_has_a_row_a_request_within_a_screenful_and_all_slots_past_it() -> None:
    """Each new row count lays the screen out again: past a screenful (where blank slots are out
    of view) a ramping load takes all the slots at once, not one a frame."""
    pane = RequestsPane(clock=lambda: NOW)
    async with TableApp(pane).run_test(size=(100, 20)) as pilot:
        await pilot.pause()
        page = pane.scrollable_content_region.height - pane.header_height
        pane.show(snapshot(flows(3)))
        assert pane.row_count == 3
        pane.show(snapshot(flows(page)))
        assert pane.row_count == page
        pane.show(snapshot(flows(page + 1)))
        assert pane.row_count == MAX_ROWS
        assert pane.request_ids == [f"req{n:04d}xx" for n in range(page + 1)]
        assert all(str(cell) == "" for cell in pane.get_row_at(page + 1))  # a blank slot
        pane.show(snapshot(flows(3)))
        assert pane.row_count == MAX_ROWS  # kept while requests come and go
        await pilot.pause()


async def test_requests_pane_writes_only_the_cells_whose_text_or_style_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pane = RequestsPane(clock=lambda: NOW)
    async with TableApp(pane).run_test(size=(100, 20)) as pilot:
        await pilot.pause()
        [flow] = flows(1)
        pane.show(snapshot((flow,)))
        written: list[tuple[int, int, Text]] = []
        monkeypatch.setattr(pane, "write_cells", lambda cells: written.extend(cells))
        pane.show(snapshot((flow,)))
        assert written == []
        stalling = msgspec.structs.replace(flow, last_chunk_at=NOW - 11)  # past half of 20 s
        pane.show(snapshot((stalling,)))
        assert [(c, str(t), str(t.style)) for _, c, t in written] == [
            (6, "stalling", "bold yellow"),
            (10, "11.0s", "yellow"),
        ]
        written.clear()
        pane.show(snapshot((msgspec.structs.replace(flow, last_chunk_at=NOW - 17),)))
        assert [(c, str(t), str(t.style)) for _, c, t in written] == [
            (6, "stalling", "bold red"),  # the same text, another colour: written again
            (10, "17.0s", "bold red"),
        ]


async def test_a_request_the_cursor_was_put_on_stays_in_view_past_the_row_limit() -> None:
    """`!` may pick the oldest of hundreds in flight: its row is kept though only the newest
    `MAX_ROWS` are shown."""
    pane = RequestsPane(clock=lambda: NOW)
    async with TableApp(pane).run_test(size=(100, 20)) as pilot:
        await pilot.pause()
        many = flows(MAX_ROWS + 10)
        pane.show(snapshot(many))
        assert many[0].id not in pane.request_ids
        assert pane.select(many[0].id, snapshot(many))
        assert pane.request_ids[0] == many[0].id and len(pane.request_ids) == MAX_ROWS
        assert pane.request_id_at_cursor() == many[0].id and not pane.follow
        pane.show(snapshot(many[:1] + many[5:]))  # others go: it stays, under the cursor
        assert pane.request_id_at_cursor() == many[0].id


async def test_moving_the_cursor_by_hand_stops_following_the_newest() -> None:
    pane = RequestsPane(clock=lambda: NOW)
    async with TableApp(pane).run_test(size=(100, 20)) as pilot:
        pane.focus()
        pane.show(snapshot(flows(3)))
        await pilot.pause()
        assert pane.follow and pane.cursor_row == 2
        await pilot.press("up")
        assert not pane.follow and pane.request_id_at_cursor() == "req0001xx"
        pane.show(snapshot(flows(5)))  # newer requests: the cursor stays where the user put it
        assert pane.request_id_at_cursor() == "req0001xx"
        await pilot.press("f")
        pane.show(snapshot(flows(5)))
        assert pane.follow and pane.request_id_at_cursor() == "req0004xx"


# --- fixed widths ----------------------------------------------------------------------------


def test_counts_fit_in_four_cells() -> None:
    assert [compact(n) for n in (0, 9999, 10_000, 999_999, 1_000_000, 42_000_000)] == [
        "0", "9999", "10k", "999k", "1M", "42M",
    ]  # fmt: skip


@pytest.mark.parametrize("pane", [SessionsPane, PosteriorsPane, CooldownsPane])
def test_columns_that_change_under_load_have_fixed_widths(pane: type[Any]) -> None:
    """A column that widens with its content lays the whole screen out again each time."""
    assert [key for key, _, width in pane.COLUMNS if width is None] == []


def test_the_pools_pane_grows_only_its_model_column_which_changes_with_the_config() -> None:
    assert [key for key, _, width in PoolsPane.COLUMNS if width is None] == ["model"]


async def test_a_sessions_turn_count_growing_keeps_the_tables_size() -> None:
    state = GatewayState(
        make_settings(providers=[{"name": "a", "kind": "simulated"}], models=[model("a", "1")]),
        clock=FakeClock(NOW),
        rng=random.Random(1),
    )
    state.sessions.open("s1xxxxxxxx", mode="auto", preview="hi", now=NOW)
    pane = SessionsPane()
    async with TableApp(pane).run_test() as pilot:
        first = state.snapshot()
        pane.show(first)
        await pilot.pause()
        size = pane.virtual_size
        for turns in (9, 10, 999, 10_000, 123_456):
            [session] = first.sticky
            grown = msgspec.structs.replace(session, turns=turns)
            pane.show(msgspec.structs.replace(first, sticky=(grown,)))
            await pilot.pause()
            assert pane.virtual_size == size
        assert str(pane.get_row_at(0)[-1]) == "123k"


# --- the footer ------------------------------------------------------------------------------


async def test_only_the_focused_panes_selection_refreshes_the_footer_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The footer composes itself again on each refresh; it shows the focused pane's keys."""
    pools, cooldowns = PoolsPane(), CooldownsPane()

    class Two(App[None]):
        def compose(self) -> ComposeResult:
            yield pools
            yield cooldowns

    async with Two().run_test() as pilot:
        pools.focus()
        await pilot.pause()
        refreshed: list[str] = []
        monkeypatch.setattr(pools, "refresh_bindings", lambda: refreshed.append("pools"))
        monkeypatch.setattr(cooldowns, "refresh_bindings", lambda: refreshed.append("cool"))
        cooldowns.selected = "a/1\x00"
        pools.selected = "a/1"
        assert refreshed == ["pools"]


async def test_following_shows_every_request_when_fewer_are_left_than_a_screenful() -> None:
    """In flight drops from 40 to 3: the slots are kept, but the view must go back to the top,
    not keep the newest row at its top with the other two out of view above it."""
    pane = RequestsPane(clock=lambda: NOW)
    async with TableApp(pane).run_test(size=(100, 20)) as pilot:
        await pilot.pause()
        pane.show(snapshot(flows(40)))
        await pilot.pause()
        assert pane.scroll_y > 0  # the newest of 40 is at the bottom of the view
        pane.show(snapshot(flows(43)[40:]))
        await pilot.pause()
        assert pane.cursor_row == 2 and pane.scroll_y == 0
