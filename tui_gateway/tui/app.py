"""The main screen: requests in flight, pool chains and an event log, repainted ~10 times/s."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, RichLog, Static

from ..domain.state import GatewayState, StateEvent
from ..paths import mask
from ..server import Gateway
from .themes import themes_dir

REFRESH_S = 0.1
_COLUMNS = {  # name -> width: fixed, so a value that grows later is never cut short
    "id": 12,
    "model": 30,
    "provider": 12,
    "try": 3,
    "state": 10,
    "age": 7,
    "ttfb": 8,
    "chunks": 6,
}


class GatewayApp(App[None]):
    TITLE = "tui-gateway"
    CSS_PATH: ClassVar[list[str | Any]] = [str(themes_dir() / "gateway.tcss")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("P", "toggle_demo", "Pause demo", id="app.toggle_demo"),
    ]

    def __init__(self, gateway: Gateway) -> None:
        super().__init__()
        self.gateway = gateway
        self._events: list[StateEvent] = []
        self._unsubscribe = gateway.state.subscribe(self._on_state_event)

    @property
    def state(self) -> GatewayState:
        """The one gateway state: panes read its snapshots and call its verbs."""
        return self.gateway.state

    def _on_state_event(self, event: StateEvent) -> None:
        """Called from the proxy's code path: only queue it; the next tick paints it."""
        self._events.append(event)

    def compose(self) -> ComposeResult:
        yield Static(id="status")
        with Vertical(id="main"):
            yield DataTable(id="active", cursor_type="row", zebra_stripes=True)
            with Horizontal(id="bottom"):
                yield Static(id="pools")
                yield RichLog(id="events", max_lines=500, markup=False, wrap=False)
        yield Footer()

    async def on_mount(self) -> None:
        table = self.query_one("#active", DataTable)
        table.border_title = "Active requests"
        for column, width in _COLUMNS.items():
            table.add_column(column, key=column, width=width)
        self.query_one("#pools", Static).border_title = "Pools"
        self.query_one("#events", RichLog).border_title = "Events"
        await self.gateway.start()
        self._refresh()
        self.set_interval(REFRESH_S, self._refresh)

    async def on_unmount(self) -> None:
        self._unsubscribe()
        await self.gateway.stop()

    def action_toggle_demo(self) -> None:
        state = self.gateway.state
        state.set_demo_paused(not state.demo_paused)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "toggle_demo" and not self.gateway.demo:
            return None  # shown greyed out: only the demo has traffic to pause
        return True

    def _refresh(self) -> None:
        """Repaint from one snapshot; events since the last tick go to the log pane."""
        snapshot = self.gateway.state.snapshot()
        with self.batch_update():
            self._show_status(snapshot)
            self._show_active(snapshot)
            self._show_pools(snapshot)
            events, self._events = self._events, []
            log = self.query_one("#events", RichLog)
            for event in events:
                if event.text:
                    log.write(f"{time.strftime('%H:%M:%S')} {event.text}")

    def _show_status(self, snapshot: dict[str, Any]) -> None:
        totals = snapshot["totals"]
        demo = ""
        if self.gateway.demo:
            demo = "  demo: paused" if snapshot["demo"]["paused"] else "  demo: running"
        self.query_one("#status", Static).update(
            f"{self.gateway.base_url}  key {mask(self.gateway.api_key)}  "
            f"in flight {len(snapshot['active'])}  done {totals['finished']}  "
            f"failed {totals['failed']}{demo}"
        )

    def _show_active(self, snapshot: dict[str, Any]) -> None:
        table = self.query_one("#active", DataTable)
        now = snapshot["now"]
        rows = {r["id"]: r for r in snapshot["active"]}
        for key in [k for k in table.rows if k.value not in rows]:
            table.remove_row(key)
        for rid, r in rows.items():
            cells = (
                rid[:8],
                r["model"] or r["requested_model"],
                r["provider"] or "",
                str(r["attempt"]),
                r["state"],
                f"{now - r['started']:.1f}s",
                "" if r["ttfb_ms"] is None else f"{r['ttfb_ms']:.0f}ms",
                str(r["chunks"]),
            )
            if rid in table.rows:
                for column, value in zip(_COLUMNS, cells, strict=True):
                    table.update_cell(rid, column, value)
            else:
                table.add_row(*cells, key=rid)

    def _show_pools(self, snapshot: dict[str, Any]) -> None:
        lines = []
        for pool, chain in snapshot["pools"].items():
            lines.append(f"[b]{pool}[/b]")
            for n, entry in enumerate(chain, start=1):
                mark = "" if entry["usable"] else "  (off)"
                lines.append(f"  {n}. {entry['model']}{mark}")
        self.query_one("#pools", Static).update("\n".join(lines))
