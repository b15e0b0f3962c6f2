"""`tui-gateway keys check`: does each provider still take each of its API keys? (issue 14)

Every key of the config is checked at once with its provider's cheapest call
(providers/key_check.py), each under `--timeout`, and shown in a table, the keys masked. The exit
status says it for scripts: 0 every key is ok, 1 one is invalid or could not be checked (error,
timeout), 2 the config could not be read.

The check runs here, not in a gateway: a running gateway does not hear of it. To check (and put
back to use) a running gateway's keys, `POST /gateway/keys/check`, or let `[health]` do it.
rich and the check itself are imported by the command, so a plain run loads neither.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from . import paths
from .cli_errors import fail as _fail
from .config import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from .domain.keys import KeyCheck

NOT_ALL_OK = 1

keys_app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="The providers' API keys: check them."
)

_STYLES = {"ok": "green", "invalid": "bold red", "error": "yellow", "timeout": "yellow"}


@keys_app.command("check")
def check(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help="The config whose keys to check (default: as `tui-gateway` finds it)."
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds each key may take to answer.", min=0.001)
    ] = 10.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON list instead of a table.")
    ] = False,
) -> None:
    """Check every API key with its provider's cheapest call; exit 1 unless all are ok."""
    settings = _load(config)
    checks = asyncio.run(_check(settings, timeout))
    if as_json:
        typer.echo(json.dumps([asdict(c) for c in checks], indent=2, ensure_ascii=False))
    else:
        _table(checks)
    bad = [c for c in checks if c.status != "ok"]
    if bad:
        typer.echo(f"tui-gateway: {len(bad)} of {len(checks)} keys not ok", err=True)
        raise typer.Exit(code=NOT_ALL_OK)


async def _check(settings: Settings, timeout_s: float) -> list[KeyCheck]:
    import aiohttp

    from .providers.key_check import check_keys

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
        return await check_keys(settings, session, timeout_s=timeout_s)


def _table(checks: list[KeyCheck]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table("provider", "key", "secret", "status", "latency", "detail", box=None)
    for c in checks:
        latency = "-" if c.http_status is None and c.status != "timeout" else f"{c.latency_ms} ms"
        table.add_row(  # Text, not str: an upstream's message is not rich markup
            Text(c.provider), Text(c.key_id), Text(c.masked),
            Text(c.status, style=_STYLES[c.status]), Text(latency), Text(c.detail),
        )  # fmt: skip
    for column in table.columns[:5]:
        column.no_wrap = True
    Console(soft_wrap=False).print(table)


def _load(config: Path | None) -> Settings:
    """The config `tui-gateway` would run with; any mistake in it is exit status 2."""
    path = config or paths.default_config_path()
    if config is None and not path.exists():
        _fail(f"no config at {path}; pass --config PATH (or run `tui-gateway init`)")
    try:
        return load_settings(path)
    except ConfigError as exc:
        _fail(str(exc))
