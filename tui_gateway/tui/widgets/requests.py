"""Requests in flight, one row each, and the ones that just finished (they linger briefly).

The row that matters when the assistant "hangs" is the one whose last chunk is getting old: the
`quiet` column counts seconds since the upstream last sent anything and turns yellow, then red,
as it approaches the stall timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, cast

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive

from ...domain.views import FlowView, Snapshot
from ..host import AppHost
from .table import CachedCellsTable

LINGER_S = 3.0
"""How long a finished request stays on screen, so fast ones are seen at all."""
MAX_LINGERING = 8
"""Finished requests shown at most (under load hundreds finish within LINGER_S)."""
MAX_ROWS = 60
"""Rows at most: more than a screen, far fewer than a load test's requests in flight."""

COLUMNS: dict[str, int] = {  # 84 columns with padding: fits a 100-column terminal
    "id": 6,
    "session": 6,
    "api": 4,
    "model": 18,
    "provider": 8,
    "try": 3,
    "state": 9,
    "age": 5,
    "ttfb": 6,
    "chunks": 5,
    "quiet": 5,
}
Cell = tuple[str, str]
"""(text, style): compared as is each frame; a `Text` is built only for a cell that changed."""
BLANK: tuple[Cell, ...] = (("", ""),) * len(COLUMNS)
DIALECT_LABELS = {"chat": "chat", "messages": "anth", "responses": "resp"}
"""The API a request came in on: OpenAI chat, Anthropic Messages, OpenAI Responses."""


class RequestsPane(CachedCellsTable[Text]):
    """One row per request; `enter` opens its timeline, `f` follows the newest."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Details", id="requests.open"),
        Binding("f", "toggle_follow", "Follow newest", id="requests.follow"),
    ]
    HELP = (
        "Requests in flight. `api` is the client's API (chat, anth: Anthropic Messages, resp:"
        " OpenAI Responses); `quiet` is the time since the upstream last sent a byte."
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
        self._first_byte_timeout_s = 10.0
        self._stall_timeout_s = 20.0
        self._ids: list[str] = []
        """Request id in each row slot, top to bottom."""
        self._shown: list[tuple[Cell, ...]] = []
        """The cells last written to each slot, so unchanged ones are not written again."""
        self._last_busy = 0.0

    def on_mount(self) -> None:
        self.border_title = "Requests"
        for name, width in COLUMNS.items():
            self.add_column(name, key=name, width=width)
        streaming = cast(AppHost, self.app).gateway.settings.streaming
        self._first_byte_timeout_s = streaming.first_byte_timeout_s
        self._stall_timeout_s = streaming.stall_timeout_s

    def show(self, snapshot: Snapshot) -> None:
        """Fill the table's row slots with the requests to show, oldest first.

        Rows are slots, not requests: under load requests come and go many times a second, and
        re-using a slot (rewriting only the cells whose text changed) costs far less than adding
        and removing rows, which makes the table lay itself out again.
        """
        now = snapshot.now if self._clock is None else self._clock()
        finished = [
            r
            for r in snapshot.recent
            if r.finished_at is not None and now - r.finished_at < LINGER_S
        ]
        wanted = [*snapshot.active, *finished[-MAX_LINGERING:]]
        if self.filter_text:
            needle = self.filter_text.lower()
            wanted = [r for r in wanted if needle in _haystack(r)]
        wanted.sort(key=lambda r: r.started)
        wanted = wanted[-MAX_ROWS:]
        rows_wanted = self._slots(len(wanted), now)
        while self.row_count > rows_wanted:
            self.remove_row(f"slot{self.row_count - 1}")
            self._shown.pop()
        grew = False
        rows: list[FlowView | None] = [*wanted]
        rows += [None] * (rows_wanted - len(wanted))
        changed: list[tuple[int, int, Text]] = []
        for index, request in enumerate(rows):
            cells = BLANK if request is None else self._cells(request, now)
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
        if wanted:
            self._last_busy = now
        last = len(wanted) - 1
        if self.follow and last >= 0 and (grew or self.cursor_row != last):
            self.move_cursor(row=last)
        subtitle = f"{len(snapshot.active)} in flight"
        if self.filter_text:
            subtitle += f"  filter: {self.filter_text}"
        if subtitle != self.border_subtitle:
            self.border_subtitle = subtitle

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

    def _cells(self, r: FlowView, now: float) -> tuple[Cell, ...]:
        """One row. Written as `Text`, not `str`, which the table parses as markup on every draw."""
        finished = r.finished_at is not None
        end = r.finished_at if r.finished_at is not None else now
        model = r.model or r.requested_model
        if r.model and r.requested_model not in (r.model, *_virtual()):
            model = f"{r.requested_model}→{r.model}"
        ttfb = "" if r.ttfb_ms is None else f"{r.ttfb_ms:.0f}ms"
        return (
            (r.id[:6], ""),
            (r.session[:6], ""),
            (DIALECT_LABELS.get(r.dialect, r.dialect[:4]), "dim"),
            (model, ""),
            (r.provider or "", ""),
            (str(r.attempt), ""),
            self._state_cell(r, now),
            (f"{end - r.started:.1f}s", ""),
            (ttfb, ""),
            (str(r.chunks), ""),
            ("", "") if finished else self._quiet_cell(r, now),
        )

    def _state_cell(self, r: FlowView, now: float) -> Cell:
        if r.finished_at is not None:
            ok = r.error_kind is None
            label = f"{r.status}" + ("" if ok else f" {r.error_kind}")
            return label, "green" if ok else "bold red"
        state = r.state
        quiet, limit = self._quiet(r, now)
        if state == "continuing":
            return "continuing", "bold yellow"
        if state == "fallback" or (r.attempt > 1 and state == "waiting"):
            return "fallback", "bold yellow"
        if quiet > limit / 2:
            return "stalling", "bold red" if quiet > limit * 0.8 else "bold yellow"
        return state, "cyan" if state == "streaming" else ""

    def _quiet(self, r: FlowView, now: float) -> tuple[float, float]:
        """Seconds since the upstream last sent data, and the limit that applies now."""
        if r.last_chunk_at is None:
            return now - r.started, self._first_byte_timeout_s
        return now - r.last_chunk_at, self._stall_timeout_s

    def _quiet_cell(self, r: FlowView, now: float) -> Cell:
        quiet, limit = self._quiet(r, now)
        share = quiet / limit
        return f"{quiet:.1f}s", "bold red" if share > 0.8 else "yellow" if share > 0.5 else "dim"

    def action_open(self) -> None:
        request_id = self.request_id_at_cursor()
        if request_id is not None:
            self.post_message(self.Opened(request_id))

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        self.notify(f"follow newest: {'on' if self.follow else 'off'}")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "open" and not self.row_count:
            return None
        return True


def _haystack(r: FlowView) -> str:
    fields = (r.id, r.session, r.requested_model, r.model, r.provider, r.state)
    return " ".join(str(f) for f in fields if f).lower()


def _virtual() -> tuple[str, ...]:
    return ("auto", "auto-fast", "auto-smart")
