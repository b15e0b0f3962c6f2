"""A log writer that never holds up the event loop (tui_gateway/background_writer.py).

A stderr nobody reads blocked the gateway: its writes waited on the full pipe, on the loop, and
every request waited with them. Here a stream that blocks until told stands in for that pipe,
and a real headless gateway runs with a stderr pipe nobody reads.
"""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp

from tests.factories import LISTENING, SIM_CONFIG
from tui_gateway.background_writer import BackgroundWriter


class Stuck(io.StringIO):
    """A stream whose writes wait until `release` is set (a pipe whose reader stopped)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def write(self, text: str) -> int:
        self.release.wait()
        return super().write(text)


def said_dropped(lines: int) -> str:
    return f"[{lines} dropped]\n"


def test_writes_never_wait_on_a_stuck_stream_and_what_did_not_fit_is_counted() -> None:
    stuck = Stuck()
    writer = BackgroundWriter(lambda: stuck, dropped=said_dropped, cap=3)
    began = time.monotonic()
    for i in range(10):  # the first is taken by the thread (stuck writing), 3 wait, 6 do not fit
        writer.write(f"line {i}\n", 1)
        time.sleep(0.01)  # the thread takes the first before the rest come
    assert time.monotonic() - began < 1.0, "a write waited on the stuck stream"
    assert not writer.close(timeout_s=0.1), "closed while the stream still did not take writes"
    stuck.release.set()
    deadline = time.monotonic() + 5
    while stuck.getvalue().count("\n") < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stuck.getvalue().splitlines() == [
        "line 0", "[6 dropped]", "line 1", "line 2", "line 3",
    ]  # fmt: skip


def test_close_writes_what_is_queued_then_stops_the_thread() -> None:
    out = io.StringIO()
    writer = BackgroundWriter(lambda: out, dropped=said_dropped)
    writer.write("a\nb\n", 2)
    writer.write("c\n", 1)
    assert writer.close() is True
    assert out.getvalue() == "a\nb\nc\n"


async def test_a_headless_gateway_whose_stderr_nobody_reads_keeps_answering(
    tmp_path: Path,
) -> None:
    """Each request is a line on stderr; 2,000 of them are far more than a pipe holds (64 KB)."""
    config = tmp_path / "c.toml"
    config.write_text(SIM_CONFIG)
    argv = [sys.executable, "-m", "tui_gateway", "--config", str(config), "--port", "0",
            "--db", str(tmp_path / "log.db"), "--headless"]  # fmt: skip
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:  # stderr: read by nobody until the end
        try:
            assert proc.stdout is not None and proc.stderr is not None
            found = LISTENING.match(proc.stdout.readline().strip())
            assert found, "no start-up line"
            body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
            headers = {"Authorization": "Bearer cli-key"}
            slowest = 0.0
            timeout = aiohttp.ClientTimeout(total=10)  # a stopped gateway fails, not hangs
            async with aiohttp.ClientSession(headers=headers, timeout=timeout) as http:
                for _ in range(2000):
                    began = time.monotonic()
                    async with http.post(found.group(1) + "/chat/completions", json=body) as r:
                        assert r.status == 200
                        await r.read()
                    slowest = max(slowest, time.monotonic() - began)
            assert slowest < 2.0, f"a request waited {slowest:.1f} s"
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)  # read at last: what was queued comes out
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0
    assert err.count("event=request ") == 2000 and "event=stop" in err.splitlines()[-1]
