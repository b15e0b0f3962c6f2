"""The user's service manager, driven through its own tool: systemd (`systemctl --user`) on
Linux, launchd (`launchctl`) on macOS.

Every tool call goes through `run_tool`, which turns a missing tool, a failure or a hang into
one `ServiceError` line that says what is missing and what to do.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from .files import NAME

TOOL_TIMEOUT_S = 30.0


class ServiceError(Exception):
    """The service manager could not do it; the message is one line that says what to do."""


def run_tool(
    argv: Sequence[str], *, hint: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a manager's command; ServiceError (naming the command and `hint`) when it cannot."""
    shown = " ".join(argv)
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False
        )
    except FileNotFoundError:
        raise ServiceError(f"{argv[0]} not found; {hint}") from None
    except subprocess.TimeoutExpired:
        raise ServiceError(f"`{shown}` did not answer in {TOOL_TIMEOUT_S:.0f} s; {hint}") from None
    except OSError as exc:
        raise ServiceError(f"cannot run {argv[0]} ({exc.strerror}); {hint}") from None
    if check and done.returncode != 0:
        said = done.stderr.strip() or done.stdout.strip() or f"exit {done.returncode}"
        raise ServiceError(f"`{shown}` failed: {said.splitlines()[0]}; {hint}")
    return done


class Systemd:
    """A systemd user unit in `$XDG_CONFIG_HOME/systemd/user` (`~/.config/systemd/user`)."""

    kind = "systemd user unit"
    HINT = (
        "this needs a systemd user session (log in on a desktop or over SSH; "
        "`loginctl enable-linger $USER` keeps it running after logout)"
    )

    def __init__(self, *, home: Path, config_home: Path | None = None) -> None:
        base = config_home or home / ".config"
        self.path = base / "systemd" / "user" / f"{NAME}.service"

    def register(self) -> None:
        """After the file changed: reload, and start it at every login."""
        self._ctl("daemon-reload")
        self._ctl("enable", NAME)

    def unregister(self) -> None:
        self._ctl("disable", "--now", NAME)

    def forget(self) -> None:
        """After the file is gone."""
        self._ctl("daemon-reload")

    def start(self) -> None:
        self._ctl("start", NAME)

    def stop(self) -> None:
        self._ctl("stop", NAME)

    def state(self) -> str | None:
        """`active`, `inactive`, `failed`, ...; None when systemd cannot be asked."""
        try:
            done = run_tool(["systemctl", "--user", "is-active", NAME], hint="", check=False)
        except ServiceError:
            return None
        word = done.stdout.strip()
        return word if word and " " not in word else None

    def logs_argv(self, *, lines: int, follow: bool) -> list[str]:
        argv = ["journalctl", "--user", "-u", NAME, "-n", str(lines), "--no-pager"]
        return [*argv, "-f"] if follow else argv

    def manual_start(self) -> str:
        return f"systemctl --user daemon-reload && systemctl --user enable --now {NAME}"

    def _ctl(self, *args: str) -> None:
        run_tool(["systemctl", "--user", *args], hint=self.HINT)


class Launchd:
    """A launch agent in `~/Library/LaunchAgents`, its logs in `~/Library/Logs/tui-gateway`."""

    kind = "launchd agent"
    HINT = "launchd agents need a logged-in macOS user session (not sudo, not a bare SSH shell)"

    def __init__(self, *, home: Path, uid: int | None = None) -> None:
        self.path = home / "Library" / "LaunchAgents" / f"{NAME}.plist"
        self.log_dir = home / "Library" / "Logs" / NAME
        self._domain = f"gui/{os.getuid() if uid is None else uid}"

    def register(self) -> None:
        """Nothing to do: launchd loads the user's agents at every login (RunAtLoad)."""

    def unregister(self) -> None:
        if self.state() is not None:
            self._ctl("bootout", f"{self._domain}/{NAME}")

    def forget(self) -> None:
        pass

    def start(self) -> None:
        if self.state() is None:  # not loaded: loading it starts it (RunAtLoad)
            self._ctl("bootstrap", self._domain, str(self.path))
        else:
            self._ctl("kickstart", f"{self._domain}/{NAME}")

    def stop(self) -> None:
        """Unload it: stopped until `service start` or the next login."""
        self._ctl("bootout", f"{self._domain}/{NAME}")

    def state(self) -> str | None:
        """`running`, `not running` (loaded but stopped), or None when not loaded."""
        try:
            done = run_tool(["launchctl", "print", f"{self._domain}/{NAME}"], hint="", check=False)
        except ServiceError:
            return None
        if done.returncode != 0:
            return None
        return "running" if "state = running" in done.stdout else "not running"

    def logs_argv(self, *, lines: int, follow: bool) -> list[str]:
        files = [str(self.log_dir / "err.log"), str(self.log_dir / "out.log")]
        return ["tail", "-n", str(lines), *(["-f"] if follow else []), *files]

    def manual_start(self) -> str:
        return f"launchctl bootstrap {self._domain} {self.path}"

    def _ctl(self, *args: str) -> None:
        run_tool(["launchctl", *args], hint=self.HINT)
