"""What one row of the requests pane says: pure functions from a request to its cells.

The `state` column names the phase (`hedging` while a second candidate races a late first
byte, the model column then naming both), or `stalling` once the upstream's silence is unusual
for the model (past its usual first byte or longest gap; without history, past half the limit);
the `quiet` column turns yellow, then red, as the silence nears the limit the attempt is allowed
(the model's learned timeout, else the configured one). A request sent with a named
`[[clients]]` key shows whose it is, in bold, where the session would be: there is no room for
another column, and on a shared gateway whose request it is matters more than which session.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...domain.views import FlowView
from ..rescue import silence

__all__ = ["BLANK", "COLUMNS", "DIALECT_LABELS", "Cell", "Timeouts", "haystack", "row_cells"]

COLUMNS: dict[str, int] = {  # 97 columns with padding: just fits a 100-column terminal
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
_VIRTUAL = ("auto", "auto-fast", "auto-smart")


@dataclass(frozen=True, slots=True)
class Timeouts:
    """The configured timeouts: the limits for a request whose attempt has none of its own."""

    first_byte_s: float = 10.0
    stall_s: float = 20.0


def row_cells(r: FlowView, now: float, timeouts: Timeouts) -> tuple[Cell, ...]:
    """One row's cells, in `COLUMNS` order."""
    finished = r.finished_at is not None
    end = r.finished_at if r.finished_at is not None else now
    model = r.model or r.requested_model
    if r.model and r.requested_model not in (r.model, *_VIRTUAL):
        model = f"{r.requested_model}→{r.model}"
    if r.racer is not None and r.finished_at is None:
        model = f"{model}⇄{r.racer}"
    ttfb = "" if r.ttfb_ms is None else f"{r.ttfb_ms:.0f}ms"
    return (
        (r.id[-6:], ""),  # the sequence's end: ids begin with the second (domain/flows.py)
        (r.session[:6], "") if r.client is None else (r.client[:6], "bold"),
        (DIALECT_LABELS.get(r.dialect, r.dialect[:4]), "dim"),
        (model, ""),
        (r.provider or "", ""),
        (str(r.attempt), ""),
        state_cell(r, now, timeouts),
        (f"{end - r.started:.1f}s", ""),
        (ttfb, ""),
        (str(r.chunks), ""),
        ("", "") if finished else quiet_cell(r, now, timeouts),
    )


def state_cell(r: FlowView, now: float, timeouts: Timeouts) -> Cell:
    if r.finished_at is not None:
        ok = r.error_kind is None
        label = f"{r.status}" + ("" if ok else f" {r.error_kind}")
        return label, "green" if ok else "bold red"
    state = r.state
    if state == "continuing":
        return "continuing", "bold yellow"
    if state == "hedging":  # late for its model: the next candidate races it
        return "hedging", "bold magenta"
    if state == "fallback" or (r.attempt > 1 and state == "waiting"):
        return "fallback", "bold yellow"
    quiet, limit = quiet_and_limit(r, now, timeouts)
    if quiet > (limit / 2 if r.usual_s is None else r.usual_s):
        return "stalling", "bold red" if quiet > limit * 0.8 else "bold yellow"
    return state, "cyan" if state == "streaming" else ""


def quiet_and_limit(r: FlowView, now: float, timeouts: Timeouts) -> tuple[float, float]:
    """Seconds since the upstream last sent data, and the silence allowed now: the attempt's
    own limit (learned for its model) when the proxy set one, else the configured timeout."""
    if r.limit_s is not None and r.limit_s > 0:
        return silence(r, now), r.limit_s
    configured = timeouts.first_byte_s if r.last_chunk_at is None else timeouts.stall_s
    return silence(r, now), configured


def quiet_cell(r: FlowView, now: float, timeouts: Timeouts) -> Cell:
    quiet, limit = quiet_and_limit(r, now, timeouts)
    share = quiet / limit
    return f"{quiet:.1f}s", "bold red" if share > 0.8 else "yellow" if share > 0.5 else "dim"


def haystack(r: FlowView) -> str:
    """What the filter matches a request against."""
    fields = (r.id, r.session, r.client, r.requested_model, r.model, r.provider, r.state)
    return " ".join(str(f) for f in fields if f).lower()
