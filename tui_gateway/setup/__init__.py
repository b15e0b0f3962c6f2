"""`tui-gateway setup`: what a coding assistant needs to use the gateway, shown or merged in.

`show_lines` prints a client's environment lines, config snippet (and the file it belongs in),
steps and command; `write_lines` merges the snippet into that file (see `files.merge_file`:
backup, atomic replace, nothing written when nothing changes). Both return the lines to print,
so the command line stays a thin layer; problems are `SetupError`s with a message for the user.
"""

from __future__ import annotations

import ipaddress
import shlex
import sys
from datetime import datetime
from pathlib import Path

from .. import paths
from ..config import ServerSettings
from ..environment import process_environment
from ..net import http_root
from .clients import CLIENTS, Client, ConfigFile, EnvLines, Plan, Target, Where
from .files import SetupError, merge_file

__all__ = [
    "CLIENTS",
    "Client",
    "SetupError",
    "Target",
    "Where",
    "current_where",
    "get_client",
    "list_lines",
    "resolve_target",
    "show_lines",
    "write_lines",
]


def current_where() -> Where:
    """The home directory and environment this process runs with (clients see the same)."""
    return Where(home=Path.home(), environ=dict(process_environment()), platform=sys.platform)


def get_client(name: str) -> Client:
    for client in CLIENTS:
        if client.name == name.lower():
            return client
    known = ", ".join(c.name for c in CLIENTS)
    raise SetupError(f"unknown client {name!r}; known clients: {known}")


def resolve_target(
    server: ServerSettings, *, host: str | None = None, port: int | None = None
) -> Target:
    """The URL and key clients should use for a gateway run with these settings.

    A gateway listening on every interface (`0.0.0.0`, `::`) is reached over loopback.

    Raises:
        SetupError: the port is 0 (a new free port at every start) or out of range.
    """
    host = server.host if host is None else host
    port = server.port if port is None else port
    if port == 0:
        raise SetupError(
            "the gateway's port is 0 (a free one at every start), so no client can be pointed "
            "at it: pass --port N, or set server.port in the config"
        )
    if not 0 < port <= 65535:
        raise SetupError(f"--port must be a port number from 1 to 65535, got {port}")
    host = _reachable(host)
    api_key = server.api_key or paths.generated_api_key()
    return Target(base_url=http_root(host, port), api_key=api_key)


def _reachable(host: str) -> str:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host or "127.0.0.1"
    if address.is_unspecified:
        return "::1" if address.version == 6 else "127.0.0.1"
    return str(address)


def list_lines(where: Where) -> list[str]:
    """The clients `setup` knows, each with the file it writes (or how it is set up)."""
    lines = ["Clients (`tui-gateway setup CLIENT` shows what one needs, `--write` merges it in):"]
    width = max(len(c.name) for c in CLIENTS)
    title_width = max(len(c.title) for c in CLIENTS)
    for client in CLIENTS:
        place = where.tilde(client.path(where)) if client.path else client.elsewhere
        lines.append(f"  {client.name:<{width}}  {client.title:<{title_width}}  {place}")
    return lines


def show_lines(client: Client, target: Target, where: Where) -> list[str]:
    """What `client` needs, to set it up by hand or to read before `--write`."""
    plan = client.plan(target, where)
    if client.name == "env":  # bare, so that `eval "$(tui-gateway setup env)"` works
        return _exports(plan.env)
    lines: list[str] = []
    if plan.env:
        lines += [f"{client.title}: set these where you run it:", "", *_exports(plan.env), ""]
    if plan.file is not None:
        lines += _file_lines(client, plan.file, where, alternative=bool(plan.env))
    if plan.steps:
        lead = "then:" if lines else f"{client.title}:"
        lines += [lead, *(f"  {step}" for step in plan.steps), ""]
    return _closing(lines, plan, run=plan.run)


def write_lines(client: Client, target: Target, where: Where, *, now: datetime) -> list[str]:
    """Merge `client`'s settings into its config file; say what changed and what is left to do.

    Raises:
        SetupError: the client has no file to write, or its file cannot be read, parsed or
            written; the file is then left as it was.
    """
    plan = client.plan(target, where)
    file = plan.file
    if file is None:
        raise SetupError(
            f"nothing to write for {client.name}: {plan.cannot_write}\n"
            f"  `tui-gateway setup {client.name}` shows what to set"
        )
    result = merge_file(file.path, file.format, file.merge, secret=file.secret, now=now)
    shown = where.tilde(result.path)
    if not result.changed:
        lines = [f"{shown} already has these settings; nothing changed"]
    elif result.backup is None:
        lines = [f"created {shown}"]
    else:
        lines = [f"updated {shown}", f"  the previous version is in {where.tilde(result.backup)}"]
    lines.append("")
    if file.env:
        lines += _key_lines(file.env)
    if plan.steps:
        lines += ["then:", *(f"  {step}" for step in plan.steps), ""]
    return _closing(lines, plan, run=file.run or plan.run)


def _file_lines(client: Client, file: ConfigFile, where: Where, *, alternative: bool) -> list[str]:
    place = where.tilde(file.path)
    lead = f"or put this in {place}" if alternative else f"{client.title}: add this to {place}"
    lines = [
        f"{lead} (`tui-gateway setup {client.name} --write` merges it in, with a backup):",
        "",
        *file.format.snippet(file.merge).rstrip("\n").splitlines(),
        "",
    ]
    if file.env:
        lines += _key_lines(file.env)
    return lines


def _key_lines(env: EnvLines) -> list[str]:
    return [
        "and export this where you run it (the key stays out of the file):",
        "",
        *_exports(env),
        "",
    ]


def _closing(lines: list[str], plan: Plan, *, run: str | None) -> list[str]:
    """The command to run and the notes, after the rest; no trailing blank line."""
    lines = lines + ([f"then run: {run}", ""] if run else []) + list(plan.notes)
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _exports(env: EnvLines) -> list[str]:
    return [f"export {name}={shlex.quote(value)}" for name, value in env]
