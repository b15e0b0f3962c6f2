"""A help screen generated from the real key bindings, so it cannot drift from them.

`collect_help(screen)` reads the bindings of the focused widget (and the containers around it),
of every other pane on the screen that can take focus, of the screen and of the app, as Textual's
`Screen.active_bindings` gives them: the keymap applied, `check_action` asked, and keys a nearer
widget takes (its own binding, or an `Input` typing it) left out. `HelpScreen` renders that as
one Markdown page, with a widget class's `HELP` text as prose. The command palette
(`commands.py`) reads the same data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import ActiveBinding, Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen
from textual.widget import Widget
from textual.widgets import Markdown

__all__ = ["HelpScreen", "KeyHelp", "OwnerHelp", "collect_help", "help_markdown"]


@dataclass(frozen=True, slots=True)
class KeyHelp:
    """One action and the keys bound to it."""

    keys: tuple[str, ...]
    """As the footer shows them (`App.get_key_display`)."""
    action: str
    description: str
    enabled: bool
    """False while `check_action` returns None: shown, but it would do nothing now."""
    shown: bool
    """`Binding.show`: False for navigation keys kept out of the footer."""
    ours: bool
    """Declared by a class of this project, not inherited from a Textual widget."""


@dataclass(frozen=True, slots=True, eq=False)
class OwnerHelp:
    """The keys of one widget, screen or app."""

    node: DOMNode
    title: str
    prose: str
    focused: bool
    keys: tuple[KeyHelp, ...]


def collect_help(screen: Screen[Any]) -> list[OwnerHelp]:
    """Every owner of bindings on `screen`, focused chain first, then panes, screen and app."""
    app = screen.app
    focused = screen.focused
    chain: list[DOMNode] = []
    if focused is not None:
        chain = [n for n in focused.ancestors_with_self if n is not screen and n is not app]
    panes = [
        w
        for w in screen.walk_children(Widget)
        if w not in chain and _takes_keys(w) and _displayed(w, screen)
    ]
    active = _active_bindings(screen, focused)
    owners: list[OwnerHelp] = []
    for node in [*chain, *panes, screen, app]:
        if node in panes:  # its keys as they are once focus is on it (or inside it)
            keys = _keys_of(node, _active_bindings(screen, _focus_target(node)))
        else:
            keys = _keys_of(node, active)
        if keys:
            prose = (getattr(node, "HELP", None) or "").strip()
            owners.append(OwnerHelp(node, owner_title(node), prose, node is focused, keys))
    return owners


def owner_title(node: DOMNode) -> str:
    """A short name for a binding's owner: its border title, else its class name."""
    if isinstance(node, App):
        return "App"
    if isinstance(node, Widget) and node.border_title:
        return Content.from_markup(node.border_title).plain
    name = type(node).__name__
    for suffix in ("Pane", "Screen", "Widget"):
        if name.endswith(suffix) and name != suffix:
            return name.removesuffix(suffix)
    return name


def help_markdown(owners: list[OwnerHelp]) -> str:
    """The help page: one section per owner, a table of its keys, prose above it."""
    parts: list[str] = []
    for owner in owners:
        parts += [f"## {owner.title}" + (" (focused)" if owner.focused else ""), ""]
        if owner.prose:
            parts += [owner.prose, ""]
        main = [k for k in owner.keys if k.shown]
        if main:
            parts += ["| Key | Action |", "|---|---|"]
            for k in main:
                note = "" if k.enabled else " *(not now)*"
                parts.append(f"| {_keys_md(k.keys)} | {_cell(k.description)}{note} |")
            parts.append("")
        # Keys kept out of the footer: this project's own before the navigation Textual adds.
        hidden = sorted((k for k in owner.keys if not k.shown), key=lambda k: not k.ours)
        if hidden:
            also = ", ".join(f"{_keys_md(k.keys)} {_cell(k.description)}" for k in hidden)
            parts += [f"Also: {also}.", ""]
    return "\n".join(parts)


class HelpScreen(ModalScreen[None]):
    """Keys of the screen beneath, generated; `escape`, `?` or `q` closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "dismiss", "Close help", id="help.close"),
    ]
    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
        background: $background 60%;
    }
    HelpScreen > VerticalScroll {
        width: 90%;
        max-width: 100;
        height: 90%;
        border: round $primary;
        border-title-color: $primary;
        background: $surface;
        padding: 0 1;
    }
    HelpScreen Markdown {
        background: $surface;
    }
    """

    def __init__(self, target: Screen[Any] | None = None) -> None:
        """Args:
        target: The screen whose keys to list; by default the one this screen covers.
        """
        super().__init__()
        self._target = target
        self.owners: list[OwnerHelp] = []
        self.markdown = ""

    def compose(self) -> ComposeResult:
        target = self._target
        if target is None:  # pushed: this screen is on top, the one it covers is below
            stack = self.app.screen_stack
            target = stack[-2] if len(stack) > 1 and stack[-1] is self else self.app.screen
        self.owners = collect_help(target)
        self.markdown = help_markdown(self.owners)
        with VerticalScroll() as scroll:
            scroll.border_title = "Help"
            scroll.border_subtitle = "escape / ? / q to close"
            yield Markdown(self.markdown)


def _takes_keys(widget: Widget) -> bool:
    # A widget's keys fire only while focus is on it or inside it.
    return widget.can_focus or any(child.can_focus for child in widget.walk_children(Widget))


def _displayed(widget: Widget, screen: Screen[Any]) -> bool:
    return all(n.display for n in widget.ancestors_with_self if n is not screen.app)


def _focus_target(widget: Widget) -> Widget:
    """Where focus goes for `widget`'s keys to apply: itself, else its first focusable child."""
    if widget.can_focus:
        return widget
    return next(w for w in widget.walk_children(Widget) if w.can_focus)


def _active_bindings(screen: Screen[Any], focus: Widget | None) -> dict[str, ActiveBinding]:
    """`screen.active_bindings` as they are while `focus` has the focus.

    Textual has no public way to ask for a widget's effective keys other than through the
    focused widget, so for a pane without focus this gives the screen that focus for the length
    of this (synchronous) call with `set_reactive`, which runs no watchers, and puts it back.
    """
    focused = screen.focused
    if focus is focused:
        return screen.active_bindings
    screen.set_reactive(Screen.focused, focus)
    try:
        return screen.active_bindings
    finally:
        screen.set_reactive(Screen.focused, focused)


def _keys_of(node: DOMNode, active: dict[str, ActiveBinding]) -> tuple[KeyHelp, ...]:
    """The effective bindings `node` owns among `active`, grouped by action."""
    ours = _own_actions(node)
    grouped: dict[tuple[str, str], list[ActiveBinding]] = {}
    for found in active.values():
        binding = found.binding
        if found.node is not node or not binding.description:
            continue  # another owner's, or one of Textual's fallbacks such as ctrl+c "help_quit"
        grouped.setdefault((binding.action, binding.description), []).append(found)
    return tuple(
        KeyHelp(
            keys=tuple(dict.fromkeys(node.app.get_key_display(f.binding) for f in group)),
            action=action,
            description=description,
            enabled=all(f.enabled for f in group),
            shown=any(f.binding.show for f in group),
            ours=action in ours,
        )
        for (action, description), group in grouped.items()
    )


def _own_actions(node: DOMNode) -> set[str]:
    """Actions bound by classes outside Textual itself, in `node`'s class hierarchy."""
    own: set[str] = set()
    for cls in type(node).__mro__:
        declared = cls.__dict__.get("BINDINGS")
        if declared and not cls.__module__.startswith("textual."):
            own.update(b.action for b in Binding.make_bindings(declared))
    return own


def _keys_md(keys: tuple[str, ...]) -> str:
    return " ".join("`" + key.replace("`", "'") + "`" for key in keys)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
