"""The screen under chaos (`chaos_gateway.py --screen`): a gateway with its TUI, keys pressed.

The first gateway of the run is started with its terminal UI, in a private tmux server (as
scripts/bench_tui.py does), and a second user presses its keys at random every 50-300 ms while
the clients and the other user go on: moving between panes and rows, opening a request's
detail and the analytics, moving requests on, banning, clearing, filtering, changing the theme.
Never `q` on the main screen, `B` (it would ban the only provider) or the command palette.

What must hold: the app is still running when the load ends, the screen was still counting
requests, and after Escape it quits on `q` with exit status 0 and no traceback on its pane.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp

from scripts.bench import ROOT
from scripts.bench_tui import COLUMNS, LINES, Screen, _free_port

KEYS = (
    *("Tab", "BTab", "Up", "Down", "Up", "Down", "PageDown", "Home"),
    *("Enter", "Escape", "Escape", "x", "X", "b", "d", "D", "y", "n", "f", "v", "t"),
    *("a", "1", "2", "3", "r", "?", "!", "/", "h", "c", "e", "p", "space", "S-Up", "S-Down"),
)
"""What the second user presses; `/` opens the filter, so letters after it are typed there."""
START_TIMEOUT_S = 30.0


async def start(workdir: Path, config: Path, db: Path, key: str) -> tuple[Screen, str]:
    """The gateway with its TUI in a detached tmux pane, once it answers and draws."""
    screen = Screen(workdir / "tmux.sock")
    port = _free_port()
    (workdir / "tmux.conf").write_text("set -g remain-on-exit on\nset -g status off\n")
    # COLUMNS and LINES would win over the pane's size (under pytest they say 80x24). The
    # shell writes the exit status down: tmux started from pytest may not reap its pane's
    # process for a long while, so `pane_dead_status` can stay empty.
    command = f"env -u COLUMNS -u LINES {sys.executable} -m tui_gateway"
    command += f" --config {config} --db {db} --port {port}; echo $? > {screen.socket}.exit"
    await screen.tmux(
        "-f", str(workdir / "tmux.conf"), "new-session", "-d", "-s", "bench",
        "-x", str(COLUMNS), "-y", str(LINES), "-c", str(ROOT), command,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http:
        while True:
            try:
                async with http.get(url + "/v1/models") as resp:
                    if resp.status == 200 and await screen.done_counter() is not None:
                        return screen, url
            except (aiohttp.ClientError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the TUI gateway did not start:\n{await screen.capture()}")
            await asyncio.sleep(0.2)


async def press(screen: Screen, rng: random.Random, until: float, pressed: Counter[str]) -> None:
    """Random keys until `until`, and the `done` counter read now and then."""
    while time.monotonic() < until:
        await asyncio.sleep(rng.uniform(0.05, 0.3))
        key = rng.choice(KEYS)
        await screen.tmux("send-keys", "-t", "bench", key, check=False)
        pressed[key] += 1
        if rng.random() < 0.1 and (done := await screen.done_counter()) is not None:
            screen.samples.append((time.monotonic(), done))


async def _pane(screen: Screen, field: str) -> str:
    return (await screen.tmux("display-message", "-p", "-t", "bench", field, check=False)).strip()


async def finish(screen: Screen) -> list[str]:
    """Quit the app as a user would and say what went wrong, if anything; ends the tmux."""
    problems = []
    try:
        counts = [done for _, done in screen.samples]
        if len(counts) >= 2 and counts[-1] <= counts[0]:
            problems.append(
                f"the screen stopped counting requests: done {counts[0]} → {counts[-1]}"
            )
        if await _pane(screen, "#{pane_dead}") == "1":
            problems.append(f"the screen's gateway died under the keys:\n{await screen.capture()}")
            return problems
        for key in ("Escape", "Escape", "Escape", "q"):  # out of a detail, a filter, a dialog
            await screen.tmux("send-keys", "-t", "bench", key, check=False)
            await asyncio.sleep(0.3)
        written = Path(f"{screen.socket}.exit")
        for _ in range(100):
            if written.exists() and (status := written.read_text().strip()):
                break
            await asyncio.sleep(0.1)
        else:
            status = "still running"
        text = await screen.capture()
        if status != "0" or "Traceback" in text:
            problems.append(f"the screen's gateway did not quit cleanly ({status!r}):\n{text}")
    finally:
        await screen.tmux("kill-server", check=False)
    return problems
