"""How every command refuses a user's mistake: one line on stderr, exit status 2, no traceback."""

from __future__ import annotations

from typing import NoReturn

import typer

USAGE_ERROR = 2


def fail(message: str) -> NoReturn:
    typer.echo(f"tui-gateway: {message}", err=True)
    raise typer.Exit(code=USAGE_ERROR)
