"""`tui-gateway`: parse flags, load config, then run the TUI or the headless server."""

from __future__ import annotations

import asyncio
import gc
import signal
import sqlite3
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from . import event_loop, headless_log, paths
from .cli_errors import fail as _fail
from .cli_keys import keys_app
from .cli_service import service_app
from .cli_stats import stats
from .config import ConfigError, Settings, load_settings, warnings_for
from .config_clients import exposure_refusal
from .config_cluster import missing_client
from .domain.records import LogHealth
from .environment import process_environment
from .server import BindError, Gateway, bind_socket
from .store.schema import SchemaError, prepare


class _PlainValue:
    """Converts one `str`, `int`, `bool` or `Path` option value the way click did, no pydantic."""

    _BOOLS = {
        **dict.fromkeys(("1", "true", "t", "yes", "y", "on"), True),
        **dict.fromkeys(("0", "false", "f", "no", "n", "off"), False),
    }

    def __init__(self, kind: type) -> None:
        self.kind = kind

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None or isinstance(value, self.kind):
            return value
        if self.kind is int or self.kind is bool:
            try:
                return int(value) if self.kind is int else self._BOOLS[str(value).strip().lower()]
            except (TypeError, ValueError, KeyError):
                name = "integer" if self.kind is int else "boolean"
                raise typer.BadParameter(
                    f"{value!r} is not a valid {name}.", ctx=ctx, param=param
                ) from None
        return self.kind(value)


class _Group(TyperGroup):
    """The app's command group, whose own options (the run flags) are converted without pydantic.

    typer 0.29 builds a pydantic `TypeAdapter` for every option it parses; importing pydantic
    for that was 8 MB of a headless gateway's idle RSS, half of what the gateway added
    over a bare aiohttp hop. The run flags are plain `str`, `int`, `bool` and `Path`, so they get a
    plain conversion. If typer's internals move (no `_runtime_param`), its own coercion runs:
    the same behaviour, a bigger process. Subcommands (`init`, `setup`) are left to typer.
    """

    def get_params(self, ctx: Any) -> Any:
        params = super().get_params(ctx)  # the declared options, and --help
        for param in params:
            kind = getattr(getattr(param, "type_descriptor", None), "annotation", None)
            if not (isinstance(kind, type) and kind in (str, int, bool, Path)):
                continue
            if param.multiple or param.nargs != 1:
                continue
            if getattr(param, "_runtime_param", False) is None:  # typer would build it lazily
                param._runtime_param = _PlainValue(kind)  # type: ignore[attr-defined]
        return params


app = typer.Typer(
    cls=_Group,
    add_completion=False,
    no_args_is_help=False,
    help="A local OpenAI-compatible gateway over flaky LLM providers, with a live terminal UI.",
)
app.add_typer(service_app, name="service")
app.add_typer(keys_app, name="keys")


@app.callback(invoke_without_command=True)
def run(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Config file (default: config.toml in the user config dir)."),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Interface to listen on [127.0.0.1].")] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on; 0 picks a free one [4141].")
    ] = None,
    db: Annotated[
        Path | None, typer.Option(help="SQLite request log (default: user data dir).")
    ] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Simulated providers and traffic; no keys, no network.")
    ] = False,
    headless: Annotated[
        bool,
        typer.Option("--headless", help="Run the proxy alone, no screen, until SIGINT/SIGTERM."),
    ] = False,
    theme: Annotated[
        str, typer.Option(help="Screen theme: gateway-dark or gateway-light (t cycles them).")
    ] = "gateway-dark",
    loop: Annotated[
        str,
        typer.Option(
            "--loop",
            help="Event loop: auto (uvloop when installed, else asyncio), uvloop or asyncio.",
        ),
    ] = "auto",
    log_level: Annotated[
        str,
        typer.Option(
            "--log-level",
            help="With --headless: what stderr shows, error, warning, info or debug.",
        ),
    ] = "info",
) -> None:
    """Run the gateway (with its terminal UI unless --headless)."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        event_loop.loop_factory(loop)
        log_level = headless_log.check_level(log_level)
    except (ValueError, event_loop.LoopUnavailable) as exc:
        _fail(str(exc))
    try:
        settings = _settings(config, demo=demo)
    except ConfigError as exc:
        _fail(str(exc))
    server = settings.server
    settings = replace(
        settings,
        server=replace(
            server,
            host=host if host is not None else server.host,
            port=port if port is not None else server.port,
        ),
    )
    # Beyond loopback only with a key the config sets (the warning says the traffic is plain).
    own_key, source = settings.own_key, settings.source
    refusal = exposure_refusal(settings.server.host, own_key=own_key, source=source)
    if refusal is not None:
        _fail(refusal)
    if (cannot := missing_client(settings.cluster)) is not None:
        _fail(cannot)
    for warning in warnings_for(settings):
        typer.echo(f"warning: {warning}", err=True)
    db_path = db or paths.default_db_path(demo=demo)
    _check_db(db_path)
    try:
        sock = bind_socket(settings.server.host, settings.server.port)
    except BindError as exc:
        _fail(str(exc))
    gateway = Gateway(
        settings,
        api_key=settings.server.api_key or paths.generated_api_key(),
        db_path=db_path,
        sock=sock,
        demo=demo,
    )
    _tune_gc()
    if headless:
        event_loop.run(_serve_headless(gateway, log_level=log_level), choice=loop)
    else:
        _announce(gateway)
        from .tui.app import GatewayApp  # only here: the headless path never imports Textual

        # `App.run()` is `asyncio.run(app.run_async())`; this is the same on the chosen loop.
        event_loop.run(GatewayApp(gateway, theme=theme).run_async(), choice=loop)
        _announce(gateway)  # again after the screen is gone, so the URL and key stay visible
    _report_unwritten(gateway.request_log.health())


@app.command()
def init(
    path: Annotated[Path | None, typer.Argument(help="Where to write it.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starter config."""
    target = path or paths.default_config_path()
    if target.exists() and not force:
        _fail(f"{target} already exists; pass --force to overwrite it")
    from .starter import starter_config  # only here: the gateway itself never needs it

    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(starter_config(process_environment()), encoding="utf-8")
    typer.echo(f"wrote {target}")
    typer.echo(
        "edit the providers and models, then run: tui-gateway"
        + ("" if path is None else f" --config {target}")
    )


@app.command("attach")
def attach_command(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Argument(
            metavar="[URL]", help="The gateway, e.g. http://host:4141 (default: the local one)."
        ),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option("--key", help="Its API key (default: the config's, or the generated one)."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="The local gateway's config, to find its port and key."),
    ] = None,
    theme: Annotated[str, typer.Option(help="Screen theme.")] = "gateway-dark",
) -> None:
    """Open the live screen on a gateway that is already running (here or elsewhere)."""
    from . import attach  # only here: a gateway run never imports the remote screen

    parent = ctx.parent.params if ctx.parent is not None else {}
    try:
        settings = _setup_settings(config or parent.get("config"), demo=bool(parent.get("demo")))
        url, key = attach.target(
            url, key, settings.server, host=parent.get("host"), port=parent.get("port")
        )
        attach.check(url, key)
    except (attach.AttachError, ConfigError) as exc:
        _fail(str(exc))
    attach.run(url, key, theme=theme, loop=parent.get("loop") or "auto")


@app.command("setup")
def setup_command(
    ctx: typer.Context,
    client: Annotated[
        str | None,
        typer.Argument(metavar="CLIENT", help="The client to set up; leave out to list them."),
    ] = None,
    write: Annotated[
        bool,
        typer.Option(
            "--write", help="Merge the settings into the client's config file (backed up)."
        ),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="The gateway's config (default: as `tui-gateway` finds it)."),
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="The gateway's host, if not the config's.")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="The gateway's port, if not the config's.")
    ] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Point the client at `tui-gateway --demo`.")
    ] = False,
) -> None:
    """Show what a coding assistant needs to use this gateway, or --write it into its config."""
    from . import setup  # only here: the gateway itself never loads the TOML/YAML editors

    where = setup.current_where()
    if client is None:
        for line in setup.list_lines(where):
            typer.echo(line)
        return
    parent = ctx.parent.params if ctx.parent is not None else {}  # `tui-gateway --port N setup`
    config = config or parent.get("config")
    demo = demo or bool(parent.get("demo"))
    try:
        chosen = setup.get_client(client)
        settings = _setup_settings(config, demo=demo)
        target = setup.resolve_target(
            settings.server,
            host=host if host is not None else parent.get("host"),
            port=port if port is not None else parent.get("port"),
        )
        if write:
            lines = setup.write_lines(chosen, target, where, now=datetime.now())
        else:
            lines = setup.show_lines(chosen, target, where)
    except (setup.SetupError, ConfigError) as exc:
        _fail(str(exc))
    for line in lines:
        typer.echo(line)


app.command("stats")(stats)  # cli_stats.py: the request log's figures


def _setup_settings(config: Path | None, *, demo: bool) -> Settings:
    """The settings the gateway would run with; before any config exists, its defaults."""
    path = paths.default_config_path()
    if not demo and config is None and not path.exists():
        typer.echo(
            f"tui-gateway: no config at {path} yet, so this uses the default address and the "
            "generated key (what `tui-gateway --demo` serves; `tui-gateway init` writes a config)",
            err=True,
        )
        demo = True
    return _settings(config, demo=demo)


def _settings(config: Path | None, *, demo: bool) -> Settings:
    path = config or paths.default_config_path()
    if demo:
        from .demo import demo_settings

        # The demo uses its own providers; a user's [server] table (key, port) still applies.
        exists = config is not None or path.exists()
        return demo_settings(load_settings(path).server if exists else None)
    if config is None and not path.exists():
        _fail(
            f"no config at {path}\n"
            "  run `tui-gateway init` to write a starter config there,\n"
            "  or `tui-gateway --demo` to try the gateway with simulated providers"
        )
    return load_settings(path)


def _check_db(path: Path) -> None:
    """Open (and migrate) the request log once before anything starts, so a bad --db, or a file
    that is not a log, is a clear error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        asyncio.run(prepare(path))
    except (OSError, sqlite3.Error, SchemaError) as exc:
        _fail(f"cannot use {path} as the request log: {exc}")


def _tune_gc() -> None:
    """Fewer, cheaper garbage collections for a long-running server.

    Every request makes a few dozen short-lived objects; with the default threshold (700) the
    youngest generation is collected every few requests under load, which cost about a tenth
    of the gateway's CPU in `scripts/bench.py`. Freezing what start-up made (modules, config,
    the app) keeps it out of every later full collection.
    """
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


def _announce(gateway: Gateway) -> None:
    typer.echo(f"tui-gateway listening on {gateway.base_url}")
    for line in gateway.client_env():
        typer.echo(line)
    sys.stdout.flush()


async def _serve_headless(gateway: Gateway, *, log_level: str = "info") -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    # stderr: logfmt lines, written together every 50 ms (journald sees them at once anyway),
    # on a thread of their own: a stderr nobody reads must not stop the gateway
    log = headless_log.HeadlessLog(gateway.state, level=log_level, batch_s=0.05, offload=True)
    unsubscribe = log.attach()  # before start: the log's health at open is a line too
    try:
        await gateway.start()
        _announce(gateway)
        log.started(gateway.base_url, loop=event_loop.running_kind())
        await stop.wait()
        log.stopping()
        await gateway.stop()
        log.stopped()
    finally:
        unsubscribe()
        log.close()


def _report_unwritten(health: LogHealth) -> None:
    """After the gateway stopped: rows the request log could not write are said, not hidden."""
    if health.pending:
        reason = f" ({health.last_error})" if health.last_error else ""
        typer.echo(
            f"tui-gateway: {health.pending} request log rows could not be written{reason}",
            err=True,
        )


def main() -> None:
    app()
