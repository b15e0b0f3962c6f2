"""Issue 10: the event loop choice (`--loop auto|uvloop|asyncio`) and a lean headless start.

`auto` runs on uvloop where it is installed and supported and on asyncio's loop otherwise; an
explicit `uvloop` that cannot be had is a clear error before anything starts. A headless
gateway, once serving, has imported neither Textual, rich nor pydantic (typer would import
pydantic to convert the run flags: about 8 MB of idle RSS).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tui_gateway import event_loop
from tui_gateway.cli import app


def test_asyncio_choice_is_the_default_loop() -> None:
    factory, kind = event_loop.loop_factory("asyncio")
    assert kind == "asyncio" and factory is asyncio.new_event_loop


def test_auto_takes_uvloop_when_it_is_installed() -> None:
    uvloop = pytest.importorskip("uvloop")
    factory, kind = event_loop.loop_factory("auto")
    assert kind == "uvloop" and factory is uvloop.new_event_loop


def test_auto_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` now raises ImportError
    assert event_loop.loop_factory("auto")[1] == "asyncio"
    with pytest.raises(event_loop.LoopUnavailable, match="not installed"):
        event_loop.loop_factory("uvloop")


def test_auto_is_asyncio_on_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    assert event_loop.loop_factory("auto")[1] == "asyncio"
    with pytest.raises(event_loop.LoopUnavailable, match="Windows"):
        event_loop.loop_factory("uvloop")


def test_unknown_choice_is_refused() -> None:
    with pytest.raises(ValueError, match="choose one of auto, uvloop, asyncio"):
        event_loop.loop_factory("trio")


@pytest.mark.parametrize("choice", ["asyncio", "auto"])
def test_run_returns_the_result_on_the_chosen_loop(choice: str) -> None:
    async def main() -> str:
        return event_loop.running_kind()

    assert event_loop.run(main(), choice=choice) == event_loop.loop_factory(choice)[1]


def test_run_with_a_bad_choice_closes_the_coroutine() -> None:
    async def main() -> None:
        raise AssertionError("never runs")

    coro = main()
    with pytest.raises(ValueError):
        event_loop.run(coro, choice="nope")
    assert coro.cr_frame is None  # closed: no "coroutine was never awaited" warning


def test_unknown_loop_flag_is_a_clear_error() -> None:
    result = CliRunner().invoke(app, ["--loop", "nope", "--headless", "--demo"])
    assert result.exit_code == 2
    assert "unknown event loop 'nope'" in result.output and "Traceback" not in result.output


def test_a_bad_port_is_still_a_clear_error_without_pydantic() -> None:
    result = CliRunner().invoke(app, ["--port", "abc", "--headless", "--demo"])
    assert result.exit_code == 2
    assert "Invalid value for '--port'" in result.output and "not a valid integer" in result.output


_SERVING = """
import os, signal, sys
import tui_gateway.cli as cli

announce = cli._announce

def report(gateway):
    announce(gateway)
    heavy = sorted(m for m in ("pydantic", "textual", "rich") if m in sys.modules)
    print("HEAVY", heavy, flush=True)
    os.kill(os.getpid(), signal.SIGTERM)

cli._announce = report
sys.argv = ["tui-gateway", "--headless", "--demo", "--port", "0", "--db", sys.argv[1]] + sys.argv[2:]
cli.main()
"""


@pytest.mark.parametrize("loop", ["asyncio", "auto"])
def test_a_serving_headless_gateway_has_not_imported_textual_rich_or_pydantic(
    tmp_path: Path, loop: str
) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _SERVING, str(tmp_path / "demo.db"), "--loop", loop],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout, out.stdout
    assert f"event loop {event_loop.loop_factory(loop)[1]}" in out.stderr
