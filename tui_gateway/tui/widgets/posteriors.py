"""The posteriors pane: what routing believes about each model's success rate and speed."""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar

from rich.text import Text

from ...config import POOLS
from .bars import Column, KeyedTable, fit, interval_bar, sparkline

__all__ = ["PosteriorsPane"]

HISTORY = 8
"""Recent time-to-first-byte values kept per model for the sparkline."""
_MODEL_WIDTH = 16


class PosteriorsPane(KeyedTable):
    """Each model's Beta posterior, by pool then chain position. Read-only.

    `#` is the pool's initial and the chain position; `p%` the posterior mean; the bar spans
    [0, 1] with the 90 % interval shaded and the mean's cell solid; `ttfb` the recency-weighted
    mean time to first byte and `trend` the last few requests' own; `w s/f` the decayed
    successes/failures the posterior counts and `s/f` the raw ones inside the window.
    """

    COLUMNS: ClassVar[list[Column]] = [
        ("position", "#", 3),
        ("model", "model", _MODEL_WIDTH),
        ("mean", "p%", 3),
        ("interval", "90% range", 10),
        ("ttfb", "ttfb", 5),
        ("trend", "trend", HISTORY),
        ("weighted", "w s/f", 9),
        ("raw", "s/f", None),
    ]
    TITLE = "Posteriors"

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self._ttfb: dict[str, deque[float]] = {}
        """Model -> time to first byte of its latest successful requests, oldest first."""
        self._counted: set[str] = set()
        """Ids of the finished requests (in the last snapshot) already in `_ttfb`."""

    def show(self, snapshot: dict[str, Any]) -> None:
        self._note_latencies(snapshot.get("recent", ()))
        posteriors = snapshot["posteriors"]
        order = sorted(posteriors.values(), key=lambda p: (_pool_rank(p["pool"]), p["position"]))
        self.sync((p["model"], self._cells(p)) for p in order)

    def _note_latencies(self, recent: Any) -> None:
        counted: set[str] = set()
        for request in recent:
            counted.add(request["id"])
            model, ttfb = request["model"], request["ttfb_ms"]
            if request["id"] in self._counted or request.get("error_kind") or ttfb is None:
                continue
            if model is not None:
                self._ttfb.setdefault(model, deque(maxlen=HISTORY)).append(ttfb)
        self._counted = counted

    def _cells(self, p: dict[str, Any]) -> tuple[Text, ...]:
        seen = p["seen"]
        low, high = p["interval"]
        model = Text(fit(p["model"], _MODEL_WIDTH), style="" if seen else "dim")
        mean = Text(f"{round(p['mean'] * 100):d}", justify="right", style="" if seen else "dim")
        weighted = f"{_count(p['weighted_successes'])}/{_count(p['weighted_failures'])}"
        return (
            Text(f"{p['pool'][0]}{p['position'] + 1}", style="dim"),
            model,
            mean,
            interval_bar(p["mean"], low, high, width=10),
            Text(_ms(p["ttfb_ms"]), justify="right"),
            sparkline(self._ttfb.get(p["model"], ()), width=HISTORY),
            Text(weighted, style="dim"),
            Text(f"{p['successes']}/{p['failures']}", style="dim"),
        )


def _pool_rank(pool: str) -> int:
    return POOLS.index(pool) if pool in POOLS else len(POOLS)


def _count(x: float) -> str:
    return f"{x:.1f}" if x < 100 else f"{x:.0f}"


def _ms(ms: float | None) -> str:
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms:.0f}ms"
    return f"{ms / 1000:.1f}s" if ms < 10_000 else f"{ms / 1000:.0f}s"
