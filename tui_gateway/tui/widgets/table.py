"""A DataTable that draws again only the cells whose content changed.

Textual's `DataTable` keys every render cache (cells, rows, lines) on one table-wide update
counter, so a single `update_cell` sends every visible cell through Rich again on the next
frame: under load the requests pane rewrote a cell or two a row but paid for all eleven, and
drawing table cells was a quarter of the TUI process's time. This table keeps drawings keyed by
the cell's position and what it shows; a cell whose content, width and style were drawn there
before is not drawn again.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any, TypeVar

from rich.style import Style
from rich.text import Text
from textual._types import SegmentLines
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist

__all__ = ["CachedCellsTable", "cell_key", "same_cell"]

CellT = TypeVar("CellT")

_CellKey = tuple[Hashable, ...]
MAX_DRAWN = 5000
"""Drawings kept per table: a few per cell of a screenful of rows (ids are new every time)."""


class CachedCellsTable(DataTable[CellT]):
    """A `DataTable` whose cells are drawn from a cache keyed by what they show."""

    def __init__(self, **kwargs: Any) -> None:
        # Set first: DataTable's own __init__ sets reactives whose watchers clear caches.
        self._drawn: dict[tuple[int, int, _CellKey], SegmentLines] = {}
        """(row, column, what the cell shows and how) -> its drawing. Several per position: a
        slot that goes blank and back, or the cursor passing over it, finds its drawing again."""
        super().__init__(**kwargs)

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> SegmentLines:
        key = self._draw_key(row_index, column_index, base_style, width, cursor, hover)
        if key is None:  # a row label, or a cell that cannot be keyed: Textual's own path
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        slot = (row_index, column_index, key)
        lines = self._drawn.get(slot)
        if lines is None:
            if len(self._drawn) >= MAX_DRAWN:
                self._drawn.clear()  # rarely: one frame draws its cells again
            lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
            self._drawn[slot] = lines
        return lines

    def write_cells(self, cells: Iterable[tuple[int, int, CellT]]) -> None:
        """Write (row, column, value) cells in place, then refresh once.

        `update_cell_at` does the same for one cell and refreshes the whole table each time;
        under load the requests pane rewrites a hundred cells a frame. Column widths are not
        measured again: use this for fixed-width columns.
        """
        data, rows, columns = self._data, self._row_locations, self._column_locations
        for row, column, value in cells:
            row_key, column_key = rows.get_key(row), columns.get_key(column)
            if row_key is None or column_key is None:
                raise CellDoesNotExist(f"no cell at row {row}, column {column}")
            data[row_key][column_key] = value
        self._update_count += 1
        self.refresh()

    def _draw_key(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool,
        hover: bool,
    ) -> _CellKey | None:
        """Everything a cell's drawing depends on, or None to leave it to Textual."""
        if column_index < 0 or column_index >= len(self.columns):
            return None
        if row_index < 0:
            value: object = self.ordered_columns[column_index].label
            height = self.header_height
        else:
            row_key = self._row_locations.get_key(row_index)
            column_key = self._column_locations.get_key(column_index)
            if row_key is None or column_key is None:
                return None
            value = self._data[row_key].get(column_key)
            height = self.rows[row_key].height
        content = cell_key(value)
        if content is None:
            return None
        # The row and column are in the drawing too (mouse metadata), hence in the slot key.
        return (
            content,
            base_style,
            width,
            height,
            cursor,
            hover,
            self._show_hover_cursor,
            self.show_cursor,
            self.cell_padding,
            self.fixed_rows,
            self.fixed_columns,
            self._pseudo_class_state,
        )

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._drawn.clear()

    def notify_style_update(self) -> None:
        # A theme or CSS change restyles cells without changing their content.
        self._drawn.clear()
        super().notify_style_update()


def cell_key(value: object) -> Hashable | None:
    """What a cell shows, as a hashable value; None when it cannot be told apart cheaply.

    `Text.__eq__` ignores the base style and justify, so a `Text` is keyed on all of them.
    """
    if value is None or isinstance(value, str | int | float):
        return (type(value), value)
    if isinstance(value, Text):
        return (
            Text,
            value.plain,
            value.style,
            value.justify,
            value.overflow,
            value.no_wrap,
            value.end,
            tuple(value.spans),
        )
    return None


def same_cell(a: object, b: object) -> bool:
    """Whether two cells look the same (`Text.__eq__` ignores the style and justify)."""
    key_a, key_b = cell_key(a), cell_key(b)
    if key_a is None or key_b is None:
        return bool(a == b)
    return key_a == key_b
