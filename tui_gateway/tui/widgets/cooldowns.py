"""The cooldowns pane: models and keys sitting out, each with a bar counting down."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType

from ...domain.views import Snapshot
from .bars import Column, KeyedTable, countdown_bar, fit

__all__ = ["CooldownsPane"]

_REASONS = {"rate_limited": "429", "connection": "conn"}
_WHAT_WIDTH = 21


class CooldownsPane(KeyedTable):
    """Running cooldowns, soonest end first.

    `what` is the model, or for a rate-limited key the key's name and the model's id; `n` the
    failures in a row that fed it; `left` a bar that empties as it runs out, and the time left.

    | Key | Binding id | Action |
    | :- | :- | :- |
    | x | `cooldowns.clear` | End the selected model's cooldowns (its keys' too). |
    | X | `cooldowns.clear_all` | End every cooldown. |
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("x", "clear", "End", id="cooldowns.clear"),
        Binding("X", "clear_all", "End all", id="cooldowns.clear_all"),
    ]
    COLUMNS: ClassVar[list[Column]] = [
        ("what", "what", _WHAT_WIDTH),
        ("reason", "why", 7),
        ("failures", "n", 2),
        ("left", "left", 10),  # a 6-cell bar and up to `99s`
    ]
    TITLE = "Cooldowns"

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self._models: dict[str, str] = {}
        """Row key -> the model whose cooldown it shows."""

    def needs_row(self) -> Iterable[str]:
        return ("clear", "clear_all")

    def show(self, snapshot: Snapshot) -> None:
        entries = snapshot.cooldowns
        models: dict[str, str] = {}
        rows: list[tuple[str, tuple[Text, ...]]] = []
        for entry in entries:
            model, key_id = entry.model, entry.key_id
            row_key = f"{model}\x00{key_id or ''}"
            models[row_key] = model
            if key_id:
                what = Text(key_id, style="bold")
                what.append(" " + fit(model.split("/", 1)[-1], _WHAT_WIDTH - len(key_id) - 1))
            else:
                what = Text(fit(model, _WHAT_WIDTH))
            reason = entry.reason
            rows.append((row_key, (
                what,
                Text(_REASONS.get(reason, reason)[:7], style="dim"),
                Text(str(entry.failures), justify="right"),
                countdown_bar(entry.remaining_s, entry.duration_s),
            )))  # fmt: skip
        self._models = models
        subtitle = f"{len(rows)} cooling" if rows else ""
        if subtitle != self.border_subtitle:  # setting it, even unchanged, repaints the pane
            self.border_subtitle = subtitle
        self.sync(rows)

    def action_clear(self) -> None:
        row_key = self.cursor_key()
        model = None if row_key is None else self._models.get(row_key)
        if model is not None:
            self.gateway_state.clear_cooldowns(model)
            self.refresh_now()

    def action_clear_all(self) -> None:
        if self.row_count:
            self.gateway_state.clear_cooldowns()
            self.refresh_now()
