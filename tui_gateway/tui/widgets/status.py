"""The top line: where to point a client, how busy the gateway is, and how healthy the loop is."""

from __future__ import annotations

from collections import deque

from rich.text import Text
from textual.widgets import Static

from ...domain.views import LogView, Snapshot

WINDOW_S = 60.0


class StatusBar(Static):
    """URL, masked key, requests per minute, error rate and event-loop lag."""

    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        padding: 0 1;
        background: $panel;
    }
    """

    def __init__(
        self, base_url: str, key_hint: str, *, demo: bool = False, id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self.base_url = base_url
        self.key_hint = key_hint
        self.demo = demo
        self.lag_ms = 0.0
        self.link: str | None = None
        """Attached to a gateway elsewhere: what the connection is doing (None in-process)."""
        self._linked: str | None = None
        """`link` when the samples began."""
        self._samples: deque[tuple[float, int, int]] = deque()

    def show(self, snapshot: Snapshot) -> None:
        now, totals = snapshot.now, snapshot.totals
        samples = self._samples
        if self.link != self._linked or (samples and totals.finished < samples[-1][1]):
            # Attached anew (or to a gateway that restarted): counts from before say nothing
            # about the last minute.
            samples.clear()
            self._linked = self.link
        samples.append((now, totals.finished, totals.failed))
        while samples and now - samples[0][0] > WINDOW_S:
            samples.popleft()
        then, finished0, failed0 = samples[0]
        finished = totals.finished - finished0
        failed = totals.failed - failed0
        span = max(now - then, 1.0)
        rpm = finished * 60.0 / span if span >= 5 else float(finished)
        errors = failed / finished if finished else 0.0
        text = Text.assemble(
            (self.base_url, "bold"),
            " key ",
            (self.key_hint, "dim"),
            f"  {rpm:.0f} req/min  err ",
            (f"{errors:.0%}", "bold red" if errors > 0.2 else "yellow" if errors > 0.05 else ""),
            _log_notice(snapshot.log),
            f"  in flight {len(snapshot.active)}  done {totals.finished}  lag ",
            (f"{self.lag_ms:.0f}ms", _lag_style(self.lag_ms)),
        )
        if self.demo:
            paused = snapshot.demo.paused
            text.append("  demo: paused" if paused else "  demo", style="dim")
        cluster = snapshot.cluster
        if cluster is not None and not cluster.connected:  # sharing nothing until Redis is back
            text.append("  cluster: local only (Redis unreachable)", "bold red")
        if self.link is not None:  # attached: say so, and loudly when the picture is stale
            attached = self.link == "attached"
            text.append(
                "  attached" if attached else "  DISCONNECTED, retrying (see events)",
                "dim" if attached else "bold red",
            )
        self.update(text, layout=False)  # one line, always: no need to lay the screen out again


def _log_notice(log: LogView) -> Text:
    """Nothing while the request log keeps up; else what is wrong with it."""
    dropped = f", {log.dropped} dropped" if log.dropped else ""
    if log.failing:
        return Text(f"  log failing: {log.last_error} ({log.pending} waiting{dropped})",
                    "bold red")  # fmt: skip
    if log.behind:
        return Text(f"  log behind ({log.pending} waiting{dropped})", "yellow")
    if log.dropped:
        return Text(f"  log dropped {log.dropped} rows", "red")
    return Text()


def _lag_style(lag_ms: float) -> str:
    return "bold red" if lag_ms > 100 else "yellow" if lag_ms > 20 else "green"
