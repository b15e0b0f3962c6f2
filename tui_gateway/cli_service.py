"""`tui-gateway service install|start|stop|status|logs|uninstall`: the gateway in the background.

Nothing here loads more than cli.py does already: the service package (and `setup`, for the
gateway's address) is imported by the command that needs it, so a plain run loads none of it.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from . import paths
from .cli_errors import fail as _fail
from .config import ConfigError, ServerSettings, load_settings
from .environment import process_environment

if TYPE_CHECKING:
    from .service import Done, Manager
    from .service.status import Status

NOT_RUNNING = 3
"""`service status`'s exit code when nothing answers, as `systemctl status` says "inactive"."""
START_WAIT_S = 5.0

service_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Run the gateway in the background: a systemd user unit (Linux) or launchd agent (macOS).",
)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="The config to run with (default: as `tui-gateway` finds it)."),
]
HostOption = Annotated[str | None, typer.Option(help="The gateway's host, if not the config's.")]
PortOption = Annotated[int | None, typer.Option(help="The gateway's port, if not the config's.")]


@service_app.command()
def install(config: ConfigOption = None) -> None:
    """Write the user service that runs `tui-gateway --headless` (and say what was written)."""
    from . import service

    passed, config_path = _install_config(config)
    manager = _manager()
    try:
        done = service.install(
            manager, config=passed, config_path=config_path, environ=process_environment()
        )
    except OSError as exc:
        _fail(f"cannot write {manager.path}: {exc.strerror or exc}")
    _say(done)


@service_app.command()
def uninstall() -> None:
    """Stop the service and remove its file."""
    from . import service

    _say(service.uninstall(_manager()))


@service_app.command()
def start(
    host: HostOption = None,
    port: PortOption = None,
) -> None:
    """Start the installed service, and wait a moment for it to answer."""
    from .service import ServiceError
    from .service.status import describe, probe

    manager = _installed()
    try:
        manager.start()
    except ServiceError as exc:
        _fail(str(exc))
    url, api_key = _target(None, host, port, manager)
    deadline = time.monotonic() + START_WAIT_S
    status = probe(url, api_key)
    while not status.up and time.monotonic() < deadline:
        time.sleep(0.25)
        status = probe(url, api_key)
    if status.up:
        typer.echo(f"started the {manager.kind}; {describe(status)}")
    else:
        typer.echo(
            f"started the {manager.kind}, but nothing answers at {url} yet: "
            "`tui-gateway service logs` says why"
        )


@service_app.command()
def stop() -> None:
    """Stop the service (requests in flight finish first); it starts again at the next login."""
    from .service import ServiceError

    manager = _installed()
    try:
        manager.stop()
    except ServiceError as exc:
        _fail(str(exc))
    typer.echo(f"stopped the {manager.kind}")


@service_app.command()
def status(
    config: ConfigOption = None,
    host: HostOption = None,
    port: PortOption = None,
) -> None:
    """Whether the gateway is up, its URL and uptime (exit 3 when it is not running)."""
    from .service import ServiceError, manager_for
    from .service.status import describe, probe

    try:
        manager: Manager | None = manager_for(environ=process_environment())
    except ServiceError:
        manager = None  # no service manager here, but a gateway may still be running
    url, api_key = _target(config, host, port, manager)
    found = probe(url, api_key)
    typer.echo(describe(found))
    if manager is not None:
        typer.echo(_service_line(manager, found))
    if not found.up:
        raise typer.Exit(code=NOT_RUNNING)


@service_app.command()
def logs(
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many recent lines.")] = 50,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep showing new lines.")] = False,
) -> None:
    """Show the service's log (journalctl on Linux, the agent's log files on macOS)."""
    argv = _manager().logs_argv(lines=lines, follow=follow)
    try:
        code = subprocess.run(argv, check=False).returncode
    except FileNotFoundError:
        _fail(f"{argv[0]} not found, so the log cannot be shown; run: {' '.join(argv)}")
    except KeyboardInterrupt:  # the way out of --follow
        code = 0
    raise typer.Exit(code=code)


def _install_config(config: Path | None) -> tuple[Path | None, Path]:
    """(the --config the service passes, the file it reads); a config that does not load
    stops install here rather than failing in the background."""
    path = (config.expanduser().resolve() if config else None) or paths.default_config_path()
    if config is None and not path.exists():
        _fail(
            f"no config at {path}: run `tui-gateway init` to write one there, or pass --config PATH"
        )
    try:
        load_settings(path)
    except ConfigError as exc:
        _fail(str(exc))
    return (path if config else None), path


def _target(
    config: Path | None, host: str | None, port: int | None, manager: Manager | None
) -> tuple[str, str]:
    """(`http://host:port`, key) of the gateway the service runs, found as `setup` finds it:
    `--config`, else the one the installed service names, else the default one."""
    from . import setup
    from .service.files import config_in, installed_argv

    if config is None and manager is not None:
        config = config_in(installed_argv(manager.path) or [])
    path = config or paths.default_config_path()
    try:
        server = load_settings(path).server if config or path.exists() else ServerSettings()
        target = setup.resolve_target(server, host=host, port=port)
    except (ConfigError, setup.SetupError) as exc:
        _fail(str(exc))
    return target.base_url, target.api_key


def _service_line(manager: Manager, found: Status) -> str:
    """The service manager's side: installed or not, and what it says of the service."""
    if not manager.path.exists():
        hint = "" if found.up else ": tui-gateway service install, then start"
        return f"service: not installed{hint}"
    state = manager.state()
    if state is not None:
        said = f"{state} ({manager.kind} {manager.path})"
    else:
        said = f"{manager.kind} {manager.path}, state unknown (its manager cannot be asked here)"
    hint = "" if found.up else "; start it: tui-gateway service start (its log: service logs)"
    return f"service: {said}{hint}"


def _manager() -> Manager:
    from .service import ServiceError, manager_for

    try:
        return manager_for(environ=process_environment())
    except ServiceError as exc:
        _fail(str(exc))


def _installed() -> Manager:
    manager = _manager()
    if not manager.path.exists():
        _fail(f"no service installed at {manager.path}: run `tui-gateway service install` first")
    return manager


def _say(done: Done) -> None:
    for line in done.said:
        typer.echo(line)
    if done.warning:
        typer.echo(f"tui-gateway: {done.warning}", err=True)
