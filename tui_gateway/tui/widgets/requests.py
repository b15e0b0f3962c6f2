"""Requests in flight, one row each, and the ones that just finished (they linger briefly).

The row that matters when the assistant "hangs" is the one whose last chunk is getting old: the
`quiet` column counts seconds since the upstream last sent anything and turns yellow, then red,
as it approaches the stall timeout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, cast

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable

if TYPE_CHECKING:
    from ..app import GatewayApp

LINGER_S = 3.0
"""How long a finished request stays on screen, so fast ones are seen at all."""

COLUMNS: dict[str, int] = {  # 84 columns with padding: fits a 100-column terminal
    "id": 6,
    "session": 6,
    "model": 24,
    "provider": 8,
    "try": 3,
    "state": 9,
    "age": 5,
    "ttfb": 6,
    "chunks": 5,
    "quiet": 5,
}


class RequestsPane(DataTable[Text | str]):
    """One row per request; `enter` opens its timeline, `f` follows the newest."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Details", id="requests.open"),
        Binding("f", "toggle_follow", "Follow newest", id="requests.follow"),
    ]
    HELP = "Requests in flight. `quiet` is the time since the upstream last sent a byte."
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

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._first_byte_timeout_s = 10.0
        self._stall_timeout_s = 20.0

    def on_mount(self) -> None:
        self.border_title = "Requests"
        for name, width in COLUMNS.items():
            self.add_column(name, key=name, width=width)
        streaming = cast("GatewayApp", self.app).gateway.settings.streaming
        self._first_byte_timeout_s = streaming.first_byte_timeout_s
        self._stall_timeout_s = streaming.stall_timeout_s

    def show(self, snapshot: dict[str, Any]) -> None:
        now = snapshot["now"]
        rows = {r["id"]: r for r in snapshot["recent"] if now - r["finished_at"] < LINGER_S}
        rows |= {r["id"]: r for r in snapshot["active"]}
        if self.filter_text:
            needle = self.filter_text.lower()
            rows = {k: r for k, r in rows.items() if needle in _haystack(r)}
        for key in [k for k in self.rows if k.value not in rows]:
            self.remove_row(key)
        added = False
        for rid, request in rows.items():
            cells = self._cells(request, now)
            if rid in self.rows:
                for column, value in zip(COLUMNS, cells, strict=True):
                    self.update_cell(rid, column, value)
            else:
                self.add_row(*cells, key=rid)
                added = True
        if added and self.follow and self.row_count:
            self.move_cursor(row=self.row_count - 1)
        self.border_subtitle = f"{len(snapshot['active'])} in flight" + (
            f"  filter: {self.filter_text}" if self.filter_text else ""
        )

    def _cells(self, r: dict[str, Any], now: float) -> tuple[Text | str, ...]:
        finished = r["finished_at"] is not None
        end = r["finished_at"] if finished else now
        model = r["model"] or r["requested_model"]
        if r["model"] and r["requested_model"] not in (r["model"], *_virtual()):
            model = f"{r['requested_model']}→{r['model']}"
        ttfb = "" if r["ttfb_ms"] is None else f"{r['ttfb_ms']:.0f}ms"
        return (
            r["id"][:6],
            r["session"][:6],
            model,
            r["provider"] or "",
            str(r["attempt"]),
            self._state_cell(r, now),
            f"{end - r['started']:.1f}s",
            ttfb,
            str(r["chunks"]),
            Text("") if finished else self._quiet_cell(r, now),
        )

    def _state_cell(self, r: dict[str, Any], now: float) -> Text:
        if r["finished_at"] is not None:
            ok = r["error_kind"] is None
            label = f"{r['status']}" + ("" if ok else f" {r['error_kind']}")
            return Text(label, style="green" if ok else "bold red")
        state = r["state"]
        quiet, limit = self._quiet(r, now)
        if state == "fallback" or (r["attempt"] > 1 and state == "waiting"):
            return Text("fallback", style="bold yellow")
        if quiet > limit / 2:
            return Text("stalling", style="bold red" if quiet > limit * 0.8 else "bold yellow")
        return Text(state, style="cyan" if state == "streaming" else "")

    def _quiet(self, r: dict[str, Any], now: float) -> tuple[float, float]:
        """Seconds since the upstream last sent data, and the limit that applies now."""
        if r["last_chunk_at"] is None:
            return now - r["started"], self._first_byte_timeout_s
        return now - r["last_chunk_at"], self._stall_timeout_s

    def _quiet_cell(self, r: dict[str, Any], now: float) -> Text:
        quiet, limit = self._quiet(r, now)
        share = quiet / limit
        style = "bold red" if share > 0.8 else "yellow" if share > 0.5 else "dim"
        return Text(f"{quiet:.1f}s", style=style)

    def action_open(self) -> None:
        if self.row_count:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
            if key is not None:
                self.post_message(self.Opened(key))

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        self.notify(f"follow newest: {'on' if self.follow else 'off'}")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "open" and not self.row_count:
            return None
        return True


def _haystack(r: dict[str, Any]) -> str:
    fields = (r["id"], r["session"], r["requested_model"], r["model"], r["provider"], r["state"])
    return " ".join(str(f) for f in fields if f).lower()


def _virtual() -> tuple[str, ...]:
    return ("auto", "auto-fast", "auto-smart")
