"""Requests in flight, one row each, and the ones that just finished (they linger briefly).

The row that matters when the assistant "hangs" is the one whose last chunk is getting old: the
`quiet` column counts seconds since the upstream last sent anything and turns yellow, then red,
as it approaches the silence the attempt is allowed (its model's learned timeout, else the
configured one); the `state` says `stalling` once that silence is unusual for the model. `x`
moves such a request on to its next candidate at once, `b`/`B` ban its model or provider.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import ClassVar, cast

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.coordinate import Coordinate
from textual.message import Message
from textual.reactive import reactive

from ...domain.views import Bans, FlowView, Snapshot
from ..commands import PaletteEntry
from ..host import AppHost, StateView
from ..rescue import ban_message, quietest, silence, skip_message
from .request_rows import BLANK, COLUMNS, Cell, Timeouts, haystack, row_cells
from .table import CachedCellsTable

LINGER_S = 3.0
"""How long a finished request stays on screen, so fast ones are seen at all."""
MAX_LINGERING = 8
"""Finished requests shown at most (under load hundreds finish within LINGER_S)."""
MAX_ROWS = 60
"""Rows at most: more than a screenful, far fewer than a load test's requests in flight."""
PALETTE_REQUESTS = 10
"""Requests in flight the command palette offers to move on, quietest first."""

_ON_ROW = ("skip", "ban_model", "ban_provider")
"""Actions on the request under the cursor."""


class RequestsPane(CachedCellsTable[Text]):
    """One row per request; `enter` opens its timeline, `x` moves it on, `f` follows the newest.

    Moving the cursor by hand stops following the newest request, so the row under it stays
    put while others come and go; `f` follows again.

    | Key | Binding id | Action |
    | :- | :- | :- |
    | enter | `requests.open` | Open the request's timeline. |
    | f | `requests.follow` | Follow the newest request, or stop. |
    | x | `requests.skip` | Move the request on from its attempt now, as a stall would. |
    | b | `requests.ban_model` | Ban the model serving it (its requests move on). |
    | B | `requests.ban_provider` | Ban that model's provider (likewise). |
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Details", id="requests.open"),
        Binding("f", "toggle_follow", "Follow newest", id="requests.follow"),
        Binding("x", "skip", "Move on", id="requests.skip"),
        Binding("b", "ban_model", "Ban model", show=False, id="requests.ban_model"),
        Binding("B", "ban_provider", "Ban provider", show=False, id="requests.ban_provider"),
    ]
    HELP = (
        "Requests in flight. `api` is the client's API (chat, anth: Anthropic Messages, resp:"
        " OpenAI Responses); `quiet` is the time since the upstream last sent a byte, coloured"
        " against the silence the attempt is allowed; `stalling`: quieter than its model usually"
        " is. `x` moves the request on to its next candidate now (the answer continues there;"
        " the model is not blamed), `b`/`B` ban the model or provider serving it, and `!`"
        " (anywhere) puts the cursor on the quietest request in flight. Moving the cursor stops"
        " following the newest request; `f` follows again. A request sent with a named"
        " `[[clients]]` key has its client's name, in bold, in place of the session."
    )
    DEFAULT_CSS = """
    RequestsPane {
        height: 1fr;
        border: round $secondary;
        border-title-color: $secondary;
        &:focus {
            border: round $primary;
            border-title-color: $primary;
        }
    }
    """

    follow: reactive[bool] = reactive(True)
    filter_text: reactive[str] = reactive("")

    class Opened(Message):
        """The user asked for one request's details."""

        def __init__(self, request_id: str) -> None:
            super().__init__()
            self.request_id = request_id

    def __init__(self, *, id: str | None = None, clock: Callable[[], float] | None = None) -> None:
        """Args:
        clock: What time it is for the rows (their age, how long finished ones linger); by
            default the snapshot's `now`, the state's clock.
        """
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._clock = clock
        self._timeouts = Timeouts()
        self._ids: list[str] = []
        """Request id in each row slot, top to bottom."""
        self._shown: list[tuple[Cell, ...]] = []
        """The cells last written to each slot, so unchanged ones are not written again."""
        self._last_busy = 0.0
        self._views: dict[str, FlowView] = {}
        """The requests on screen by id, as the last snapshot had them (what the keys act on)."""
        self._active: tuple[FlowView, ...] = ()
        self._now = 0.0
        self._bans = Bans((), ())
        self._pinned: str | None = None
        """A request `select` put the cursor on: kept in view (past `MAX_ROWS`) and under it."""
        self._own_move = False
        """True while the pane moves its own cursor (a repaint), so only the user's moves
        stop following the newest request."""
        self._on_request = False
        """Whether the cursor is on a request (the footer greys the row keys when not)."""

    @property
    def _state(self) -> StateView:
        return cast(AppHost, self.app).state

    def on_mount(self) -> None:
        self.border_title = "Requests"
        for name, width in COLUMNS.items():
            self.add_column(name, key=name, width=width)
        streaming = cast(AppHost, self.app).gateway.streaming
        self._timeouts = Timeouts(streaming.first_byte_timeout_s, streaming.stall_timeout_s)

    def now(self, snapshot: Snapshot) -> float:
        """What time it is for the rows: the pane's clock, else the snapshot's."""
        return snapshot.now if self._clock is None else self._clock()

    def show(self, snapshot: Snapshot) -> None:
        """Fill the table's row slots with the requests to show, oldest first.

        Rows are slots, not requests: under load requests come and go many times a second, and
        re-using a slot (rewriting only the cells whose text changed) costs far less than adding
        and removing rows, which makes the table lay itself out again.
        """
        with self._moving():
            self._show(snapshot)

    def _show(self, snapshot: Snapshot) -> None:
        now = self._now = self.now(snapshot)
        self._active, self._bans = snapshot.active, snapshot.bans
        finished = [
            r
            for r in snapshot.recent
            if r.finished_at is not None and now - r.finished_at < LINGER_S
        ]
        wanted = [*snapshot.active, *finished[-MAX_LINGERING:]]
        if self.filter_text:
            needle = self.filter_text.lower()
            wanted = [r for r in wanted if needle in haystack(r)]
        wanted.sort(key=lambda r: r.started)
        keep = None if self.follow else self._pinned or self.request_id_at_cursor()
        wanted = _last_rows(wanted, keep)
        rows_wanted = self._slots(len(wanted), now)
        while self.row_count > rows_wanted:
            self.remove_row(f"slot{self.row_count - 1}")
            self._shown.pop()
        grew = False
        rows: list[FlowView | None] = [*wanted]
        rows += [None] * (rows_wanted - len(wanted))
        changed: list[tuple[int, int, Text]] = []
        for index, request in enumerate(rows):
            cells = BLANK if request is None else row_cells(request, now, self._timeouts)
            if index >= self.row_count:
                self.add_row(*(Text(text, style) for text, style in cells), key=f"slot{index}")
                self._shown.append(cells)
                grew = True
                continue
            shown = self._shown[index]
            for column, (old, new) in enumerate(zip(shown, cells, strict=True)):
                if old != new:  # the style counts too: "stalling" turning red
                    changed.append((index, column, Text(*new)))
            self._shown[index] = cells
        if changed:
            self.write_cells(changed)
        self._ids = [r.id for r in wanted]
        self._views = {r.id: r for r in wanted}
        if wanted:
            self._last_busy = now
        last = len(wanted) - 1
        if self.follow and last >= 0:
            if grew or self.cursor_row != last:
                self.move_cursor(row=last)
            # The newest at the bottom of the view, the rest above it: moving the cursor alone
            # scrolls as little as it can, which left older requests out of view above.
            page = self.scrollable_content_region.height - self.header_height
            top = max(0, last + 1 - page) if page > 0 else 0
            if self.scroll_y != top:
                self.scroll_to(y=top, animate=False, immediate=True)
        elif keep is not None and keep in self._views:  # the same request, wherever it went
            row = self._ids.index(keep)
            if row != self.cursor_row:
                self.move_cursor(row=row)
        subtitle = f"{len(snapshot.active)} in flight"
        if self.filter_text:
            subtitle += f"  filter: {self.filter_text}"
        if not self.follow:
            subtitle += "  follow: off"
        if subtitle != self.border_subtitle:
            self.border_subtitle = subtitle
        self._cursor_changed()

    def _slots(self, needed: int, now: float) -> int:
        """How many row slots to have for `needed` requests.

        Changing the number of rows makes the table, and so the whole screen, lay itself out
        again (a frame's cost or more). So slots are kept (blank) when requests leave while
        there were many recently, and past a screenful (where blank slots are out of view) the
        table takes all `MAX_ROWS` at once rather than a row at a time as a load ramps up.
        """
        have = self.row_count if self._busy(now) else 0
        if needed <= have:
            return have
        page = self.scrollable_content_region.height - self.header_height
        return needed if needed <= page or page <= 0 else MAX_ROWS  # page <= 0: not laid out

    def _busy(self, now: float) -> bool:
        """Requests were on screen a moment ago: keep the slots for the next ones."""
        return now - self._last_busy < 5.0

    @property
    def request_ids(self) -> list[str]:
        """The requests on screen, top to bottom (blank slots below them are not counted)."""
        return list(self._ids)

    def request_id_at_cursor(self) -> str | None:
        row = self.cursor_row
        return self._ids[row] if 0 <= row < len(self._ids) else None

    # --- the cursor -----------------------------------------------------------------------

    @contextmanager
    def _moving(self) -> Iterator[None]:
        """The pane moves its own cursor in here (not the user)."""
        self._own_move = True
        try:
            yield
        finally:
            self._own_move = False

    def watch_cursor_coordinate(self, old: Coordinate, new: Coordinate) -> None:
        super().watch_cursor_coordinate(old, new)
        if old.row != new.row and not self._own_move:
            self._pinned = None
            self.follow = False  # the user went to a row: it stays under the cursor
        self._cursor_changed()

    def _cursor_changed(self) -> None:
        on_request = self.request_id_at_cursor() is not None
        if on_request != self._on_request:
            self._on_request = on_request
            if self.has_focus:
                self.refresh_bindings()

    def watch_follow(self, follow: bool) -> None:
        if follow:
            self._pinned = None

    def select(self, request_id: str, snapshot: Snapshot) -> bool:
        """Stop following and put the cursor on `request_id`, repainting from `snapshot`.

        Returns:
            False if the request is not on screen (finished long ago, or filtered out).
        """
        self.follow = False
        self._pinned = request_id
        self.show(snapshot)
        if request_id not in self._views:
            self._pinned = None
            return False
        with self._moving():
            self.move_cursor(row=self._ids.index(request_id))
        self._cursor_changed()
        return True

    def quietest(self, snapshot: Snapshot) -> FlowView | None:
        """The request in flight silent longest, by the pane's clock."""
        return quietest(snapshot.active, self.now(snapshot))

    # --- keys -----------------------------------------------------------------------------

    def action_open(self) -> None:
        request_id = self.request_id_at_cursor()
        if request_id is not None:
            self.post_message(self.Opened(request_id))

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        self.notify(f"follow newest: {'on' if self.follow else 'off'}")

    def action_skip(self, request_id: str | None = None) -> None:
        """Move the request (by default the one under the cursor) on from its attempt now."""
        target = request_id or self.request_id_at_cursor()
        if target is None:
            return
        view = self._views.get(target) or next((r for r in self._active if r.id == target), None)
        moved = self._state.skip_request(target)
        text, warning = skip_message(target, moved, None if view is None else view.model)
        self.notify(text, severity="warning" if warning else "information")

    def action_skip_quietest(self) -> None:
        found = self.quietest(self._state.snapshot(intervals=False))
        if found is None:
            self.notify("no request in flight", severity="warning")
            return
        self.action_skip(found.id)

    def action_ban_model(self) -> None:
        view = self._view_at_cursor()
        if view is not None:
            self._ban(view, view.model, "model", self._bans.models, self._state.ban_model)

    def action_ban_provider(self) -> None:
        view = self._view_at_cursor()
        if view is not None:
            self._ban(
                view, view.provider, "provider", self._bans.providers, self._state.ban_provider
            )

    def _ban(
        self,
        view: FlowView,
        name: str | None,
        what: str,
        banned: Collection[str],
        ban: Callable[[str], None],
    ) -> None:
        """Ban what serves the row's request (its model or provider); its requests move on."""
        if name is None:
            self.notify(f"{view.id} is not on a {what} yet", severity="warning")
            return
        label = name if what == "model" else f"provider {name}"
        if name in banned:
            self.notify(f"{label} is already banned (the pools pane unbans it)")
        else:
            serving = [r for r in self._active if r.finished_at is None]
            moving = sum(1 for r in serving if (r.model if what == "model" else r.provider) == name)
            ban(name)
            self.notify(ban_message(label, moving))

    def _view_at_cursor(self) -> FlowView | None:
        request_id = self.request_id_at_cursor()
        return None if request_id is None else self._views.get(request_id)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "open" and not self.row_count:
            return None
        if action in _ON_ROW and not parameters and self.request_id_at_cursor() is None:
            return None  # shown greyed out: no request under the cursor
        return True

    def palette_entries(self) -> list[PaletteEntry]:
        """Commands for the palette beyond the keys: move on the quietest, or a named request."""
        in_flight = [r for r in self._active if r.finished_at is None]
        if not in_flight:
            return []
        now = self._now
        entries = [PaletteEntry("Move the quietest request on", "key: ! then x", "skip_quietest")]
        in_flight.sort(key=lambda r: silence(r, now), reverse=True)
        for r in in_flight[:PALETTE_REQUESTS]:
            name = f"Move {r.id} on ({r.model or r.requested_model}, quiet {silence(r, now):.1f} s)"
            entries.append(PaletteEntry(name, "cuts its attempt short now", f"skip({r.id!r})"))
        return entries


def _last_rows(wanted: list[FlowView], keep: str | None) -> list[FlowView]:
    """The newest `MAX_ROWS` of `wanted`, and the request `keep` (under the cursor) if older."""
    if len(wanted) <= MAX_ROWS:
        return wanted
    newest = wanted[-MAX_ROWS:]
    if keep is None or any(r.id == keep for r in newest):
        return newest
    kept = [r for r in wanted[:-MAX_ROWS] if r.id == keep]
    return [*kept, *newest[len(kept) :]]
