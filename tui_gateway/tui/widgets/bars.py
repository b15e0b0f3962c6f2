"""Shared pieces of the panes: little bars drawn in text, and a table updated in place by row key.

The bars use only the foreground colour and a few ANSI names ("green", "yellow", "red"), which
Textual maps through the dark or light theme's palette, so they read on either background.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, cast

from rich.text import Text
from textual.reactive import var
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist

from ...domain.views import Snapshot
from ..host import AppHost, StateView
from .table import CachedCellsTable, same_cell

__all__ = [
    "KeyedTable",
    "compact",
    "countdown_bar",
    "fit",
    "interval_bar",
    "seconds",
    "sparkline",
]

_EIGHTHS = " ▏▎▍▌▋▊▉█"
_SPARKS = "▁▂▃▄▅▆▇█"


def fit(text: str, width: int) -> str:
    """`text` cut to `width` cells, ending with an ellipsis when something was cut."""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def compact(n: int) -> str:
    """A count in at most 4 cells: `9999`, then `12k`, `999k`, then `3M`.

    Counts go in fixed-width columns: a column that widens with its content makes the table,
    and so the whole screen, lay itself out again.
    """
    if n < 10_000:
        return str(n)
    if n < 1_000_000:
        return f"{n // 1000}k"
    return f"{n // 1_000_000}M"


def seconds(s: float) -> str:
    """A short countdown: `42s` (rounded up, up to 99), then whole `3m` or `2h` (rounded down)."""
    if s <= 99:
        return f"{math.ceil(max(0.0, s))}s"
    if s < 3600:
        return f"{s // 60:.0f}m"
    return f"{s // 3600:.0f}h"


def countdown_bar(remaining: float, duration: float, *, width: int = 6) -> Text:
    """A bar that empties as a countdown runs out, in eighths of a cell, then the seconds left."""
    share = 0.0 if duration <= 0 else max(0.0, min(1.0, remaining / duration))
    eighths = round(share * width * 8)
    full, part = divmod(eighths, 8)
    bar = "█" * full + (_EIGHTHS[part] if part else "")
    style = "red" if share > 0.66 else "yellow" if share > 0.33 else "green"
    text = Text(bar.ljust(width), style=style)
    text.append(f" {seconds(remaining)}")
    return text


def interval_bar(mean: float, low: float, high: float, *, width: int = 10) -> Text:
    """Success probability on [0, 1] in `width` cells: the interval shaded, the mean marked.

    A cell is shaded when it overlaps [low, high]; the mean's cell is a full block coloured by
    how good the mean is (green from 0.8, yellow from 0.5, red below).
    """
    mark = min(width - 1, max(0, int(mean * width)))
    colour = "green" if mean >= 0.8 else "yellow" if mean >= 0.5 else "red"
    text = Text()
    for cell in range(width):
        left, right = cell / width, (cell + 1) / width
        if cell == mark:
            text.append("█", style=colour)
        elif right > low and left < high:
            text.append("▒", style=colour)
        else:
            text.append("·", style="dim")
    return text


def sparkline(values: Sequence[float], *, width: int = 8) -> Text:
    """The last `width` values as block heights, scaled between their min and max."""
    values = list(values)[-width:]
    if not values:
        return Text("")
    low, high = min(values), max(values)
    span = high - low
    top = len(_SPARKS) - 1
    return Text("".join(_SPARKS[round((v - low) / span * top) if span else 0] for v in values))


Column = tuple[str, str, int | None]
"""(key, label, width); width None grows to fit the content (put such a column last). A column
that grows lays the whole screen out again each time it does: give columns that change under
load a fixed width."""


class KeyedTable(CachedCellsTable[Any]):
    """A row-cursor table whose rows are keyed and synced in place from each snapshot.

    Subclasses list `COLUMNS` and call `sync(rows)` from `show`: rows that vanished are removed,
    new ones appended, changed cells updated, and the order fixed by a sort; the cursor stays on
    the same key (or, when that row went, at the same height).
    """

    DEFAULT_CSS = """
    KeyedTable {
        height: 1fr;
        border: round $secondary;
        border-title-color: $secondary;
        &:focus {
            border: round $primary;
            border-title-color: $primary;
        }
    }
    """

    COLUMNS: ClassVar[Sequence[Column]] = ()
    TITLE: ClassVar[str] = ""

    selected: var[str | None] = var(None)
    """Key of the row under the cursor; the footer greys out keys that need one."""

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, name=name, id=id)
        self.border_title = self.TITLE
        self._shown: dict[str, tuple[Any, ...]] = {}
        self._layout: Sequence[Column] = self.COLUMNS
        """The columns shown now: `COLUMNS`, unless the pane switched to another view."""

    @property
    def gateway_state(self) -> StateView:
        """The app's gateway state: actions call its verbs; panes read its snapshots."""
        return cast(AppHost, self.app).state

    def on_mount(self) -> None:
        self._add_columns()

    def _add_columns(self) -> None:
        if not self.columns:
            for key, label, width in self._layout:
                self.add_column(label, key=key, width=width)

    def use_columns(self, columns: Sequence[Column]) -> None:
        """Show other columns (another view of the same rows); the next `sync` fills them."""
        if columns == self._layout:
            return
        self.clear(columns=True)
        self._shown.clear()
        self._layout = columns
        self._add_columns()

    def watch_selected(self) -> None:
        # Only the focused pane's keys are in the footer (a focus change refreshes them), and a
        # refresh makes the footer compose itself again: rows come and go under the cursor of
        # an unfocused pane under load (cooldowns, sessions), and each change laid out the screen.
        if self.has_focus:
            self.refresh_bindings()

    def cursor_key(self) -> str | None:
        """The key of the row under the cursor, or None when the table is empty."""
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except CellDoesNotExist:
            return None
        return key

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.selected = self.cursor_key()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.needs_row() and self.cursor_key() is None:
            return None  # shown greyed out: nothing to act on
        return True

    def needs_row(self) -> Iterable[str]:
        """Names of this pane's actions that act on the row under the cursor."""
        return ()

    def show(self, snapshot: Snapshot) -> None:
        """Update in place from a snapshot (the app calls this ~10 times/s)."""
        raise NotImplementedError

    def refresh_now(self) -> None:
        """Repaint at once from a fresh snapshot (after a key changed the state)."""
        self.show(self.gateway_state.snapshot(intervals=False))

    def sync(self, rows: Iterable[tuple[str, Sequence[Any]]]) -> None:
        """Make the table show exactly `rows` (key, cells), in that order, touching only changes.

        Pass cells as `Text` (or plain values): a `str` would be read as Rich markup.
        """
        self._add_columns()
        wanted = dict(rows)
        selected, cursor_row = self.cursor_key(), self.cursor_row
        for row_key in [k for k in self.rows if k.value not in wanted]:
            self.remove_row(row_key)
            self._shown.pop(cast(str, row_key.value), None)
        columns = [(key, width is None) for key, _, width in self._layout]
        for key, cells in wanted.items():
            cells = tuple(cells)
            old = self._shown.get(key)
            if old is None:
                # A fresh first cell per row: `_reorder` tells rows apart by its identity.
                self.add_row(_own(cells[0]), *cells[1:], key=key)
            elif old is not cells and any(
                not same_cell(a, b) for a, b in zip(old, cells, strict=True)
            ):  # a pane may hand back the very cells it drew last time: nothing changed
                for (column, grows), before, after in zip(columns, old, cells, strict=True):
                    if not same_cell(before, after):
                        value = _own(after) if column == columns[0][0] else after
                        self.update_cell(key, column, value, update_width=grows)
            self._shown[key] = cells
        order = list(wanted)
        if [row.key.value for row in self.ordered_rows] != order:
            self._reorder(order)
        self._place_cursor(selected, cursor_row)
        self.set_class(not wanted, "-empty")

    def _reorder(self, order: list[str]) -> None:
        # `sort` hands the key function each row's cells; the first cell object is unique per row.
        rank = {id(self.get_row(key)[0]): n for n, key in enumerate(order)}
        self.sort(key=lambda cells: rank[id(cells[0])])

    def _place_cursor(self, selected: str | None, cursor_row: int) -> None:
        if not self.row_count:
            self.selected = None
            return
        if selected is not None and selected in self._shown:
            row = self.get_row_index(selected)
        else:
            row = min(cursor_row, self.row_count - 1)
        if row != self.cursor_row:
            self.move_cursor(row=row, animate=False)
        self.selected = self.cursor_key()


def _own(cell: Any) -> Text:
    """A new `Text` object for a row's first cell (never shared with another row)."""
    return cell.copy() if isinstance(cell, Text) else Text(str(cell))
