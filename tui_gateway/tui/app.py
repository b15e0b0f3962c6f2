"""The main screen: every pane of the gateway, repainted from one snapshot about 10 times a second.

State events only mark the screen dirty and feed the event log; the repaint reads
the state's `snapshot()` on a timer, so a burst of requests costs the proxy nothing but the
snapshot the next tick takes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.widget import Widget
from textual.widgets import Footer, Input, RichLog

from .. import log_records
from ..domain.events import WITH_LINES, Event, Note
from ..domain.views import Snapshot
from ..paths import mask
from ..remote.api import RemoteError
from .commands import GatewayCommands
from .help import HelpScreen
from .host import GatewayView, StateView
from .key_checks import key_check_summary
from .rescue import silence
from .screens.detail import RequestDetailScreen
from .themes import DEFAULT_THEME, install_themes, load_theme_files, next_theme
from .widgets import (
    CooldownsPane,
    PoolsPane,
    PosteriorsPane,
    RequestsPane,
    SessionsPane,
    StatusBar,
)

W = TypeVar("W", bound=Widget)

REFRESH_S = 0.1
"""Repaint interval while traffic is light: about 10 frames a second."""
BUSY_REFRESH_S = ((20.0, 0.2), (200.0, 0.35))
"""(requests finished per second, interval): under load the screen repaints less often, since no
eye follows hundreds of rows a second and every frame costs the proxy on the same loop."""
LAG_PROBE_S = 0.25


class GatewayApp(App[None]):
    TITLE = "tui-gateway"
    COMMANDS = App.COMMANDS | {GatewayCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("exclamation_mark", "quietest", "Quietest", id="app.quietest"),
        Binding("slash", "filter", "Filter", id="app.filter"),
        Binding("t", "next_theme", "Theme", id="app.theme"),
        Binding("e", "copy_env", "Copy env", id="app.copy_env"),
        Binding("K", "check_keys", "Check keys", id="app.check_keys"),
        Binding("a", "analytics", "Analytics", id="app.analytics"),
        Binding("P", "toggle_demo", "Pause demo", id="app.toggle_demo"),
    ]

    def __init__(
        self,
        gateway: GatewayView,
        *,
        theme: str = DEFAULT_THEME,
        live: bool = True,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """Args:
        gateway: The gateway to show (and, when `live`, to start and stop): the one in this
            process, or a `RemoteGateway` to attach to one elsewhere.
        theme: A theme name; an unknown one falls back to the default, with a warning.
        live: False shows the state as it is without starting the server or any timer
            (snapshot tests and screenshots).
        clock: The screen's clock, for how long finished requests stay in view; by default
            the snapshot's `now` (the state's clock). Tests move it instead of sleeping.
        """
        theme_files, self.theme_problems = load_theme_files()
        super().__init__(css_path=[*theme_files])
        self.theme_problems += install_themes(self, theme)
        self.gateway = gateway
        self._clock = clock
        self._events: list[Event] = []
        self._unsubscribe = gateway.state.subscribe(self._on_state_event, kinds=WITH_LINES)
        self._lag_ms = 0.0
        self._interval = REFRESH_S
        self._finished_at_last_tick = 0
        self._live = live
        self._closing = False
        self._forget_records: Callable[[], None] = lambda: None

    @property
    def state(self) -> StateView:
        """The one gateway state: panes read its snapshots and call its verbs."""
        return self.gateway.state

    def _on_state_event(self, event: Event) -> None:
        """Called from the proxy's code path: only queue it; the next tick paints it."""
        if event.text:
            self._events.append(event)

    def _logged(self, record: logging.LogRecord) -> None:
        line = f"{log_records.level(record)}: {log_records.summary(record)}"
        self._on_state_event(Note(line))

    def compose(self) -> ComposeResult:
        yield StatusBar(
            self.gateway.base_url, mask(self.gateway.api_key), demo=self.gateway.demo, id="status"
        )
        yield RequestsPane(id="requests", clock=self._clock)
        yield RichLog(id="events", max_lines=1000, markup=False, wrap=False)
        with Horizontal(id="middle"):
            yield PoolsPane(id="pools")
            yield SessionsPane(id="sessions")
        with Horizontal(id="bottom"):
            yield CooldownsPane(id="cooldowns")
            yield PosteriorsPane(id="posteriors")
        yield Input(placeholder="filter requests: enter keeps it, escape clears", id="filter")
        yield Footer()

    def _main(self, kind: type[W], selector: str | None = None) -> W:
        """A widget of the main screen, whichever screen is on top (help, a request's detail)."""
        main = self.screen_stack[0]
        return main.query_one(selector, kind) if selector else main.query_one(kind)

    async def on_mount(self) -> None:
        self.query_one("#events", RichLog).border_title = "Events"
        # Python logging's warnings and errors: Textual captures stderr, so here or nowhere.
        self._forget_records = log_records.attach(self._logged)
        for problem in self.theme_problems:
            self.notify(problem, severity="warning")
        if not self._live:
            self._refresh()
            self.query_one(RequestsPane).focus()
            return
        await self.gateway.start()
        self._tick()
        self.set_interval(LAG_PROBE_S, self._probe_lag)
        self.query_one(RequestsPane).focus()

    async def on_unmount(self) -> None:
        self._closing = True
        self._unsubscribe()
        self._forget_records()
        if self._live:
            await self.gateway.stop()

    # --- painting -------------------------------------------------------------------------

    def _tick(self) -> None:
        """Repaint, then schedule the next repaint sooner or later depending on the load."""
        if self._closing:
            return  # a last timer firing while the app shuts down: nothing left to paint
        finished = self.state.finished_count
        try:
            self._refresh()
        except NoMatches:
            return  # the screens are being taken down (quit): stop repainting
        rate = (finished - self._finished_at_last_tick) / self._interval
        self._finished_at_last_tick = finished
        self._interval = REFRESH_S
        for threshold, interval in BUSY_REFRESH_S:
            if rate > threshold:
                self._interval = interval
        self.set_timer(self._interval, self._tick)

    def _refresh(self) -> None:
        """Repaint from one snapshot; events since the last tick go to the log pane."""
        snapshot: Snapshot = self.state.snapshot(intervals=False)
        with self.batch_update():
            status = self._main(StatusBar)
            status.lag_ms = self._lag_ms
            status.link = self.gateway.link()
            status.demo = self.gateway.demo  # attached, known once the gateway said hello
            status.show(snapshot)
            self._main(RequestsPane).show(snapshot)
            self._main(PoolsPane).show(snapshot)
            self._main(SessionsPane).show(snapshot)
            self._main(CooldownsPane).show(snapshot)
            self._main(PosteriorsPane).show(snapshot)
            events, self._events = self._events, []
            log = self._main(RichLog, "#events")
            stamp = time.strftime("%H:%M:%S", time.localtime(snapshot.now))
            for event in events:
                log.write(f"{stamp} {event.text}")

    def _probe_lag(self) -> None:
        """How late the event loop runs a callback due now: the proxy's latency floor."""
        loop = asyncio.get_running_loop()
        due = loop.time()

        def measured() -> None:
            lag = (loop.time() - due) * 1000
            self._lag_ms = lag if lag > self._lag_ms else self._lag_ms * 0.8 + lag * 0.2

        loop.call_soon(measured)

    # --- actions --------------------------------------------------------------------------

    @on(RequestsPane.Opened)
    def _open_request(self, message: RequestsPane.Opened) -> None:
        self.push_screen(RequestDetailScreen(message.request_id))

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("-visible")
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.query_one(RequestsPane).filter_text = event.value.strip()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.query_one("#filter", Input).remove_class("-visible")
        self.query_one(RequestsPane).focus()

    def _clear_filter(self) -> None:
        box = self._main(Input, "#filter")
        box.value = ""
        box.remove_class("-visible")
        self._main(RequestsPane).filter_text = ""

    async def action_quietest(self) -> None:
        """Back to the main screen, the cursor on the request in flight silent longest: `x` then
        moves it on."""
        while len(self.screen_stack) > 1:
            await self.pop_screen()
        pane = self._main(RequestsPane)
        snapshot = self.state.snapshot(intervals=False)
        found = pane.quietest(snapshot)
        if found is None:
            self.notify("no request in flight")
            return
        if not pane.select(found.id, snapshot):  # the filter hides it
            self._clear_filter()
            pane.select(found.id, snapshot)
        pane.focus()
        quiet = silence(found, pane.now(snapshot))
        model = found.model or found.requested_model
        self.notify(f"{found.id}: quiet {quiet:.1f} s on {model}. x moves it on")

    def on_key(self, event: Any) -> None:
        box = self.query_one("#filter", Input)
        if event.key == "escape" and box.has_focus:
            box.value = ""
            self._filter_done()
            event.stop()

    def action_next_theme(self) -> None:
        self.theme = next_theme(self.theme)
        self.notify(f"theme: {self.theme}")

    def action_copy_env(self) -> None:
        self.copy_to_clipboard("\n".join(self.gateway.client_env()) + "\n")
        self.notify("copied OPENAI_BASE_URL and OPENAI_API_KEY")

    def action_analytics(self) -> None:
        """What the request log knows over a range (imported now: it brings plotext along)."""
        from .screens.analytics import AnalyticsScreen

        if not isinstance(self.screen, AnalyticsScreen):
            self.push_screen(AnalyticsScreen())

    @work(exclusive=True, group="key-check", exit_on_error=False)
    async def action_check_keys(self) -> None:
        """Check every API key now (its provider's models list); a key a 401 took out comes
        back when it passes. The result is a notification; each change is an event line."""
        self.notify("checking every API key…")
        try:
            checks = await self.gateway.check_keys()
        except (RemoteError, RuntimeError) as exc:
            self.notify(f"key check failed: {exc}", severity="error")
            return
        summary, bad = key_check_summary(checks)
        self.notify(summary, severity="warning" if bad else "information", timeout=8)

    def action_toggle_demo(self) -> None:
        self.state.set_demo_paused(not self.state.demo_paused)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "toggle_demo" and not self.gateway.demo:
            return None  # shown greyed out: only the demo has traffic to pause
        return True
