"""`tui-gateway stats`: what the request log says of the last hour, day, week or month (issue 14).

It reads the log itself, read-only, so no gateway needs to run; a running one goes on writing, and
this sees what it has committed (WAL readers do not block the writer). The figures are
store/analytics.py's, on two connections (two cores) for a long range. `--json` prints
them as `GET /gateway/stats` answers; a table otherwise. A missing log, an unknown range or a file
that is not a log: one line on stderr, exit status 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from . import paths
from .cli_errors import fail as _fail
from .config import ConfigError, load_settings
from .figures import latency, row_name, speed

if TYPE_CHECKING:
    from rich.console import Console

    from .store.analytics import Analytics, Usage

ANALYTICS_INDEX = "requests_by_model"
"""The main index of the analytics (migration 10): a log without it gives the same figures,
slowly, so it is said; the gateway adds it when it next starts."""
_SPARKS = " ▁▂▃▄▅▆▇█"


def stats(
    ctx: typer.Context,
    range_name: Annotated[
        str, typer.Option("--range", help="The time to look back over: 1h, 24h, 7d or 30d.")
    ] = "24h",
    as_json: Annotated[
        bool, typer.Option("--json", help="The figures as JSON (as GET /gateway/stats has them).")
    ] = False,
    db: Annotated[
        Path | None, typer.Option("--db", help="The request log (default: the gateway's).")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="A config whose models to list even with no requests."),
    ] = None,
) -> None:
    """What the request log says: requests over time, per model and provider, errors, fallbacks."""
    from .store.analytics import RANGES, read_analytics

    parent = ctx.parent.params if ctx.parent is not None else {}  # `tui-gateway --demo stats`
    if range_name not in RANGES:
        _fail(f"unknown range {range_name!r}; use one of {', '.join(RANGES)}")
    path = db or parent.get("db") or paths.default_db_path(demo=bool(parent.get("demo")))
    configured = _configured_models(config or parent.get("config"))
    _check_log(path)
    try:
        figures = asyncio.run(read_analytics(path, range_name, now=time.time()))
    except sqlite3.Error as exc:
        _fail(f"cannot read {path} as a request log: {exc}")
    if as_json:
        import msgspec

        typer.echo(msgspec.json.format(msgspec.json.encode(figures), indent=2).decode())
        return
    _print(figures, idle=[m for m in configured if m not in {u.model for u in figures.models}])


def _check_log(path: Path) -> None:
    """One clear line, not a traceback, for a log that is missing or not a log; a word for one
    the gateway has not yet given the analytics' indexes."""
    if not path.is_file():
        _fail(f"no request log at {path}; pass --db PATH, or run the gateway first")
    try:
        uri = f"{path.resolve().as_uri()}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as log:
            log.execute("SELECT 1 FROM requests, attempts LIMIT 1").fetchall()
            indexed = log.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (ANALYTICS_INDEX,)
            ).fetchone()
    except sqlite3.Error as exc:
        _fail(f"cannot read {path} as a request log: {exc}")
    if indexed is None:
        typer.echo(
            f"tui-gateway: {path} has no analytics indexes yet (the gateway adds them when it"
            " next starts); reading it all may take a while",
            err=True,
        )


def _configured_models(config: Path | None) -> list[str]:
    if config is None:
        return []
    try:
        return [m.key for m in load_settings(config).models]
    except ConfigError as exc:
        _fail(str(exc))


def _print(figures: Analytics, *, idle: list[str]) -> None:
    from rich.console import Console

    console = Console(soft_wrap=False, highlight=False)
    since, until = (_when(t) for t in (figures.since, figures.until))
    console.print(f"[bold]last {figures.range}[/] ({since} to {until}): {_summary(figures)}")
    if not figures.requests:
        return
    step = figures.bucket_s / 60
    every = f"{step:g} min" if step < 60 else f"{step / 60:g} h"
    series, top = figures.series, max(p.requests for p in figures.series)
    # Each line is one block per bucket (up to 96): on a line of its own it fits 100 columns.
    console.print(f"[dim]requests (green) and failed (red) per {every}, oldest first[/]")
    console.print(f"[green]{_spark([p.requests for p in series], top)}[/]")
    console.print(f"[red]{_spark([p.failed for p in series], top)}[/]")
    _usage_table(console, "model", figures.models)
    _usage_table(console, "provider", figures.providers)
    _errors_table(console, figures)
    if idle:
        console.print(f"[dim]configured, no requests in the range: {', '.join(idle)}[/]")


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at))


def _summary(figures: Analytics) -> str:
    if not figures.requests:
        return "no requests"
    return (
        f"{figures.requests:,} requests, {figures.succeeded / figures.requests:.1%} succeeded,"
        f" {figures.fallbacks:,} fell back, {figures.continuations:,} continued"
    )


def _spark(values: list[int], top: int) -> str:
    """One block per bucket, its height the value's share of `top` (a space for none)."""
    steps = len(_SPARKS) - 1
    return "".join(_SPARKS[-(-v * steps // top) if top else 0] for v in values)


def _usage_table(console: Console, by: str, rows: tuple[Usage, ...]) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(by, "requests", "ok", "p50", "p95", "ttfb p50", "tokens in", "tokens out",
                  "tok/s", box=None, title=f"per {by}", title_justify="left")  # fmt: skip
    for column in table.columns[1:]:
        column.justify = "right"
    for u in rows:
        table.add_row(
            Text(row_name(u, by_provider=by == "provider")), f"{u.requests:,}",
            f"{u.success_rate:.1%}", latency(u.latency_p50_ms), latency(u.latency_p95_ms),
            latency(u.ttfb_p50_ms), f"{u.tokens_in:,}", f"{u.tokens_out:,}", speed(u.tokens_per_s),
        )  # fmt: skip
    console.print(table)


def _errors_table(console: Console, figures: Analytics) -> None:
    from rich.table import Table
    from rich.text import Text

    from .store.analytics import CATEGORIES

    if not figures.errors:
        console.print("no failed attempts")
        return
    table = Table("provider", *CATEGORIES, "total", box=None, title="failed attempts",
                  title_justify="left")  # fmt: skip
    for column in table.columns[1:]:
        column.justify = "right"
    for e in figures.errors:
        table.add_row(Text(e.provider), *(f"{e.counts[c]:,}" for c in CATEGORIES), f"{e.total:,}")
    console.print(table)
