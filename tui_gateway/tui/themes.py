"""Where the `.tcss` files are: inside the installed package, or beside it in a checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent


def themes_dir() -> Path:
    installed = _PACKAGE / "themes"  # the wheel maps the top-level themes/ here
    return installed if installed.is_dir() else _PACKAGE.parent / "themes"
