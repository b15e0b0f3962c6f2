"""One request up close: its attempts, routing's decisions, the chunk timeline and the error.

The screen keeps no state of its own: it repaints from a fresh copy of the request (`FlowDetail`)
while it runs, or from what the log kept once it is too old to be in memory any more. The text is
built by the pure `*_text` functions below, so tests read it without a terminal.

| Key          | Action                                  | Binding id         |
| ------------ | --------------------------------------- | ------------------ |
| `escape` `q` | back to the main screen                 | `detail.back`      |
| `c`          | copy the request as a curl command line | `detail.copy_curl` |
| `x`          | move the request on from its attempt    | `detail.skip`      |
"""

from __future__ import annotations

from typing import ClassVar, cast

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState

from ...domain.views import FlowDetail
from ..curl import as_curl
from ..host import AppHost
from ..rescue import skip_message
from .detail_text import (
    Batch,
    attempts_text,
    batches,
    error_text,
    header_text,
    messages_text,
    preview,
    timeline_text,
)

REFRESH_S = 0.2

__all__ = [
    "Batch",
    "RequestDetailScreen",
    "attempts_text",
    "batches",
    "error_text",
    "header_text",
    "messages_text",
    "preview",
    "timeline_text",
]


class RequestDetailScreen(Screen[None]):
    """One request: live while it runs, from the request log when it is older."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "back", "Back", id="detail.back"),
        Binding("c", "copy_curl", "Copy curl", id="detail.copy_curl"),
        Binding("x", "skip", "Move on", id="detail.skip"),
    ]
    DEFAULT_CSS = """
    RequestDetailScreen { layout: vertical; }
    RequestDetailScreen #detail-header { height: auto; padding: 0 1; border: round $primary; }
    RequestDetailScreen #detail-body { height: 1fr; }
    RequestDetailScreen .detail-section { height: auto; padding: 0 1; border: round $secondary; }
    RequestDetailScreen #detail-error { border: round $error; }
    """
    _SECTIONS = {"messages": "Messages", "attempts": "Attempts",
                 "timeline": "Chunk timeline", "error": "Error"}  # fmt: skip

    def __init__(self, request_id: str) -> None:
        super().__init__()
        self.request_id = request_id
        self.request: FlowDetail | None = None
        """The latest copy of the request (from memory while it is recent, else from the log)."""
        self._timer: Timer | None = None

    @property
    def host(self) -> AppHost:
        return cast(AppHost, self.app)

    def compose(self) -> ComposeResult:
        yield Static("loading…", id="detail-header")
        with VerticalScroll(id="detail-body"):
            for name in self._SECTIONS:
                yield Static(id=f"detail-{name}", classes="detail-section")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#detail-header").border_title = f"Request {self.request_id}"
        for name, title in self._SECTIONS.items():
            self._section(name).border_title = title
        self.request = self.host.state.find_request(self.request_id)
        if self.request is None:
            self.query_one("#detail-body").display = False
            self._load()
            return
        self._shown()
        if self.request.view.status is None:
            self._timer = self.set_interval(REFRESH_S, self._tick)

    def _section(self, name: str) -> Static:
        return self.query_one(f"#detail-{name}", Static)

    def _tick(self) -> None:
        found = self.host.state.find_request(self.request_id)
        self.request = found or self.request  # evicted from `recent`: keep what we hold
        self._paint()
        if self.request is not None and self.request.view.status is not None and self._timer:
            self._timer.stop()
            self.refresh_bindings()  # it finished: nothing left to move on

    def _shown(self) -> None:
        """A request to show arrived: its messages once, then everything else."""
        assert self.request is not None
        messages = self._section("messages")
        if self.request.from_log:
            note = "from the request log: the body and the chunk timeline are not kept"
            messages.update(Text(note, "dim"))
        else:
            messages.update(messages_text(self.request.body))
        self._paint()
        self.refresh_bindings()

    def _paint(self) -> None:
        item = self.request
        if item is None:
            return
        now = self.host.state.clock()
        with self.app.batch_update():
            self.query_one("#detail-header", Static).update(header_text(item, now=now))
            self._section("attempts").update(attempts_text(item, now=now))
            timeline = self._section("timeline")
            timeline.display = item.timeline is not None
            if item.timeline is not None:
                stall_s = self.host.gateway.streaming.stall_timeout_s
                timeline.update(timeline_text(item, now=now, stall_s=stall_s))
            error = error_text(item)
            self._section("error").display = error is not None
            self._section("error").update(error or "")

    @work(exclusive=True, group="detail", exit_on_error=False)
    async def _load(self) -> FlowDetail | None:
        return await self.host.gateway.request_detail(self.request_id)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "detail":
            return
        header = self.query_one("#detail-header", Static)
        if event.state == WorkerState.SUCCESS:
            self.request = cast(FlowDetail | None, event.worker.result)
            if self.request is None:
                header.update(Text(f"request {self.request_id} not found", "bold red"))
                return
            self.query_one("#detail-body").display = True
            self._shown()
            if self.request.view.status is None and self._timer is None:  # attached: in flight
                self._timer = self.set_interval(REFRESH_S, self._tick)
        elif event.state == WorkerState.ERROR:
            message = f"could not load request {self.request_id}: {event.worker.error}"
            header.update(Text(message, "bold red"))
            self.notify(message, severity="error")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "copy_curl" and (self.request is None or self.request.body is None):
            return None  # shown greyed out: only a request still in memory has its body
        if action == "skip" and (self.request is None or self.request.view.status is not None):
            return None  # shown greyed out: only a request in flight can move on
        return True

    def action_skip(self) -> None:
        view = None if self.request is None else self.request.view
        moved = self.host.state.skip_request(self.request_id)
        text, warning = skip_message(self.request_id, moved, None if view is None else view.model)
        self.notify(text, severity="warning" if warning else "information")

    def action_copy_curl(self) -> None:
        if self.request is None or self.request.body is None:
            return
        self.app.copy_to_clipboard(as_curl(self.host.gateway.base_url, self.request.body))
        self.notify("copied curl command")

    def action_back(self) -> None:
        self.dismiss()
