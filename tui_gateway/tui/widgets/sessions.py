"""The sessions pane: sticky conversations, the model each is pinned to, and keys to forget them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from ...domain.views import SessionView, Snapshot
from .bars import Column, KeyedTable, compact, fit, seconds

__all__ = ["ConfirmScreen", "SessionsPane"]


class ConfirmScreen(ModalScreen[bool]):
    """Ask a yes/no question; dismisses with True for yes.

    | Key | Binding id | Action |
    | :- | :- | :- |
    | y, enter | `confirm.yes` | Yes. |
    | n, escape | `confirm.no` | No. |
    """

    DEFAULT_CSS = """
    ConfirmScreen {
        align: center middle;
        & > Vertical {
            width: auto;
            max-width: 60;
            height: auto;
            padding: 1 2;
            border: thick $error;
            background: $surface;
        }
        & Horizontal {
            width: auto;
            height: auto;
            margin-top: 1;
        }
        & Button {
            margin: 0 1;
        }
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y,enter", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(self.question))
            with Horizontal():
                yield Button("Yes (y)", variant="error", id="yes")
                yield Button("No (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class SessionsPane(KeyedTable):
    """Sticky sessions, most recently used first.

    `session` is the first 8 characters of the session key (or, when the client named its
    conversation in a header, the client's tag, `cc` Claude Code, `cx` Codex, `oc` opencode, `id`
    X-Session-Id, and the first 5) and the first words of the conversation; `exp` the time until
    it is forgotten; `bans` the providers banned for it (provider-ban protection) with the time
    their ban has left; `n` the answers given in it.

    | Key | Binding id | Action |
    | :- | :- | :- |
    | d | `sessions.clear` | Forget the selected session. |
    | D | `sessions.clear_all` | Forget every session (asks first). |
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "clear", "Clear", id="sessions.clear"),
        Binding("D", "clear_all", "Clear all", id="sessions.clear_all"),
    ]
    COLUMNS: ClassVar[list[Column]] = [
        ("session", "session", 16),
        ("model", "model", 14),
        ("expires", "exp", 3),
        ("bans", "bans", 8),
        ("turns", "n", 4),
    ]
    TITLE = "Sessions"

    def needs_row(self) -> Iterable[str]:
        return ("clear", "clear_all")

    def show(self, snapshot: Snapshot) -> None:
        sessions = snapshot.sticky  # most recently used first
        rows = [(s.key, _cells(s)) for s in sessions[:MAX_ROWS]]
        shown = "" if len(sessions) <= MAX_ROWS else f"{MAX_ROWS} newest of "
        subtitle = f"{shown}{len(sessions)} pinned" if sessions else ""
        if subtitle != self.border_subtitle:
            self.border_subtitle = subtitle
        self.sync(rows)

    def action_clear(self) -> None:
        key = self.cursor_key()
        if key is not None:
            self.gateway_state.clear_sticky(key)
            self.refresh_now()

    def action_clear_all(self) -> None:
        count = self.row_count
        if not count:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.gateway_state.clear_all_sticky()
                self.refresh_now()

        plural = "" if count == 1 else "s"
        question = f"Forget all {count} sticky session{plural}? Their next turns route afresh."
        self.app.push_screen(ConfirmScreen(question), answered)


MAX_ROWS = 100
"""Sessions listed, most recently used first: a busy gateway holds thousands, and a table that
grows by a row a request lays the whole screen out again on every repaint."""


SOURCE_TAGS = {
    "x-session-id": "id",
    "x-claude-code-session-id": "cc",
    "session-id": "cx",
    "thread-id": "cx",
    "x-session-affinity": "oc",
}
"""The header a client named its session in, shortened: Claude Code, Codex, opencode."""


def _cells(session: SessionView) -> tuple[Text, ...]:
    tag = SOURCE_TAGS.get(session.source)
    if tag is None:
        label = Text(session.key[:8], style="dim")
    else:
        label = Text(tag, style="bold")
        label.append(f":{session.key[:5]}", style="dim")
    label.append(" " + fit(" ".join(session.preview.split()), 7))
    model = session.model
    bans = Text(" ".join(f"{p} {seconds(s)}" for p, s in session.banned.items()), "red")
    return (
        label,
        Text(fit(model, 14)) if model else Text("—", style="dim"),
        Text(seconds(session.expires_in), style="dim"),
        bans,
        Text(compact(session.turns), justify="right"),
    )
