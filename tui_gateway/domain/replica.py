"""The state's shared parts as one replica: local changes go to a listener, others' come in.

When gateways share state (the cluster mirror, `tui_gateway/cluster/`), this is the domain's
side of the seam: `attach` hands every shared part the same listener, `apply` routes a change
made elsewhere to its part and does what the part's own verb would have done next (routing
forgets what it derived, the screen and the saved controls hear of it), and `changes` is the
whole shared picture, to seed a store that lost it. It does no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from .changes import Change, Listener
from .controls import Controls
from .conversations import ConversationIndex
from .cooldowns import Cooldowns
from .events import ClusterHealthChanged, ControlsChanged, EventBus, Note
from .flows import Flows
from .learning import Learner
from .posteriors import BucketRow, PosteriorBook
from .quotas import Quotas, UsageRow
from .routing import Router
from .sticky import StickySessions

__all__ = ["ClusterStatus", "Replica"]


@dataclass(slots=True)
class ClusterStatus:
    """How the link to the shared store is doing, for the snapshot (no cluster: `url` "")."""

    url: str = ""
    """Where the shared store is, its password masked."""
    connected: bool = False
    last_error: str | None = None


class Shared(Protocol):
    """The parts a replica reads and changes (`GatewayState` has them)."""

    clock: Callable[[], float]
    bus: EventBus
    controls: Controls
    cooldowns: Cooldowns
    sessions: StickySessions
    conversations: ConversationIndex
    learner: Learner
    book: PosteriorBook
    quotas: Quotas
    router: Router
    flows: Flows
    cluster: ClusterStatus


class Replica:
    """Routes changes between the state's shared parts and the mirror that carries them."""

    def __init__(self, state: Shared) -> None:
        self._state = state

    def _parts(self) -> tuple[Cooldowns | StickySessions | ConversationIndex | Controls
                              | Learner | PosteriorBook | Quotas, ...]:  # fmt: skip
        s = self._state
        return (s.cooldowns, s.sessions, s.conversations, s.controls, s.learner, s.book, s.quotas)

    def attach(self, listener: Listener | None) -> None:
        """Every shared part reports its changes to `listener` (None: to nobody)."""
        for part in self._parts():
            part.listener = listener

    def apply(self, change: Change) -> None:
        """A change made on another gateway; reported to nobody (it came from the store)."""
        s = self._state
        match change.part:
            case Cooldowns.PART:
                s.cooldowns.apply(change)
            case StickySessions.PART:
                s.sessions.apply(change)
            case ConversationIndex.PART:
                s.conversations.apply(change)
            case Controls.PART:
                line = s.controls.apply(change)
                self._controls_applied(line and f"{line} (on another gateway)")
            case Learner.PART:
                s.learner.apply(change)
            case PosteriorBook.PART:
                s.book.apply(change)
                s.router.score_bases.forget(str(change.value.get("model", "")) or None)
            case Quotas.PART:
                s.quotas.apply(change)
            case Quotas.USE_PART:
                s.quotas.absorb(change, s.clock())

    def settle(self, change: Change) -> None:
        """This gateway's own last value of a key, back through the feed: taken again, as it
        is on every other gateway, in case another's change to the key was taken since (it
        came earlier in the feed). Quiet: nothing changes when the value is the same already."""
        controls = self._state.controls
        if change.part != Controls.PART:
            self.apply(change)  # a set value (echoes.py): taking it again is a no-op or a fix
        elif change.value["picture"] != controls.saved():
            controls.apply(change)
            self._controls_applied("")  # this gateway's own change: its line was said

    def _controls_applied(self, line: str) -> None:
        """What follows new controls: routing forgets what it derived, the screen and the
        saved controls hear of it, and requests on a model now banned move on."""
        self._state.router.invalidate()
        self._state.bus.publish(ControlsChanged(line))
        self._move_on_banned()

    def _move_on_banned(self) -> None:
        """A ban made elsewhere moves this gateway's requests on it at once, as a local one."""
        controls, flows = self._state.controls, self._state.flows
        models, providers = controls.banned_models, controls.banned_providers
        if moved := flows.move_on_all(lambda f: f.model in models or f.provider in providers):
            self._state.bus.publish(Note(f"banned on another gateway: {', '.join(moved)} moved on"))

    def load_buckets(self, rows: Iterable[BucketRow]) -> None:
        """The shared store's posterior buckets replace this gateway's."""
        self._state.learner.load_history(rows)

    def changes(self) -> list[Change]:
        """The whole shared picture, without the posterior buckets (see `buckets`)."""
        s = self._state
        now = s.clock()
        return [
            *s.cooldowns.changes(now), *s.sessions.changes(now), *s.conversations.changes(now),
            *s.controls.changes(), *s.learner.changes(), *s.quotas.changes(now),
        ]  # fmt: skip

    def buckets(self) -> list[BucketRow]:
        return self._state.book.rows()

    def quota_use(self) -> list[Change]:
        """Every quota count in its window, as counts to add (to seed a store)."""
        return self._state.quotas.held_use(self._state.clock())

    def load_quota_use(self, rows: Iterable[UsageRow]) -> None:
        """The shared store's quota totals replace this gateway's for the buckets they name."""
        self._state.quotas.load_use(rows, self._state.clock())

    def link_changed(self, *, connected: bool, error: str | None = None) -> bool:
        """The store was reached (and the state resynced) or lost: note it, and say so when
        that is news (not on every failed retry). Returns whether it was said."""
        status = self._state.cluster
        news = status.connected != connected or (not connected and status.last_error is None)
        status.connected = connected
        if error is not None:
            status.last_error = error
        if news:
            self._state.bus.publish(ClusterHealthChanged(status.url, connected, error))
        return news
