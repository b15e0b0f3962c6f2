"""The pools pane's quotas view: one row per key, and under it one row per limit of each model.

A key's row names it by its id and masked (`free#1 gsk_f…1111`); each limit's row reads `rpm`, then
used / limit, a bar that fills as the window does (green, yellow from 70%, red when full), and
when it frees up: when full, until one more request fits; else until the count next drops (a
day with `daily_reset`: its reset). `↓` after the limit's name: a 429 under the configured value
lowered it (the limit shown is the lowered one). The model is named on its first limit's row, in
red while no request fits; `*provider` is a quota every model of the provider shares.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from rich.text import Text

from ...domain.views import QuotaView, WindowView
from .bars import Column, compact, fit, seconds

__all__ = ["QUOTA_COLUMNS", "QuotaRow", "quota_rows", "usage_bar"]

QUOTA_COLUMNS: list[Column] = [
    ("limit", "lim", 4),
    ("used", "used", 8),
    ("bar", "use", 4),
    ("frees", "free", 4),
    ("what", "key · model", None),
]
"""At 100 columns the pane is 48 cells wide: the fixed columns and their padding take 30, which
leaves 18 for a key's id and mask (`free#1 gsk_f…1111`) or a model's id."""
_WHAT_WIDTH = 24
_EIGHTHS = " ▏▎▍▌▋▊▉█"

QuotaRow = tuple[str, tuple[Text, ...], str | None]
"""(row key, cells, the model the row is about, if one: what the pane's keys act on)."""


def usage_bar(used: int, limit: int, *, width: int = 4) -> Text:
    """A bar that fills as `used` nears `limit`, in eighths of a cell."""
    share = 1.0 if limit <= 0 else max(0.0, min(1.0, used / limit))
    full, part = divmod(round(share * width * 8), 8)
    style = "red" if share >= 1 else "yellow" if share >= 0.7 else "green"
    return Text(("█" * full + (_EIGHTHS[part] if part else "")).ljust(width), style=style)


def quota_rows(quotas: Sequence[QuotaView]) -> Iterator[QuotaRow]:
    """The rows of the quotas view, in the snapshot's order (provider, key, model)."""
    key_id = None
    for quota in quotas:
        if quota.key_id != key_id:
            key_id = quota.key_id
            what = Text(key_id, style="bold")
            what.append(f" {quota.masked}", style="dim")
            blank = Text("")
            yield f"key\x00{key_id}", (blank, blank, blank, blank, what), None
        name = quota.model.split("/", 1)[-1] if quota.model else f"*{quota.provider}"
        row_model = quota.model
        for n, window in enumerate(quota.windows):
            what = Text(fit(name, _WHAT_WIDTH), style="bold red" if quota.blocked else "")
            yield (
                f"{key_id}\x00{quota.model or '*' + quota.provider}\x00{window.name}",
                _window_cells(window, what if n == 0 else Text("")),
                row_model,
            )


def _window_cells(window: WindowView, what: Text) -> tuple[Text, ...]:
    label = Text(window.name, style="dim")
    if window.lowered:
        label.append("↓", style="bold magenta")
    full = window.used >= window.limit
    used = Text(f"{compact(window.used)}/{compact(window.limit)}", style="bold" if full else "")
    frees = Text("" if window.frees_in_s is None else seconds(window.frees_in_s), style="dim")
    return label, used, usage_bar(window.used, window.limit), frees, what
