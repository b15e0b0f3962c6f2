"""`tui-gateway service`: keep the gateway running in the background as a user service.

    files.py     the unit and plist text, and reading back what install wrote
    managers.py  systemd (`systemctl --user`) and launchd (`launchctl`), through their own tools
    status.py    asking the running gateway whether it is up, where and since when

`install` and `uninstall` do the work and return what to say, so the command line
(cli_service.py) stays thin. Nothing is written outside the user's own directories.
"""

from __future__ import annotations

import shlex
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import paths
from ..config import ConfigError, load_settings
from .files import (
    PINNED_ENV,
    gateway_argv,
    launchd_plist,
    plist_environment,
    program,
    systemd_unit,
)
from .managers import Launchd, ServiceError, Systemd

__all__ = ["Done", "Launchd", "Manager", "ServiceError", "Systemd", "install", "manager_for"]

Manager = Systemd | Launchd
ENV_FILE = "service.env"
"""In the config dir: `NAME=value` lines the systemd unit reads (`EnvironmentFile=-...`)."""


@dataclass(slots=True)
class Done:
    """What a command did (`said`, for stdout) and what it could not (`warning`, stderr)."""

    said: list[str] = field(default_factory=list)
    warning: str | None = None


def manager_for(
    *, platform: str = sys.platform, home: Path | None = None, environ: Mapping[str, str]
) -> Manager:
    """The user's service manager on this platform; ServiceError where there is none."""
    home = home or Path.home()
    if platform.startswith("linux"):
        config_home = environ.get("XDG_CONFIG_HOME")
        return Systemd(home=home, config_home=Path(config_home) if config_home else None)
    if platform == "darwin":
        return Launchd(home=home)
    raise ServiceError(
        f"no user service manager on {platform} (this needs systemd on Linux or launchd on "
        "macOS); run `tui-gateway --headless` under a supervisor of your own"
    )


def install(
    manager: Manager,
    *,
    config: Path | None,
    config_path: Path,
    environ: Mapping[str, str],
    prog: Sequence[str] | None = None,
) -> Done:
    """Write the unit or plist for `tui-gateway --headless [--config config]` and register it.

    Args:
        config: the `--config` the service passes (None: it finds the default one itself).
        config_path: the config it will read either way (for the `env:` values it names).
        prog: the gateway's program (default: this installation's, see `files.program`).
    """
    argv = gateway_argv(prog or program(), config)
    env_file = paths.config_dir() / ENV_FILE
    if isinstance(manager, Systemd):
        pinned = {key: environ[key] for key in PINNED_ENV if environ.get(key)}
        text = systemd_unit(argv, env_file=env_file, environment=pinned)
    else:
        manager.log_dir.mkdir(parents=True, exist_ok=True)
        kept = plist_environment(manager.path)  # the keys the user added there
        text = launchd_plist(argv, log_dir=manager.log_dir, environment=kept)
    path = manager.path
    before = path.read_text(encoding="utf-8") if path.is_file() else None
    done = Done()
    if before == text:
        done.said.append(f"{path} is up to date ({manager.kind} running: {shlex.join(argv)})")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        verb = "wrote" if before is None else "updated"
        done.said.append(f"{verb} {path} ({manager.kind} running: {shlex.join(argv)})")
    if isinstance(manager, Launchd):
        done.said.append(f"its log: {manager.log_dir}/err.log (`tui-gateway service logs`)")
    if names := env_names(config_path):
        where = f"under EnvironmentVariables in {path} (kept when you install again)"
        if isinstance(manager, Systemd):
            where = f"as NAME=value lines in {env_file}"
        done.said.append(
            f"a service does not see your shell's environment: put {', '.join(names)} "
            f"{where} (chmod 600 it)"
        )
    try:
        manager.register()
    except ServiceError as exc:
        done.warning = f"{exc}; once it is there, start it with: {manager.manual_start()}"
        return done
    linger = " (`loginctl enable-linger` keeps it after logout)"
    done.said.append("it starts at every login" + (linger if isinstance(manager, Systemd) else ""))
    if manager.state() not in ("active", "running"):
        done.said.append("start it now: tui-gateway service start")
    elif before != text:
        done.said.append("it is running the old file: tui-gateway service stop, then start")
    else:
        done.said.append("it is running: tui-gateway service status")
    return done


def uninstall(manager: Manager) -> Done:
    """Stop and unregister the service, then remove its file; nothing there is not an error."""
    path = manager.path
    done = Done()
    if not path.exists():
        done.said.append(f"no service installed (nothing at {path})")
        return done
    try:
        manager.unregister()
    except ServiceError as exc:
        done.warning = f"could not stop it first: {exc}"
    path.unlink()
    done.said.append(f"removed {path}")
    try:
        manager.forget()
    except ServiceError as exc:
        done.warning = done.warning or str(exc)
    return done


def env_names(config_path: Path) -> list[str]:
    """The environment variables the config's `env:` values name (keys, mostly)."""
    try:
        raw = tomllib.loads(config_path.read_text(encoding="utf-8"))
        settings = load_settings(config_path, environ={})
    except (OSError, tomllib.TOMLDecodeError, ConfigError):  # install checked it already
        return []
    names = [name for provider in settings.providers for name in provider.missing_env]
    server = raw.get("server")
    api_key = server.get("api_key") if isinstance(server, dict) else None
    if isinstance(api_key, str) and api_key.startswith("env:"):
        names.append(api_key[4:])
    return sorted(set(names))
