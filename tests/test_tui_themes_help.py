"""Themes, the generated help screen and the command palette, on a small stand-in app.

The stand-in has two focusable panes with their own keys, so these tests do not depend on the
real app's panes while they change.
"""

from __future__ import annotations

import tomllib
from pathlib import Path, PurePath
from typing import Any, ClassVar

import pytest
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.command import CommandPalette, DiscoveryHit, Hit
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Footer, Static

from tui_gateway.tui import themes
from tui_gateway.tui.commands import GatewayCommands, palette_commands
from tui_gateway.tui.help import HelpScreen, collect_help
from tui_gateway.tui.themes import (
    DEFAULT_THEME,
    THEMES,
    check_tcss,
    install_themes,
    load_theme_files,
    next_theme,
    pick_theme,
    themes_dir,
)

ROOT = Path(__file__).resolve().parent.parent


class PoolsPane(Widget, can_focus=True):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("b", "ban", "Ban model", id="pools.ban"),
        Binding("shift+up", "move(-1)", "Move up", id="pools.move_up"),
    ]
    HELP = "The fallback order of each pool."
    selected: reactive[str | None] = reactive(None, bindings=True)

    def __init__(self) -> None:
        super().__init__(id="pools", classes="pane")
        self.calls: list[str] = []

    def on_mount(self) -> None:
        self.border_title = "Pools"

    def render(self) -> str:
        return "fast: a, b"

    def action_ban(self) -> None:
        self.calls.append(f"ban {self.selected}")

    def action_move(self, step: int) -> None:
        self.calls.append(f"move {step}")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "ban" and self.selected is None:
            return None  # greyed out: nothing to ban
        return True


class RequestsPane(Widget, can_focus=True):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Details", id="requests.open"),
        Binding("f", "toggle_follow", "Follow newest", show=False, id="requests.follow"),
    ]

    def __init__(self) -> None:
        super().__init__(id="requests", classes="pane")
        self.calls: list[str] = []

    def on_mount(self) -> None:
        self.border_title = "Requests"

    def render(self) -> str:
        return "no requests"

    def action_open(self) -> None:
        self.calls.append("open")

    def action_toggle_follow(self) -> None:
        self.calls.append("follow")


class StandIn(App[None]):
    COMMANDS = App.COMMANDS | {GatewayCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("t", "next_theme", "Theme", id="app.theme"),
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("q", "quit", "Quit", id="app.quit"),
    ]

    def __init__(self, theme: str | None = None, css: list[Path] | None = None) -> None:
        paths, self.theme_problems = load_theme_files()
        css_path: list[str | PurePath] = [*(paths if css is None else css)]
        super().__init__(css_path=css_path)
        self.theme_problems += install_themes(self, theme)

    def compose(self) -> ComposeResult:
        yield Static("done 0", id="status")
        yield PoolsPane()
        yield RequestsPane()
        yield Footer()

    def action_next_theme(self) -> None:
        self.theme = next_theme(self.theme)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())


# ---------------------------------------------------------------- themes


def test_theme_files_load_from_the_checkout_without_problems() -> None:
    assert themes_dir() == ROOT / "themes"
    paths, problems = load_theme_files()
    assert problems == []
    assert [p.name for p in paths] == ["gateway.tcss", "layout.tcss", "dark.tcss", "light.tcss"]


def test_wheel_ships_the_themes_folder_where_themes_dir_looks_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mapping = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert mapping["themes"] == "tui_gateway/themes"
    installed = tmp_path / "site-packages" / "tui_gateway"
    (installed / "themes").mkdir(parents=True)
    monkeypatch.setattr(themes, "_PACKAGE", installed)
    assert themes_dir() == installed / "themes"


@pytest.mark.parametrize(
    ("css", "expected"),
    [
        ("Screen { color: red; ", "Unexpected end of file"),
        ("Screen { color: $no-such-colour; }", "undefined variable '$no-such-colour'"),
        ("Screen {\n    colr: red;\n}", "2:5: Invalid CSS property 'colr'"),
        ("}}}{{", "Expected rule or selector"),
    ],
)
def test_a_broken_theme_file_is_a_warning_and_is_left_out(
    tmp_path: Path, css: str, expected: str
) -> None:
    broken = tmp_path / "mine.tcss"
    broken.write_text(css)
    paths, problems = load_theme_files(extra=[broken])
    assert broken not in paths
    assert [p.name for p in paths] == ["gateway.tcss", "layout.tcss", "dark.tcss", "light.tcss"]
    [problem] = problems
    assert str(broken) in problem and expected in problem


def test_a_missing_theme_file_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "dark.tcss").write_text("Screen { background: $background; }")
    paths, problems = load_theme_files(("gateway.tcss",), directory=tmp_path)
    assert paths == [tmp_path / "dark.tcss"]
    assert len(problems) == 2
    assert all("missing" in p for p in problems)
    assert check_tcss(tmp_path / "dark.tcss") is None


async def test_the_app_starts_with_a_broken_user_file_and_reports_it(tmp_path: Path) -> None:
    broken = tmp_path / "mine.tcss"
    broken.write_text("Screen { color: $nope; }")
    paths, problems = load_theme_files(extra=[broken])
    app = StandIn(css=paths)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.is_running
    assert len(problems) == 1


def test_next_theme_cycles_through_ours_and_returns_from_others() -> None:
    assert list(THEMES) == ["gateway-dark", "gateway-light"]
    assert next_theme("gateway-dark") == "gateway-light"
    assert next_theme("gateway-light") == "gateway-dark"
    assert next_theme("nord") == "gateway-dark"


def test_an_unknown_theme_name_falls_back_with_a_warning() -> None:
    assert pick_theme(None, THEMES) == (DEFAULT_THEME, None)
    assert pick_theme("gateway-light", THEMES) == ("gateway-light", None)
    name, warning = pick_theme("solarised", THEMES)
    assert name == DEFAULT_THEME and warning is not None and "solarised" in warning


async def test_both_themes_apply_and_t_switches_between_them() -> None:
    app = StandIn()
    async with app.run_test(size=(100, 30)) as pilot:
        assert app.theme == "gateway-dark" and app.theme_problems == []
        pools = app.query_one(PoolsPane)
        for name in ("gateway-dark", "gateway-light"):
            if app.theme != name:
                await pilot.press("t")
                await pilot.pause()
            theme = THEMES[name]
            assert app.theme == name
            assert app.has_class("-dark-mode" if theme.dark else "-light-mode")
            assert app.theme_variables["primary"] == theme.primary
            assert app.theme_variables["background"] == theme.background
            _, border_colour = pools.styles.border_top
            assert border_colour.hex.upper() == theme.primary.upper()  # set by dark/light.tcss
            assert app.screen.styles.background.hex.upper() == theme.background.upper()


async def test_unknown_theme_on_the_command_line_starts_the_default_theme() -> None:
    app = StandIn(theme="no-such-theme")
    async with app.run_test(size=(80, 24)):
        assert app.theme == DEFAULT_THEME
        assert len(app.theme_problems) == 1


# ---------------------------------------------------------------- help


async def test_help_lists_every_binding_of_both_panes_and_the_app() -> None:
    app = StandIn()
    async with app.run_test(size=(100, 40)) as pilot:
        app.query_one(PoolsPane).focus()
        await pilot.press("question_mark")
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        text = help_screen.markdown
        for owner in (app.query_one(PoolsPane), app.query_one(RequestsPane), app):
            for binding in owner._bindings.key_to_bindings.values():
                for b in binding:
                    assert f"`{app.get_key_display(b)}`" in text, b
                    assert b.description in text, b
        assert "## Pools (focused)" in text and "## Requests" in text and "## App" in text
        assert "The fallback order of each pool." in text  # PoolsPane.HELP
        assert "Ban model *(not now)*" in text  # check_action returned None
        assert "Also: `f` Follow newest" in text  # show=False keys are listed too
        titles = [o.title for o in help_screen.owners]
        assert titles.index("Pools") < titles.index("Requests") < titles.index("App")


@pytest.mark.parametrize("key", ["escape", "question_mark", "q"])
async def test_help_closes_with_escape_question_mark_or_q(key: str) -> None:
    app = StandIn()
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press(key)
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)
        assert app.is_running  # `q` closed help, it did not quit


async def test_help_follows_the_keymap() -> None:
    app = StandIn()
    async with app.run_test(size=(100, 40)):
        app.set_keymap({"pools.ban": "x"})
        [pools] = [o for o in collect_help(app.screen) if o.title == "Pools"]
        [ban] = [k for k in pools.keys if k.action == "ban"]
        assert ban.keys == ("x",)


async def test_help_lists_an_unfocused_panes_keys_as_they_work_once_focused() -> None:
    app = StandIn()
    async with app.run_test(size=(100, 40)) as pilot:
        requests = app.query_one(RequestsPane)
        requests.focus()
        await pilot.pause()
        app.set_keymap({"pools.ban": "x"})
        owners = collect_help(app.screen)
        [pools] = [o for o in owners if o.title == "Pools"]
        [ban] = [k for k in pools.keys if k.action == "ban"]
        assert not pools.focused and ban.keys == ("x",) and not ban.enabled
        assert app.screen.focused is requests  # asking moved no focus


def test_every_help_screen_binding_has_an_action() -> None:
    for binding in Binding.make_bindings(HelpScreen.BINDINGS):
        assert hasattr(HelpScreen, f"action_{binding.action}"), binding


# ---------------------------------------------------------------- palette


async def _hits(provider: GatewayCommands, query: str) -> list[Any]:
    found = provider.search(query) if query else provider.discover()
    return [hit async for hit in found]


async def test_palette_offers_pane_and_app_actions_by_name_and_runs_them() -> None:
    app = StandIn()
    async with app.run_test(size=(100, 40)) as pilot:
        pools, requests = app.query_one(PoolsPane), app.query_one(RequestsPane)
        provider = GatewayCommands(app.screen)
        names = {hit.text for hit in await _hits(provider, "")}
        assert {"Pools: Move up", "Requests: Details", "Requests: Follow newest"} <= names
        assert {"App: Theme", "App: Help", "App: Quit"} <= names
        assert "Pools: Ban model" not in names  # check_action says None: nothing selected
        assert not any("Scroll" in n or "Focus" in n for n in names)  # Textual's own keys

        pools.selected = "fast/a"
        [hit] = await _hits(provider, "pools ban")
        assert isinstance(hit, Hit) and hit.text == "Pools: Ban model" and hit.help == "key: b"
        await hit.command()
        assert pools.calls == ["ban fast/a"]

        [move] = [h for h in await _hits(provider, "") if h.text == "Pools: Move up"]
        assert isinstance(move, DiscoveryHit)
        await move.command()
        assert pools.calls[-1] == "move -1"  # the parameter in the action string is kept

        [details] = [h for h in await _hits(provider, "details") if h.text == "Requests: Details"]
        await details.command()
        assert requests.calls == ["open"]

        [theme] = await _hits(provider, "app theme")
        await theme.command()
        await pilot.pause()
        assert app.theme == "gateway-light"


async def test_palette_command_runs_from_the_real_palette() -> None:
    app = StandIn()
    async with app.run_test(size=(100, 40)) as pilot:
        pools = app.query_one(PoolsPane)
        pools.selected = "fast/b"
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"ban model")
        await pilot.pause(0.3)
        await pilot.press("down", "enter")
        await pilot.pause(0.3)
        assert pools.calls == ["ban fast/b"]


async def test_palette_commands_come_from_the_calling_screen_not_the_palette() -> None:
    app = StandIn()
    async with app.run_test(size=(100, 40)):
        commands = palette_commands(app.screen)
        assert all(c.name.split(": ")[0] in {"Pools", "Requests", "App"} for c in commands)
        assert len({c.name for c in commands}) == len(commands)
