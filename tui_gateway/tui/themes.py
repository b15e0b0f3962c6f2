"""Themes: two Textual `Theme`s, the `.tcss` files that go with them, and where those files are.

Colours come from the active theme through CSS variables (`$primary`, `$error`, `$warning`,
`$success`, ...), so a rule written once looks right in both. The `.tcss` files are checked
before the app reads them: a broken or missing file is reported as a warning and skipped,
never fatal (the idea of Posting's `UserThemeLoadResult`).

Files, read in this order (later wins at equal specificity):

    gateway.tcss   colours every look shares (state classes such as `-stalled`)
    layout.tcss    where the panes go
    dark.tcss      rules under `App.-dark-mode`, active with any dark theme
    light.tcss     rules under `App.-light-mode`

Wiring, in the app's `__init__`:

    paths, self.theme_problems = load_theme_files()
    super().__init__(css_path=paths)
    self.theme_problems += install_themes(self, theme)  # registers THEMES, selects one
    # and for `t`:  self.theme = next_theme(self.theme)
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

from textual.app import App
from textual.css.errors import StylesheetError
from textual.css.stylesheet import Stylesheet, StylesheetParseError
from textual.css.tokenizer import TokenError
from textual.theme import Theme

__all__ = [
    "DEFAULT_THEME",
    "BASE_FILES",
    "THEMES",
    "THEME_FILES",
    "check_tcss",
    "install_themes",
    "load_theme_files",
    "next_theme",
    "pick_theme",
    "themes_dir",
]

_PACKAGE = Path(__file__).resolve().parent.parent

GATEWAY_DARK = Theme(
    name="gateway-dark",
    primary="#5FA8D3",
    secondary="#62B6CB",
    accent="#E8A33D",
    warning="#E0B341",
    error="#E5534B",
    success="#57AB5A",
    foreground="#D5DCE3",
    background="#14181D",
    surface="#1B2027",
    panel="#232A33",
    dark=True,
    variables={
        "footer-key-foreground": "#E8A33D",
        "block-cursor-text-style": "none",
        "input-selection-background": "#5FA8D3 35%",
    },
)
GATEWAY_LIGHT = Theme(
    name="gateway-light",
    primary="#0B5CAD",
    secondary="#1F7A8C",
    accent="#B35C00",
    warning="#9A6700",
    error="#C62828",
    success="#1A7F37",
    foreground="#1F2328",
    background="#F6F8FA",
    surface="#FFFFFF",
    panel="#E4E9EE",
    dark=False,
    variables={
        "footer-key-foreground": "#0B5CAD",
        "block-cursor-text-style": "none",
        "input-selection-background": "#0B5CAD 25%",
    },
)

THEMES: dict[str, Theme] = {theme.name: theme for theme in (GATEWAY_DARK, GATEWAY_LIGHT)}
"""Our themes, in the order `t` cycles through them."""
DEFAULT_THEME = GATEWAY_DARK.name
BASE_FILES: tuple[str, ...] = ("gateway.tcss", "layout.tcss")
"""Shared colours and the arrangement of the main screen, read before the look files."""
THEME_FILES: tuple[str, ...] = ("dark.tcss", "light.tcss")
"""Look-specific rules, scoped with `App.-dark-mode` / `App.-light-mode`, so both load at once."""


def themes_dir() -> Path:
    """The folder of `.tcss` files: inside the installed package, or beside it in a checkout."""
    installed = _PACKAGE / "themes"  # the wheel maps the top-level themes/ here
    return installed if installed.is_dir() else _PACKAGE.parent / "themes"


def load_theme_files(
    base: Sequence[str] = BASE_FILES,
    *,
    directory: Path | None = None,
    extra: Iterable[Path] = (),
) -> tuple[list[Path], list[str]]:
    """The `.tcss` files to give the app, in order, and what was wrong with the others.

    Args:
        base: File names in `directory` read before the look files.
        directory: Where the shipped files are (default: `themes_dir()`).
        extra: A user's own files, read last so that they win.

    Returns:
        The paths that parse under every theme of `THEMES`, and one warning per file skipped.
    """
    folder = themes_dir() if directory is None else directory
    wanted = [folder / name for name in (*base, *THEME_FILES)] + list(extra)
    paths: list[Path] = []
    problems: list[str] = []
    for path in dict.fromkeys(wanted):
        problem = check_tcss(path)
        if problem is None:
            paths.append(path)
        else:
            problems.append(f"theme file skipped: {problem}")
    return paths, problems


def check_tcss(path: Path, themes: Iterable[Theme] | None = None) -> str | None:
    """Parse one `.tcss` file as the app would; None if it is fine, else what is wrong.

    Args:
        path: The file.
        themes: Themes whose variables it must resolve against (default: all of `THEMES`).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return f"{path}: missing"
    except (OSError, UnicodeDecodeError) as exc:
        return f"{path}: cannot read ({exc})"
    for theme in THEMES.values() if themes is None else themes:
        sheet = Stylesheet(variables=_variables(theme))
        sheet.add_source(text, read_from=(str(path), ""))
        try:
            sheet.parse()
        except StylesheetParseError as exc:
            return f"{path}: {_first_parse_error(exc)}"
        except TokenError as exc:  # syntax, or a variable no theme defines
            line, column = exc.start
            return f"{path}:{line}:{column}: {exc}"
        except StylesheetError as exc:
            return f"{path}: {exc}"
    return None


def _variables(theme: Theme) -> dict[str, str]:
    return {**theme.to_color_system().generate(), **theme.variables}


def _first_parse_error(exc: StylesheetParseError) -> str:
    for rule in exc.errors.rules:
        for token, message in rule.errors:
            line, column = (token.referenced_by or token).location
            text = getattr(message, "summary", str(message))
            return f"{line + 1}:{column + 1}: {text}"
    return "invalid CSS"


def next_theme(current: str) -> str:
    """The theme after `current` in `THEMES`, wrapping; the first one for a theme not ours."""
    names = list(THEMES)
    if current not in names:
        return names[0]
    return names[(names.index(current) + 1) % len(names)]


def pick_theme(requested: str | None, available: Collection[str]) -> tuple[str, str | None]:
    """Check a `--theme` value: the name to use, and a warning if it had to fall back."""
    if requested is None or requested in available:
        return requested or DEFAULT_THEME, None
    choices = ", ".join(sorted(available))
    return DEFAULT_THEME, f"unknown theme {requested!r}, using {DEFAULT_THEME} (one of: {choices})"


def install_themes(app: App[Any], requested: str | None = None) -> list[str]:
    """Register `THEMES` with `app` and select `requested` (a Textual built-in also works).

    Returns:
        Warnings to show the user (an unknown theme name); never raises for a bad name.
    """
    for theme in THEMES.values():
        app.register_theme(theme)
    name, warning = pick_theme(requested, app.available_themes)
    app.theme = name
    return [] if warning is None else [warning]
