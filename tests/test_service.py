"""Issue 12: `tui-gateway service`, the gateway as a user service (systemd unit, launchd agent).

The unit and the plist are checked as text; install, start and uninstall run against a temp
HOME with `systemctl` / `launchctl` replaced by a script on PATH that records its arguments;
`status` asks a real gateway on loopback.
"""

from __future__ import annotations

import asyncio
import os
import plistlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import GatewayFactory
from tests.factories import API_KEY, make_settings, model
from tui_gateway import cli_service, paths
from tui_gateway.cli import app
from tui_gateway.config import load_settings
from tui_gateway.server import Gateway, bind_socket
from tui_gateway.service import Launchd, ServiceError, install, manager_for
from tui_gateway.service.files import (
    config_in,
    gateway_argv,
    installed_argv,
    launchd_plist,
    program,
    systemd_unit,
)

CONFIG = """
[server]
port = {port}
[[providers]]
name = "sim"
kind = "simulated"
[[models]]
provider = "sim"
id = "quick"
"""
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="systemd")


def _config(tmp_path: Path, port: int = 4141, extra: str = "") -> Path:
    path = tmp_path / "my configs" / "gw.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(CONFIG.format(port=port) + extra)
    return path


def _fake_tool(tmp_path: Path, name: str, script: str = "exit 0") -> Path:
    """`name` on PATH as a script that appends its arguments to `calls.log`, then runs `script`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / name
    tool.write_text(f'#!/bin/sh\necho "$*" >> "{tmp_path / "calls.log"}"\n{script}\n')
    tool.chmod(0o755)
    return bin_dir


def _calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


SYSTEMCTL = 'case "$2" in is-active) echo inactive; exit 3;; esac'
NO_BUS = 'echo "Failed to connect to bus: No medium found" >&2; exit 1'


# --- the files, as text ------------------------------------------------------------------------


def test_the_unit_runs_the_gateway_headless_with_the_config_and_restarts_it_on_failure() -> None:
    argv = gateway_argv(["/opt/venv/bin/tui-gateway"], Path("/home/u/my configs/100%.toml"))
    unit = systemd_unit(
        argv, env_file=Path("/home/u/.config/tui-gateway/service.env"),
        environment={"XDG_DATA_HOME": "/home/u/data"},
    )  # fmt: skip
    lines = unit.splitlines()
    assert lines[0].startswith("# Written by `tui-gateway service install`")
    assert (
        'ExecStart=/opt/venv/bin/tui-gateway --headless --config "/home/u/my configs/100%%.toml"'
        in lines
    )
    assert "Environment=XDG_DATA_HOME=/home/u/data" in lines
    assert "EnvironmentFile=-/home/u/.config/tui-gateway/service.env" in lines
    assert {"Restart=on-failure", "RestartPreventExitStatus=2", "Type=exec"} <= set(lines)
    assert (
        lines.index("[Service]") < lines.index("[Install]") < lines.index("WantedBy=default.target")
    )


def test_the_command_a_unit_holds_reads_back_as_it_was_written(tmp_path: Path) -> None:
    argv = gateway_argv(["/opt/my venv/bin/python", "-m", "tui_gateway"], tmp_path / "a $b%c.toml")
    unit = tmp_path / "tui-gateway.service"
    unit.write_text(systemd_unit(argv, env_file=tmp_path / "env"))
    assert installed_argv(unit) == argv
    assert config_in(argv) == tmp_path / "a $b%c.toml"
    assert config_in(gateway_argv(["tui-gateway"], None)) is None


def test_the_program_is_the_script_beside_the_interpreter_else_python_dash_m(
    tmp_path: Path,
) -> None:
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python"
    python.touch()
    assert program(str(python)) == [str(python), "-m", "tui_gateway"]
    (bin_dir / "tui-gateway").touch()
    assert program(str(python)) == [str(bin_dir / "tui-gateway")]


def test_the_agent_plist_runs_the_same_command_keeps_it_alive_and_names_its_logs(
    tmp_path: Path,
) -> None:
    argv = gateway_argv(["/Users/u/.venv/bin/tui-gateway"], Path("/Users/u/gw.toml"))
    text = launchd_plist(argv, log_dir=tmp_path / "Logs")
    assert "<!-- Written by `tui-gateway service install`" in text
    agent = plistlib.loads(text.encode())
    assert agent["Label"] == "tui-gateway"
    assert agent["ProgramArguments"] == [
        "/Users/u/.venv/bin/tui-gateway", "--headless", "--config", "/Users/u/gw.toml",
    ]  # fmt: skip
    assert agent["RunAtLoad"] is True and agent["KeepAlive"] == {"SuccessfulExit": False}
    assert agent["StandardErrorPath"] == str(tmp_path / "Logs" / "err.log")
    assert agent["StandardOutPath"] == str(tmp_path / "Logs" / "out.log")


# --- install, start, uninstall (systemd) --------------------------------------------------------


@linux_only
def test_install_writes_the_unit_only_under_home_says_so_and_enables_it(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(home)
    monkeypatch.setenv("PATH", f"{_fake_tool(home, 'systemctl', SYSTEMCTL)}:{os.environ['PATH']}")
    before = {p for p in home.rglob("*") if p.is_file()}
    result = CliRunner().invoke(app, ["service", "install", "--config", str(config)])
    assert result.exit_code == 0, result.output
    unit = Path(os.environ["XDG_CONFIG_HOME"]) / "systemd" / "user" / "tui-gateway.service"
    assert {p for p in home.rglob("*") if p.is_file()} - before == {unit, home / "calls.log"}
    text = unit.read_text()
    assert installed_argv(unit) == [*program(), "--headless", "--config", str(config)]
    assert f"Environment=XDG_DATA_HOME={os.environ['XDG_DATA_HOME']}" in text
    said = result.stdout.splitlines()
    assert said[0].startswith(f"wrote {unit} (systemd user unit running: ")
    assert said[-1] == "start it now: tui-gateway service start"
    assert _calls(home) == [
        "--user daemon-reload", "--user enable tui-gateway", "--user is-active tui-gateway",
    ]  # fmt: skip

    again = CliRunner().invoke(app, ["service", "install", "--config", str(config)])
    assert again.stdout.startswith(f"{unit} is up to date")

    gone = CliRunner().invoke(app, ["service", "uninstall"])
    assert gone.exit_code == 0 and gone.stdout == f"removed {unit}\n"
    assert not unit.exists()
    assert _calls(home)[-2:] == ["--user disable --now tui-gateway", "--user daemon-reload"]
    nothing = CliRunner().invoke(app, ["service", "uninstall"])
    assert nothing.exit_code == 0 and "no service installed" in nothing.stdout


@linux_only
def test_install_names_the_env_values_a_service_will_not_see(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extra = '[[providers]]\nname = "groq"\nkind = "openai"\nbase_url = "https://x/v1"\n'
    extra += 'api_keys = ["env:GROQ_TEST_KEY"]\n'
    config = _config(home, extra=extra)
    monkeypatch.setenv("GROQ_TEST_KEY", "secret")
    monkeypatch.setenv("PATH", str(_fake_tool(home, "systemctl", SYSTEMCTL)))
    result = CliRunner().invoke(app, ["service", "install", "--config", str(config)])
    assert result.exit_code == 0, result.output
    env_file = paths.config_dir() / "service.env"
    assert f"put GROQ_TEST_KEY as NAME=value lines in {env_file}" in result.stdout
    assert "secret" not in result.stdout and not env_file.exists()


@linux_only
@pytest.mark.parametrize(
    ("script", "said"),
    [
        (None, "tui-gateway: systemctl not found; this needs a systemd user session"),
        (NO_BUS, "tui-gateway: `systemctl --user daemon-reload` failed: Failed to connect to bus"),
    ],
)
def test_without_a_systemd_user_session_install_still_writes_the_unit_and_says_how_to_start(
    home: Path, monkeypatch: pytest.MonkeyPatch, script: str | None, said: str
) -> None:
    bin_dir = home / "bin"
    bin_dir.mkdir()
    if script is not None:
        _fake_tool(home, "systemctl", script)
    monkeypatch.setenv("PATH", str(bin_dir))
    result = CliRunner().invoke(app, ["service", "install", "--config", str(_config(home))])
    assert result.exit_code == 0
    assert result.stdout.startswith("wrote ")
    (line,) = result.stderr.splitlines()
    assert line.startswith(said)
    assert line.endswith(
        "start it with: systemctl --user daemon-reload && systemctl --user enable --now tui-gateway"
    )
    assert "Traceback" not in result.output

    start = CliRunner().invoke(app, ["service", "start"])
    assert start.exit_code == 2
    assert start.stderr.count("\n") == 1 and start.stderr.startswith(
        said.replace("daemon-reload", "start tui-gateway")
    )


@linux_only
def test_start_and_stop_call_systemctl_and_start_waits_for_an_answer(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{_fake_tool(home, 'systemctl', SYSTEMCTL)}:{os.environ['PATH']}")
    monkeypatch.setattr(cli_service, "START_WAIT_S", 0.3)
    config = _config(home, port=_free_port())
    CliRunner().invoke(app, ["service", "install", "--config", str(config)])
    started = CliRunner().invoke(app, ["service", "start"])
    assert started.exit_code == 0
    assert (
        "started the systemd user unit, but nothing answers at http://127.0.0.1:" in started.stdout
    )
    stopped = CliRunner().invoke(app, ["service", "stop"])
    assert stopped.stdout == "stopped the systemd user unit\n"
    assert _calls(home)[-2:] == ["--user start tui-gateway", "--user stop tui-gateway"]


def test_install_refuses_a_missing_or_broken_config_before_writing_anything(home: Path) -> None:
    missing = CliRunner().invoke(app, ["service", "install"])
    assert missing.exit_code == 2
    assert f"no config at {paths.default_config_path()}: run `tui-gateway init`" in missing.stderr
    broken = _config(home, extra='[routing]\nmax_attempts = "many"\n')
    result = CliRunner().invoke(app, ["service", "install", "--config", str(broken)])
    assert result.exit_code == 2 and "routing.max_attempts" in result.stderr
    assert not (home / "config" / "systemd").exists()


def test_start_before_install_says_to_install_first(home: Path) -> None:
    result = CliRunner().invoke(app, ["service", "start"])
    if sys.platform.startswith("linux") or sys.platform == "darwin":
        assert result.exit_code == 2
        assert "no service installed at" in result.stderr
        assert "run `tui-gateway service install` first" in result.stderr


# --- launchd ------------------------------------------------------------------------------------


def test_the_launchd_agent_is_written_under_library_and_started_with_bootstrap(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "PATH", str(_fake_tool(home, "launchctl", 'if [ "$1" = print ]; then exit 113; fi'))
    )
    agent = Launchd(home=home, uid=501)
    config = _config(home)
    done = install(agent, config=config, config_path=config, environ={}, prog=["/bin/tgw"])
    plist = home / "Library" / "LaunchAgents" / "tui-gateway.plist"
    assert (
        done.said[0]
        == f"wrote {plist} (launchd agent running: /bin/tgw --headless --config '{config}')"
    )
    assert done.warning is None
    assert plistlib.loads(plist.read_bytes())["ProgramArguments"][-1] == str(config)
    assert (home / "Library" / "Logs" / "tui-gateway").is_dir()
    edited = plistlib.loads(plist.read_bytes())
    plist.write_bytes(plistlib.dumps({**edited, "EnvironmentVariables": {"GROQ_API_KEY": "k"}}))
    again = install(agent, config=config, config_path=config, environ={}, prog=["/bin/tgw"])
    assert again.said[0].startswith(f"updated {plist}")
    assert plistlib.loads(plist.read_bytes())["EnvironmentVariables"] == {"GROQ_API_KEY": "k"}
    assert set(_calls(home)) == {"print gui/501/tui-gateway"}  # install only asks, loads nothing
    agent.start()
    agent.stop()
    assert _calls(home)[-3:] == [
        "print gui/501/tui-gateway", f"bootstrap gui/501 {plist}", "bootout gui/501/tui-gateway",
    ]  # fmt: skip


def test_an_os_without_a_user_service_manager_is_named_with_what_to_do() -> None:
    with pytest.raises(ServiceError, match="no user service manager on win32 .* --headless"):
        manager_for(platform="win32", environ={})


# --- status against a real gateway -------------------------------------------------------------


def _free_port() -> int:
    sock = bind_socket("127.0.0.1", 0)
    port: int = sock.getsockname()[1]
    sock.close()
    return port


async def _status(home: Path, *args: str, path: str | None = None) -> tuple[int, str]:
    env = {**os.environ, "HOME": str(home), "PATH": path or os.environ["PATH"]}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tui_gateway", "service", "status", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


@linux_only
async def test_status_finds_the_installed_gateway_and_says_up_url_and_uptime(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    config = _config(home, port=port)  # no api_key: the generated one, from the data dir
    gateway = Gateway(
        load_settings(config), api_key=paths.generated_api_key(), db_path=home / "g.db", sock=sock
    )
    await gateway.start()
    try:
        bin_dir = _fake_tool(home, "systemctl", 'case "$2" in is-active) echo active;; esac')
        monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
        CliRunner().invoke(app, ["service", "install", "--config", str(config)])
        code, out = await _status(home)  # no --config: the one the unit runs with
    finally:
        await gateway.stop()
    assert code == 0, out
    up, service = out.splitlines()
    found = re.fullmatch(
        rf"tui-gateway is up at http://127\.0\.0\.1:{port}/v1 \(up (\d+) s, since \S+Z, "
        rf"pid {os.getpid()}, version \S+\)",
        up,
    )
    assert found, up
    assert int(found.group(1)) < 60
    assert service.startswith("service: active (systemd user unit ")


async def test_status_says_not_running_when_nothing_listens(home: Path) -> None:
    port = _free_port()
    code, out = await _status(home, "--config", str(_config(home, port=port)))
    assert code == cli_service.NOT_RUNNING
    first = out.splitlines()[0]
    assert first.startswith(
        f"tui-gateway is not running: nothing answers at http://127.0.0.1:{port} ("
    )
    assert "Traceback" not in out


async def test_status_says_up_but_refused_when_the_config_gives_another_key(
    home: Path, gateway_factory: GatewayFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok")]))
    config = _config(home, port=gateway.port, extra="")
    config.write_text(config.read_text().replace("[server]", '[server]\napi_key = "not-it"'))
    code, out = await _status(home, "--config", str(config))
    assert code == 0
    assert out.splitlines()[0] == (
        f"tui-gateway is up at http://127.0.0.1:{gateway.port}/v1, but it refused the key this "
        "config gives, so its uptime is unknown"
    )
    assert API_KEY not in out


def test_a_plain_run_imports_neither_the_service_package_nor_setup() -> None:
    code = (
        "import sys, tui_gateway.cli; "
        "print(sorted(m for m in ('tui_gateway.service', 'tui_gateway.setup') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr
