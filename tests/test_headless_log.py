"""Issue 12: a headless gateway's stderr, one logfmt line per request outcome and per change,
at the level `--log-level` picks (what `journalctl --user -u tui-gateway` shows)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from typer.testing import CliRunner

from scripts.mock_upstream import make_app as make_mock_upstream
from tests.conftest import GatewayFactory
from tests.factories import API_KEY, LISTENING, make_settings, model
from tui_gateway.cli import app
from tui_gateway.domain.records import LogHealth
from tui_gateway.headless_log import HeadlessLog
from tui_gateway.server import Gateway

_PAIR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^\s"=]+)(?: |$)')


def logfmt(line: str) -> dict[str, str]:
    """One line as key -> value; fails the test when any of it is not `key=value`."""
    fields, at = {}, 0
    for match in _PAIR.finditer(line):
        assert match.start() == at, f"not logfmt at {line[at:]!r} in {line!r}"
        raw = match.group(2)
        fields[match.group(1)] = json.loads(raw) if raw.startswith('"') else raw
        at = match.end()
    assert at == len(line), f"not logfmt at {line[at:]!r} in {line!r}"
    return fields


def lines_of(stream: io.StringIO) -> list[dict[str, str]]:
    return [logfmt(line) for line in stream.getvalue().splitlines()]


async def _chat(gateway: Gateway, model_name: str = "auto") -> tuple[int, str]:
    body = {"model": model_name, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with aiohttp.ClientSession() as http:
        url = f"{gateway.base_url}/chat/completions"
        async with http.post(url, json=body, headers=headers) as response:
            await response.read()
            return response.status, response.headers.get("X-Request-Id", "")


def test_a_headless_demo_logs_its_start_each_request_and_its_stop_on_stderr(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "HOME": str(tmp_path)}
    argv = [sys.executable, "-m", "tui_gateway", "--headless", "--demo", "--port", "0",
            "--db", str(tmp_path / "demo.db")]  # fmt: skip
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        try:
            assert proc.stdout is not None
            found = LISTENING.match(proc.stdout.readline().strip())
            assert found, "no start-up line"
            proc.stdout.readline()
            key = proc.stdout.readline().strip().removeprefix("OPENAI_API_KEY=")
            body = {"model": "auto-fast", "messages": [{"role": "user", "content": "hi"}]}
            request = urllib.request.Request(
                f"{found.group(1)}/chat/completions", data=json.dumps(body).encode(),
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            )  # fmt: skip
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(request, timeout=30) as response:
                status, request_id = response.status, response.headers["X-Request-Id"]
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    lines = [logfmt(line) for line in err.splitlines()]
    assert all(line["ts"].endswith("Z") and line["level"] for line in lines)
    events = [line["event"] for line in lines]
    assert events[0] == "start" and lines[0]["url"] == found.group(1)
    assert events[-1] == "stop" and events.count("stopping") == 1  # demo requests may end between
    stop = lines[-1]
    ours = [line for line in lines if line.get("id") == request_id]
    assert len(ours) == 1, ours
    (line,) = ours
    assert line["event"] == "request" and line["status"] == str(status)
    assert line["level"] == "info" and "error" not in line
    assert line["model"].count("/") == 1 and line["api"] == "chat" and line["stream"] == "false"
    assert int(line["attempts"]) >= 1 and float(line["latency_ms"]) > 0
    assert int(stop["finished"]) >= 1


async def test_a_failed_request_is_a_warning_with_its_error_kind_and_attempts(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(
        make_settings(mock_url, [model("mock", "error-500")], routing={"max_attempts": 2})
    )
    stream = io.StringIO()
    HeadlessLog(gateway.state, level="warning", stream=stream).attach()
    status, _ = await _chat(gateway)
    assert status >= 500
    (line,) = lines_of(stream)  # at warning: no attempt lines, only the request's outcome
    assert (line["level"], line["event"]) == ("warning", "request")
    assert re.fullmatch("[0-9a-f]{16}", line["id"])
    assert line["status"] == str(status) and line["error"]
    assert line["model"] == "mock/error-500" and int(line["attempts"]) >= 1


async def test_info_shows_successes_and_control_changes_that_warning_leaves_out(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(
        make_settings(mock_url, [model("mock", "ok:text=hi"), model("mock", "ok:text=yo")])
    )
    info, warning = io.StringIO(), io.StringIO()
    HeadlessLog(gateway.state, level="info", stream=info).attach()
    HeadlessLog(gateway.state, level="warning", stream=warning).attach()
    status, request_id = await _chat(gateway)
    gateway.state.ban_model("mock/ok:text=yo")
    assert status == 200
    request, control = lines_of(info)
    assert (request["level"], request["event"], request["id"]) == ("info", "request", request_id)
    assert request["attempts"] == "1" and request["provider"] == "mock"
    assert (control["event"], control["msg"]) == ("control", "mock/ok:text=yo banned")
    assert warning.getvalue() == ""


@pytest.fixture
async def rejecting_upstream() -> AsyncIterator[str]:
    server = TestServer(make_mock_upstream(rejected_keys=frozenset({"k1"})), host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("/v1"))
    await server.close()


async def test_a_rejected_upstream_key_and_a_failing_log_are_said_at_their_level(
    gateway_factory: GatewayFactory, rejecting_upstream: str
) -> None:
    gateway = await gateway_factory(make_settings(rejecting_upstream, [model("mock", "ok")]))
    stream = io.StringIO()
    HeadlessLog(gateway.state, level="error", stream=stream).attach()
    await _chat(gateway)
    gateway.state.log_health_changed(LogHealth(pending=3, failing=True, last_error="disk full"))
    rejected, health = lines_of(stream)  # at error: the provider is out, the log fails
    assert (rejected["level"], rejected["event"]) == ("error", "key_rejected")
    assert rejected["provider"] == "mock" and rejected["status"] == "401"
    assert rejected["provider_out"] == "true" and "k1" not in rejected["msg"]
    assert (health["level"], health["event"], health["failing"]) == ("error", "log_health", "true")
    assert health["error"] == "disk full" and health["pending"] == "3"


def test_a_value_with_spaces_quotes_or_newlines_stays_one_parseable_line() -> None:
    from tests.factories import make_settings as settings_for
    from tui_gateway.domain.state import GatewayState

    stream = io.StringIO()
    log = HeadlessLog(
        GatewayState(settings_for("http://127.0.0.1:9/v1")), stream=stream, clock=lambda: 0.0
    )
    log.write("info", "note", {"msg": 'a "quoted"\nword = x', "n": 3, "none": None})
    (text,) = stream.getvalue().splitlines()
    assert text.startswith("ts=1970-01-01T00:00:00.000Z level=info event=note ")
    assert logfmt(text) == {
        "ts": "1970-01-01T00:00:00.000Z", "level": "info", "event": "note",
        "msg": 'a "quoted"\nword = x', "n": "3",
    }  # fmt: skip


def test_an_unknown_log_level_is_refused_with_the_choices() -> None:
    result = CliRunner().invoke(app, ["--demo", "--headless", "--log-level", "loud"])
    assert result.exit_code == 2
    assert "--log-level must be one of error, warning, info, debug, got 'loud'" in result.output
    assert "Traceback" not in result.output


async def test_lines_under_load_go_out_together_in_one_write(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    class Counting(io.StringIO):
        writes = 0

        def write(self, text: str) -> int:
            self.writes += 1
            return super().write(text)

    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok")]))
    stream = Counting()
    log = HeadlessLog(gateway.state, level="info", stream=stream, batch_s=60.0)
    log.attach()
    for _ in range(3):
        assert (await _chat(gateway))[0] == 200
    assert stream.getvalue() == ""  # held, not written per request
    log.flush()
    assert [line["event"] for line in lines_of(stream)] == ["request"] * 3
    assert stream.writes == 1


async def test_python_logging_warnings_and_errors_are_lines_of_the_log_too(
    gateway_factory: GatewayFactory, mock_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not logging's last resort (bare text straight to stderr, written on the loop): a logfmt
    line, level and logger and message as fields and a traceback as one escaped field."""
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok")]))
    stream = io.StringIO()
    detach = HeadlessLog(gateway.state, level="warning", stream=stream).attach()
    logger = logging.getLogger("tui_gateway.somewhere")
    logger.info("not shown: below a warning")
    logger.warning("cluster: change to %s skipped", "controls")
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("unhandled error in POST /v1/chat/completions")
    elsewhere = threading.Thread(target=logger.warning, args=("from another thread",))
    elsewhere.start()
    elsewhere.join()
    await asyncio.sleep(0.05)  # the other thread's line is written on the loop
    detach()
    logger.warning("after detach: not this log's")
    lines = lines_of(stream)
    assert [(line["level"], line["event"], line["msg"]) for line in lines] == [
        ("warning", "log", "cluster: change to controls skipped"),
        ("error", "log", "unhandled error in POST /v1/chat/completions"),
        ("warning", "log", "from another thread"),
    ]
    assert {line["logger"] for line in lines} == {"tui_gateway.somewhere"}
    assert lines[1]["exc"].startswith("Traceback") and lines[1]["exc"].endswith("ValueError: boom")
    assert "cluster: change" not in capsys.readouterr().err  # nothing bare on stderr


async def test_at_level_error_logging_warnings_are_not_shown(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok")]))
    stream = io.StringIO()
    HeadlessLog(gateway.state, level="error", stream=stream).attach()
    logging.getLogger("tui_gateway.x").warning("quiet")
    logging.getLogger("tui_gateway.x").error("loud")
    assert [line["msg"] for line in lines_of(stream)] == ["loud"]
