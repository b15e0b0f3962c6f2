"""The pools pane: each pool's fallback chain, and the keys that reorder, switch off and ban;
`v` switches it to the quotas view (quota_rows.py), each key's use of each limit."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType

from ...config import PROTECTION_LEVELS
from ...domain.views import Bans, KeyView, PoolEntry, Snapshot
from .bars import Column, KeyedTable
from .quota_rows import QUOTA_COLUMNS, quota_rows

__all__ = ["PoolsPane"]

_PROTECTION_LABELS = {"provider-ban": "ban", "model-skip": "skip", "off": "off"}
_PROTECTION_STYLES = {"provider-ban": "bold", "model-skip": "", "off": "dim"}
_POOL_LABELS = {"balanced": "bal"}
_CONTINUATION_FLAGS = {"prefill": " ", "instruct": "i", "none": "-"}
"""How a model would finish an answer another model broke off, in the flags (prefill, the
default, is blank); `!` replaces it when the model refused a prefill."""
LEGEND = "● on b ban c cool q quota s sticky v quotas"
QUOTAS_LEGEND = "↓ lowered by a 429  v pools"
_NO_LIMITS = "no limits: set limits = { rpm = … } on a model"


class PoolsPane(KeyedTable):
    """The fast, balanced and smart chains in fallback order, one row per model.

    The `flags` column reads: `●`/`○` enabled or not, `b` the model is banned (`B`: its whole
    provider is; `k`: the upstream rejected all its provider's API keys, so it is skipped until a
    key check passes, `K`), `c` cooling down (`q`: every key of it is at its quota), then its
    continuation (below), `s` conversations pinned to it (with their count past one).
    Then how the model would finish an answer another model broke off: blank by prefill (it is
    handed the text so far as its own, the default), `i` by instruction, `-` not at all, `!` it
    answered a prefill with a 400 (remembered across restarts) and is instructed from then on.
    `prot` is the protection level of the model's provider. (`k` and the continuation marks have
    no room in the legend at 100 columns, so only `HELP` explains them; a column of their own
    would push the demo's model names out of a 100-column pane.)

    | Key | Binding id | Action |
    | :- | :- | :- |
    | ctrl+k, shift+up | `pools.move_up` | Move the model up its chain. |
    | ctrl+j, shift+down | `pools.move_down` | Move the model down its chain. |
    | space | `pools.toggle_enabled` | Enable or disable the model. |
    | b | `pools.ban_model` | Ban or unban the model. |
    | B | `pools.ban_provider` | Ban or unban the model's provider. |
    | p | `pools.cycle_protection` | Provider protection: provider-ban, model-skip, off. |
    | v | `pools.quotas` | Switch between the pools and the quotas view. |

    In the quotas view the keys act on the model of the row under the cursor (moving is off:
    the chain is not shown).
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+k,shift+up", "move(-1)", "Up", id="pools.move_up"),
        Binding("ctrl+j,shift+down", "move(1)", "Down", id="pools.move_down"),
        Binding("space", "toggle_enabled", "On/off", id="pools.toggle_enabled"),
        Binding("b", "ban_model", "Ban", id="pools.ban_model"),
        Binding("B", "ban_provider", "Ban provider", id="pools.ban_provider"),
        Binding("p", "cycle_protection", "Protection", id="pools.cycle_protection"),
        Binding("v", "toggle_quotas", "Quotas/pools", id="pools.quotas"),
    ]
    COLUMNS: ClassVar[list[Column]] = [
        ("pool", "pool", 5),
        ("position", "#", 2),
        ("flags", "flags", 6),
        ("protection", "prot", 4),
        ("model", "model", None),
    ]
    TITLE = "Pools"
    HELP = (
        "Each pool's fallback chain. Flags: `●` on, `b` banned, `B` provider banned, `k` the "
        "upstream rejected every API key of the provider (skipped until `K` finds one that passes"
        " a key check), `c` cooling "
        "down (`q` at its quota on every key), `s` conversations pinned to the model. After "
        "`c`, how the model would finish an"
        " answer another model broke off: blank by prefill, `i` by instruction, `-` it cannot,"
        " `!` it refused a prefill (HTTP 400, remembered across restarts) and is instructed"
        " from then on. `v` shows the quotas instead: per key, each limit as used/limit with "
        "a bar and the time until it frees up; `↓` marks a limit a 429 lowered."
    )

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self.border_subtitle = LEGEND
        self._entries: dict[str, PoolEntry] = {}
        """Model -> its entry in the last snapshot's pools (what the keys act on)."""
        self._bans = Bans((), ())
        self._protection: dict[str, str] = {}
        self.quotas_view = False
        """Showing each key's quotas (`QUOTA_COLUMNS`) rather than the chains."""
        self._row_models: dict[str, str] = {}
        """Quotas view: row key -> the model the row is about (what the keys act on)."""

    def needs_row(self) -> Iterable[str]:
        return ("move", "toggle_enabled", "ban_model", "ban_provider", "cycle_protection")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "move" and self.quotas_view:
            return None  # greyed out: the chain it would move in is not shown
        if action in self.needs_row() and self._target() is None:
            return None
        return super().check_action(action, parameters)

    def show(self, snapshot: Snapshot) -> None:
        self._bans, self._protection = snapshot.bans, snapshot.protection
        self._entries = {e.model: e for chain in snapshot.pools.values() for e in chain}
        if self.quotas_view:
            self._show_quotas(snapshot)
        else:
            self._show_pools(snapshot)

    def _show_quotas(self, snapshot: Snapshot) -> None:
        rows, models = [], {}
        for key, cells, model in quota_rows(snapshot.quotas):
            rows.append((key, cells))
            if model is not None:
                models[key] = model
        if not rows:
            blank = Text("")
            rows.append(("none", (blank, blank, blank, blank, Text(_NO_LIMITS, style="dim"))))
        self._row_models = models
        self.sync(rows)

    def action_toggle_quotas(self) -> None:
        self.quotas_view = not self.quotas_view
        self.use_columns(QUOTA_COLUMNS if self.quotas_view else self.COLUMNS)
        self.border_subtitle = QUOTAS_LEGEND if self.quotas_view else LEGEND
        self.refresh_now()
        self.refresh_bindings()

    def _show_pools(self, snapshot: Snapshot) -> None:
        bans, protection = snapshot.bans, snapshot.protection
        protection = self._protection = snapshot.protection
        banned_models, banned_providers = set(bans.models), set(bans.providers)
        pinned = Counter(s.model for s in snapshot.sticky if s.model)
        keyless = _keyless(snapshot.keys)
        rows: list[tuple[str, tuple[Text, ...]]] = []
        for pool, chain in snapshot.pools.items():
            for entry in chain:
                key, provider = entry.model, entry.provider
                flags = _flags(
                    entry,
                    model_banned=key in banned_models,
                    provider_banned=provider in banned_providers,
                    keyless=provider in keyless,
                    pinned=pinned[key],
                )
                level = protection.get(provider, "")
                label = _POOL_LABELS.get(pool, pool) if entry.position == 0 else ""
                rows.append((key, (
                    Text(label, style="bold"),
                    Text(str(entry.position + 1), style="dim", justify="right"),
                    flags,
                    Text(_PROTECTION_LABELS.get(level, level), _PROTECTION_STYLES.get(level, "")),
                    Text(key, style=_model_style(entry)),
                )))  # fmt: skip
        self.sync(rows)

    def _target(self) -> PoolEntry | None:
        key = self.cursor_key()
        if key is not None and self.quotas_view:
            key = self._row_models.get(key)
        return None if key is None else self._entries.get(key)

    def action_move(self, delta: int) -> None:
        entry = self._target()
        if entry is not None:
            self.gateway_state.move_in_pool(entry.model, delta)
            self.refresh_now()  # the cursor follows the model to its new row

    def action_toggle_enabled(self) -> None:
        entry = self._target()
        if entry is not None:
            self.gateway_state.set_enabled(entry.model, not entry.enabled)
            self.refresh_now()

    def action_ban_model(self) -> None:
        entry = self._target()
        if entry is None:
            return
        state, key = self.gateway_state, entry.model
        if key in self._bans.models:
            state.unban_model(key)
        else:
            state.ban_model(key)
        self.refresh_now()

    def action_ban_provider(self) -> None:
        entry = self._target()
        if entry is None:
            return
        state, provider = self.gateway_state, entry.provider
        if provider in self._bans.providers:
            state.unban_provider(provider)
        else:
            state.ban_provider(provider)
        self.refresh_now()

    def action_cycle_protection(self) -> None:
        entry = self._target()
        if entry is None:
            return
        provider = entry.provider
        level = self._protection.get(provider, PROTECTION_LEVELS[-1])
        after = PROTECTION_LEVELS[(PROTECTION_LEVELS.index(level) + 1) % len(PROTECTION_LEVELS)]
        self.gateway_state.set_protection(provider, after)
        self.refresh_now()


def _keyless(keys: Mapping[str, Sequence[KeyView]]) -> set[str]:
    """Providers whose API keys were all rejected."""
    return {p for p, ring in keys.items() if ring and all(k.status != "ok" for k in ring)}


def _flags(
    entry: PoolEntry,
    *,
    model_banned: bool,
    provider_banned: bool,
    keyless: bool,
    pinned: int,
) -> Text:
    text = Text()
    text.append("●" if entry.enabled else "○", style="green" if entry.enabled else "dim")
    # One slot for why the model is out of rotation, the user's bans before the upstream's.
    if provider_banned or model_banned:
        text.append("B" if provider_banned else "b", style="bold red")
    else:
        text.append("k" if keyless else " ", style="bold magenta")
    text.append("c" if entry.cooling else "q" if entry.at_quota else " ", style="yellow")
    if entry.prefill_refused:
        text.append("!", style="bold yellow")
    elif entry.continuation != "prefill" or pinned:  # a blank slot only to keep `s` in line
        text.append(_CONTINUATION_FLAGS.get(entry.continuation, "?"), style="cyan")
    if pinned:
        count = "" if pinned == 1 else str(pinned) if pinned < 10 else "+"
        text.append("s" + count, style="bold")
    return text


def _model_style(entry: PoolEntry) -> str:
    if entry.banned:
        return "dim strike"
    if not entry.enabled or not entry.usable:
        return "dim"
    return "yellow" if entry.cooling or entry.at_quota else ""
