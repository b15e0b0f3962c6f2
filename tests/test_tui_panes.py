"""The pools, sessions and cooldowns panes, headless: keys call the state's verbs."""

from __future__ import annotations

import random
from typing import Any

import pytest
from textual.binding import Binding

from tests.factories import FakeClock, make_settings, model
from tests.panes import PaneApp, column, make_state, rows, select
from tui_gateway.domain.errors import ErrorKind
from tui_gateway.domain.state import GatewayState
from tui_gateway.tui.widgets.bars import countdown_bar, interval_bar, sparkline
from tui_gateway.tui.widgets.cooldowns import CooldownsPane
from tui_gateway.tui.widgets.pools import PoolsPane
from tui_gateway.tui.widgets.posteriors import PosteriorsPane
from tui_gateway.tui.widgets.requests import RequestsPane
from tui_gateway.tui.widgets.sessions import MAX_ROWS, ConfirmScreen, SessionsPane

# --- pools ----------------------------------------------------------------------------------


async def test_pools_pane_lists_the_chains_in_order_with_each_models_marks() -> None:
    state = make_state()
    now = state.clock()
    state.sessions.open("s1", mode="auto", preview="hi", now=now)
    state.sessions.pin("s1", "a/1", None, now)
    state.cooldowns.record_failure(
        model="a/2", provider="a", kind=ErrorKind.SERVER, key_id=None, now=now
    )
    state.ban_provider("b")
    pane = PoolsPane()
    async with PaneApp(state, pane).run_test() as pilot:
        await pilot.pause()
        assert pane.border_title == "Pools"
        assert [r.key.value for r in pane.ordered_rows] == ["b/3", "a/1", "a/2", "b/4"]
        assert column(pane, "pool") == ["fast", "bal", "", "smart"]
        assert column(pane, "position") == ["1", "1", "2", "1"]
        assert column(pane, "flags") == ["●B ", "●   s", "● c", "●B "]
        assert column(pane, "protection") == ["skip", "ban", "ban", "skip"]


async def test_pools_pane_flags_how_each_model_would_continue_a_broken_answer() -> None:
    """Issue 11: blank by prefill, `i` instruction, `-` not at all, `!` it refused a prefill."""
    settings = make_settings(
        providers=[{"name": "a", "kind": "simulated"}],
        models=[
            model("a", "pre"),
            model("a", "ins", continuation="instruct"),
            model("a", "no", continuation="none"),
            model("a", "refused"),
        ],
    )
    state = GatewayState(settings, clock=FakeClock(), rng=random.Random(1))
    state.refuse_prefill("a/refused", "400: assistant prefill is not supported")
    state.cooldowns.record_failure(
        model="a/refused", provider="a", kind=ErrorKind.SERVER, key_id=None, now=state.clock()
    )
    pane = PoolsPane()
    async with PaneApp(state, pane).run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert column(pane, "model") == ["a/pre", "a/ins", "a/no", "a/refused"]
        assert column(pane, "flags") == ["●  ", "●  i", "●  -", "● c!"]
        refused = pane.get_row("a/refused")[pane.get_column_index("flags")]
        assert refused.spans[-1].style == "bold yellow" and refused.plain[-1] == "!"


async def test_shift_and_ctrl_keys_move_the_selected_model_and_the_cursor_follows_it() -> None:
    state = make_state()
    pane = PoolsPane()
    async with PaneApp(state, pane).run_test() as pilot:
        await select(pilot, pane, "a/1")
        await pilot.press("shift+down")
        assert state.chain("balanced") == ["a/2", "a/1"]
        assert pane.cursor_key() == "a/1" and pane.cursor_row == 2
        assert column(pane, "model")[1:3] == ["a/2", "a/1"]
        await pilot.press("ctrl+k")
        assert state.chain("balanced") == ["a/1", "a/2"]
        assert pane.cursor_key() == "a/1" and pane.cursor_row == 1
        await pilot.press("ctrl+j", "shift+up")
        assert state.chain("balanced") == ["a/1", "a/2"]
        await pilot.press("shift+up")  # already first: stays
        assert state.chain("balanced") == ["a/1", "a/2"] and pane.cursor_key() == "a/1"
        await pilot.pause(0.1)
        assert pane.cursor_key() == "a/1"


async def test_space_b_and_shift_b_toggle_enabled_and_bans() -> None:
    state = make_state()
    pane = PoolsPane()
    async with PaneApp(state, pane).run_test() as pilot:
        await select(pilot, pane, "a/2")
        await pilot.press("space")
        assert "a/2" in state.controls.pools.disabled
        await pilot.pause(0.1)
        assert pane.get_row("a/2")[2].plain.startswith("○")
        await pilot.press("space")
        assert "a/2" not in state.controls.pools.disabled

        await pilot.press("b")
        assert state.controls.banned_models == {"a/2"}
        await pilot.pause(0.1)
        assert str(pane.get_row("a/2")[2])[1] == "b"
        model_column = pane.get_column_index("model")
        assert pane.get_row("a/2")[model_column].style == "dim strike"
        await pilot.press("b")
        assert state.controls.banned_models == set()
        assert pane.get_row("a/2")[model_column].style == ""

        await pilot.press("B")
        assert state.controls.banned_providers == {"a"}
        await pilot.pause(0.1)
        assert [str(pane.get_row(k)[2])[1] for k in ("a/1", "a/2", "b/3")] == ["B", "B", " "]
        await pilot.press("B")
        assert state.controls.banned_providers == set()
        await pilot.pause(0.1)
        assert str(pane.get_row("a/1")[2])[1] == " "


async def test_p_cycles_the_providers_protection_level() -> None:
    state = make_state()
    pane = PoolsPane()
    async with PaneApp(state, pane).run_test() as pilot:
        await select(pilot, pane, "a/1")
        seen = []
        for _ in range(3):
            await pilot.press("p")
            await pilot.pause(0.1)
            seen.append((state.controls.protection["a"], str(pane.get_row("a/2")[3])))
        assert seen == [("model-skip", "skip"), ("off", "off"), ("provider-ban", "ban")]
        assert state.controls.protection["b"] == "model-skip"


async def test_pool_keys_are_greyed_out_and_do_nothing_without_a_selected_model() -> None:
    state = make_state()
    pane = PoolsPane()
    async with PaneApp(state, pane, tick=False).run_test() as pilot:
        pane.focus()
        await pilot.pause()
        for action in ("move", "toggle_enabled", "ban_model", "ban_provider", "cycle_protection"):
            assert pane.check_action(action, ()) is None
        assert pane.check_action("cursor_down", ()) is True
        await pilot.press("b", "B", "space", "p", "shift+up")
        assert state.controls.banned_models == set() == state.controls.banned_providers
        assert state.controls.pools.disabled == set()
        assert state.controls.protection == {"a": "provider-ban", "b": "model-skip"}
        pane.show(state.snapshot())
        assert pane.check_action("ban_model", ()) is True


# --- sessions -------------------------------------------------------------------------------


def open_sessions(state: GatewayState) -> None:
    now = state.clock()
    state.sessions.open("aaaa1111xyz", mode="auto", preview="Fix the   failing test", now=now)
    state.sessions.pin("aaaa1111xyz", "a/1", None, now)
    state.sessions.open("bbbb2222xyz", mode="auto", preview="hello", now=now + 1)
    state.sessions.ban_provider("bbbb2222xyz", "a", now + 1)


async def test_sessions_pane_shows_hash_words_model_expiry_bans_and_turns() -> None:
    state = make_state()
    open_sessions(state)
    pane = SessionsPane()
    async with PaneApp(state, pane).run_test() as pilot:
        await pilot.pause()
        assert rows(pane) == [
            ["bbbb2222 hello", "—", "30m", "a 3m", "0"],
            ["aaaa1111 Fix th…", "a/1", "30m", "", "1"],
        ]
        assert pane.border_subtitle == "2 pinned"


async def test_a_busy_gateway_lists_its_newest_sessions_and_counts_them_all() -> None:
    state = make_state()
    now = state.clock()
    for n in range(MAX_ROWS + 5):
        state.sessions.open(f"s{n:04d}xxxx", mode="auto", preview=f"q{n}", now=now + n)
    pane = SessionsPane()
    async with PaneApp(state, pane).run_test() as pilot:
        await pilot.pause()
        assert pane.row_count == MAX_ROWS
        assert [r.key.value for r in pane.ordered_rows][0] == f"s{MAX_ROWS + 4:04d}xxxx"
        assert pane.border_subtitle == f"{MAX_ROWS} newest of {MAX_ROWS + 5} pinned"


async def test_d_clears_the_selected_session_and_the_cursor_stays_on_its_row() -> None:
    state = make_state()
    open_sessions(state)
    pane = SessionsPane()
    async with PaneApp(state, pane).run_test() as pilot:
        await select(pilot, pane, "aaaa1111xyz")
        before = dict(pane.rows)
        state.sessions.open("cccc3333xyz", mode="auto", preview="new", now=state.clock() + 2)
        await pilot.pause(0.1)  # a new session on top: the cursor stays on the selected one
        assert [r.key.value for r in pane.ordered_rows][0] == "cccc3333xyz"
        assert pane.cursor_key() == "aaaa1111xyz" and pane.cursor_row == 2
        assert all(pane.rows[key] is row for key, row in before.items())  # reordered, not re-added
        await pilot.press("d")
        assert state.sessions.get("aaaa1111xyz", state.clock()) is None
        assert len(state.sessions) == 2
        await pilot.pause(0.1)
        assert [r.key.value for r in pane.ordered_rows] == ["cccc3333xyz", "bbbb2222xyz"]


async def test_shift_d_asks_first_then_clears_every_session_on_yes() -> None:
    state = make_state()
    open_sessions(state)
    pane = SessionsPane()
    async with PaneApp(state, pane).run_test() as pilot:
        pane.focus()
        for cancel in ("n", "escape"):
            await pilot.press("D")
            assert isinstance(pilot.app.screen, ConfirmScreen)
            await pilot.press(cancel)
            assert not isinstance(pilot.app.screen, ConfirmScreen)
            assert len(state.sessions) == 2
        await pilot.press("D", "y")
        assert len(state.sessions) == 0
        await pilot.pause(0.1)
        assert pane.row_count == 0 and pane.has_class("-empty")
        assert pane.check_action("clear_all", ()) is None
        await pilot.press("D")  # nothing to clear: no question
        assert not isinstance(pilot.app.screen, ConfirmScreen)

        open_sessions(state)
        await pilot.pause(0.1)
        await pilot.press("D", "enter")
        assert len(state.sessions) == 0


async def test_session_keys_are_greyed_out_without_sessions() -> None:
    state = make_state()
    pane = SessionsPane()
    async with PaneApp(state, pane).run_test() as pilot:
        pane.focus()
        await pilot.pause()
        assert pane.check_action("clear", ()) is None
        await pilot.press("d")
        assert pane.cursor_key() is None


# --- cooldowns ------------------------------------------------------------------------------


def cool(state: GatewayState) -> None:
    now = state.clock()
    cooldowns = state.cooldowns
    cooldowns.record_failure(model="a/1", provider="a", kind=ErrorKind.SERVER, key_id=None, now=now)
    cooldowns.record_failure(model="a/1", provider="a", kind=ErrorKind.SERVER, key_id=None, now=now)
    cooldowns.record_failure(
        model="a/2", provider="a", kind=ErrorKind.RATE_LIMITED, key_id="a#2", now=now
    )
    cooldowns.record_failure(
        model="b/3", provider="b", kind=ErrorKind.STALL, key_id=None, now=now + 5
    )


async def test_cooldowns_pane_counts_down_in_place() -> None:
    state = make_state()
    cool(state)
    pane = CooldownsPane()
    async with PaneApp(state, pane).run_test() as pilot:
        await pilot.pause()
        assert rows(pane) == [
            ["a/1", "5xx", "2", "██████ 15s"],
            ["b/3", "stall", "1", "██████ 20s"],
            ["a#2 2", "429", "1", "██████ 60s"],
        ]
        before = dict(pane.rows)
        state.clock.advance(7.5)  # type: ignore[attr-defined]
        await pilot.pause(0.1)
        assert column(pane, "left") == ["███    8s", "█████  13s", "█████▎ 53s"]
        assert all(pane.rows[key] is row for key, row in before.items())  # updated in place


async def test_x_ends_the_selected_models_cooldowns_and_shift_x_ends_all() -> None:
    state = make_state()
    cool(state)
    pane = CooldownsPane()
    async with PaneApp(state, pane).run_test() as pilot:
        await select(pilot, pane, "a/2\x00a#2")
        await pilot.press("x")
        assert {e.model for e in state.cooldowns.entries(state.clock())} == {"a/1", "b/3"}
        await pilot.pause(0.1)
        assert column(pane, "what") == ["a/1", "b/3"]
        assert pane.cursor_key() == "b/3\x00"  # the row that took its place
        await pilot.press("X")
        assert state.cooldowns.entries(state.clock()) == []
        await pilot.pause(0.1)
        assert pane.row_count == 0
        assert pane.check_action("clear", ()) is None and pane.check_action("clear_all", ()) is None
        await pilot.press("x", "X")


# --- shared ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("owner", "prefix"),
    [
        (PoolsPane, "pools"),
        (PosteriorsPane, "posteriors"),
        (RequestsPane, "requests"),
        (SessionsPane, "sessions"),
        (CooldownsPane, "cooldowns"),
        (ConfirmScreen, "confirm"),
    ],
)
def test_every_binding_has_an_id_and_an_action(owner: type[Any], prefix: str) -> None:
    for binding in owner.BINDINGS:
        assert isinstance(binding, Binding)
        assert binding.id is not None and binding.id.startswith(prefix + ".")
        assert callable(getattr(owner, "action_" + binding.action.split("(")[0]))


def test_bars_draw_shares_of_their_width() -> None:
    assert str(countdown_bar(7.5, 15.0)) == "███    8s"
    assert str(countdown_bar(0.0, 15.0)) == "       0s"
    assert str(countdown_bar(0.2, 15.0)) == "▏      1s"
    assert str(countdown_bar(150.0, 300.0)) == "███    2m"
    assert str(interval_bar(0.55, 0.3, 0.75)) == "···▒▒█▒▒··"
    assert str(sparkline([1.0, 1.0])) == "▁▁"
    assert str(sparkline([0.0, 7.0, 3.5], width=2)) == "█▁"
    assert str(sparkline([0.0, 7.0, 3.5])) == "▁█▅"
