"""Command palette entries for every key action of the panes, the screen and the app.

The names come from the bindings themselves ("Pools: Ban model"), through the same
`collect_help` that builds the help screen, so a key, its help line and its palette entry
cannot disagree. Only actions the current state allows are offered: `check_action` returning
False or None (greyed in the footer) leaves the command out. Keys inherited from Textual's own
widgets (cursor and scroll keys) are not offered; the built-in system commands cover the rest.

Wiring, in the app: `COMMANDS = App.COMMANDS | {GatewayCommands}`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.dom import DOMNode
from textual.screen import Screen
from textual.widget import Widget

from .help import collect_help, owner_title

__all__ = [
    "GatewayCommand",
    "GatewayCommands",
    "OffersCommands",
    "PaletteEntry",
    "palette_commands",
]


@dataclass(frozen=True, slots=True)
class PaletteEntry:
    """A command a widget offers beyond its keys."""

    name: str
    """Without the owner: "Move the quietest request on"."""
    help: str
    action: str
    """An action of the widget, with its parameters: `skip('1a2b3c')`."""


@runtime_checkable
class OffersCommands(Protocol):
    """A widget with palette commands of its own, for the state it shows now."""

    def palette_entries(self) -> Sequence[PaletteEntry]: ...


@dataclass(frozen=True, slots=True, eq=False)
class GatewayCommand:
    """One palette entry: a binding's action on the node that owns it."""

    name: str
    """"Owner: Description", e.g. "Pools: Ban model"."""
    help: str
    """The keys that do the same."""
    node: DOMNode
    action: str

    def run(self) -> Awaitable[bool]:
        """Run the action as its key would, with the owner as the default namespace."""
        return self.node.app.run_action(self.action, self.node)


def palette_commands(screen: Screen[Any]) -> list[GatewayCommand]:
    """The commands that make sense on `screen` right now, focused widget first."""
    commands: list[GatewayCommand] = []
    seen: set[tuple[int, str]] = set()
    for owner in collect_help(screen):
        for key in owner.keys:
            if not (key.ours and key.enabled) or (id(owner.node), key.action) in seen:
                continue
            seen.add((id(owner.node), key.action))
            keys = " or ".join(key.keys)
            commands.append(
                GatewayCommand(
                    name=f"{owner.title}: {key.description}",
                    help=f"key: {keys}",
                    node=owner.node,
                    action=key.action,
                )
            )
    for node in screen.walk_children(Widget):
        if isinstance(node, OffersCommands) and node.display:
            title = owner_title(node)
            commands += [
                GatewayCommand(f"{title}: {e.name}", e.help, node, e.action)
                for e in node.palette_entries()
            ]
    return commands


class GatewayCommands(Provider):
    """Offers each pane's and the app's actions by name; choosing one runs the action."""

    async def discover(self) -> Hits:
        for command in palette_commands(self.screen):
            yield DiscoveryHit(command.name, command.run, text=command.name, help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in palette_commands(self.screen):
            score = matcher.match(command.name)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(command.name),
                    command.run,
                    text=command.name,
                    help=command.help,
                )
