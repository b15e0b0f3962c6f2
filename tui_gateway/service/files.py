"""The files `tui-gateway service install` writes: a systemd user unit, a launchd agent plist.

Both run `tui-gateway --headless` (with `--config PATH` when install was given one), restart
it when it fails (not when it stopped cleanly, nor after a config mistake, exit 2), and send
its stderr, one logfmt line per request and per change, where `service logs` reads it.
"""

from __future__ import annotations

import plistlib
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

NAME = "tui-gateway"
"""The unit's name (`tui-gateway.service`) and the agent's label."""
HEADER = "# Written by `tui-gateway service install`; `tui-gateway service uninstall` removes it."
PINNED_ENV = ("XDG_CONFIG_HOME", "XDG_DATA_HOME")
"""Where the gateway finds its config, key and log on Linux: pinned to install's values, so the
service reads what the shell's `tui-gateway` reads (the user manager may not set them)."""

_BARE = re.compile(r"[\w@%+=:,./-]+")


def program(executable: str | None = None) -> list[str]:
    """The command that runs this installation of the gateway.

    The `tui-gateway` script beside the interpreter when there is one (a venv, pipx), else
    `python -m tui_gateway`; the interpreter's path is kept as it is (not resolved), so a venv
    stays a venv.
    """
    python = Path(executable or sys.executable)
    script = python.parent / NAME
    return [str(script)] if script.is_file() else [str(python), "-m", "tui_gateway"]


def gateway_argv(prog: Sequence[str], config: Path | None) -> list[str]:
    """`PROG --headless [--config PATH]`: what the service runs."""
    return [*prog, "--headless", *(["--config", str(config)] if config is not None else [])]


def systemd_unit(
    argv: Sequence[str], *, env_file: Path, environment: Mapping[str, str] | None = None
) -> str:
    """A user unit (`~/.config/systemd/user/tui-gateway.service`) that runs `argv`.

    Args:
        argv: the gateway's command line (see `gateway_argv`).
        env_file: an optional `NAME=value` file for the `env:` values of the config (a user
            service does not see the shell's environment); missing is fine.
        environment: variables to set, e.g. the `XDG_*` dirs install ran with.
    """
    lines = [
        HEADER,
        "[Unit]",
        "Description=tui-gateway: local OpenAI-compatible LLM gateway (headless)",
        "",
        "[Service]",
        "Type=exec",
        f"ExecStart={' '.join(_systemd_quoted(arg) for arg in argv)}",
    ]
    for key, value in (environment or {}).items():
        lines.append(f"Environment={_systemd_quoted(f'{key}={value}')}")
    lines += [
        f"EnvironmentFile=-{_systemd_quoted(str(env_file))}",
        "Restart=on-failure",
        "RestartSec=2",
        "# A config mistake (exit 2) is not retried: fix it, then `tui-gateway service start`.",
        "RestartPreventExitStatus=2",
        "# SIGTERM lets requests in flight finish (server.shutdown_grace_s) and flushes the log.",
        "TimeoutStopSec=30",
        f"SyslogIdentifier={NAME}",
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
    ]
    return "\n".join(lines)


def launchd_plist(
    argv: Sequence[str], *, log_dir: Path, environment: Mapping[str, str] | None = None
) -> str:
    """A launch agent (`~/Library/LaunchAgents/tui-gateway.plist`) that runs `argv`.

    It starts at login (RunAtLoad) and again when it exits with a failure (KeepAlive on
    SuccessfulExit false); stdout and stderr go to `out.log` and `err.log` in `log_dir`.
    `environment` becomes its EnvironmentVariables (the user's keys, kept across installs).
    """
    agent: dict[str, object] = {
        "Label": NAME,
        "ProgramArguments": list(argv),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": 5,
        "StandardOutPath": str(log_dir / "out.log"),
        "StandardErrorPath": str(log_dir / "err.log"),
    }
    if environment:
        agent["EnvironmentVariables"] = dict(environment)
    text = plistlib.dumps(agent, sort_keys=False).decode()
    head, _, body = text.partition("<plist")
    return f"{head}<!-- {HEADER[2:]} -->\n<plist{body}"


def installed_argv(path: Path) -> list[str] | None:
    """The command line in a unit or plist that install wrote; None if there is none."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if path.suffix == ".plist":
        try:
            args = plistlib.loads(data).get("ProgramArguments")
        except (plistlib.InvalidFileException, ValueError, AttributeError):
            return None
        return [str(a) for a in args] if isinstance(args, list) else None
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("ExecStart="):
            try:
                return [a.replace("%%", "%").replace("$$", "$") for a in shlex.split(line[10:])]
            except ValueError:
                return None
    return None


def plist_environment(path: Path) -> dict[str, str]:
    """The EnvironmentVariables the user put in an installed plist (none if unreadable)."""
    try:
        found = plistlib.loads(path.read_bytes()).get("EnvironmentVariables")
    except (OSError, plistlib.InvalidFileException, ValueError, AttributeError):
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def config_in(argv: Sequence[str]) -> Path | None:
    """The `--config PATH` of a gateway command line, if it has one."""
    for flag, value in zip(argv, argv[1:], strict=False):
        if flag == "--config":
            return Path(value)
    return None


def _systemd_quoted(arg: str) -> str:
    """One word of a unit's command line: `%` and `$` doubled, quoted when it has to be."""
    arg = arg.replace("%", "%%").replace("$", "$$")
    if _BARE.fullmatch(arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
