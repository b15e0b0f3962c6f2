"""What the TUI costs the proxy: throughput with the screen running, against headless.

    python scripts/bench_tui.py [--requests 9000] [--rounds 3] [--output FILE] [--quick]
                                [--profile-tui tui.prof] [--gateway-args "--loop asyncio"]
                                [--gateway-root /tmp/worktree]

Starts, on 127.0.0.1: the mock upstream, `python -m tui_gateway --headless`, and the same
gateway with its TUI in a real terminal (a private tmux server, 120x36). The TUI prints its URL
before the screen takes over, so its port is fixed in the config instead of read from stdout.
Both get the same streaming workload (`ok:chunks=50`, 32 in flight) in alternating rounds.
While the TUI target is loaded, the pane is captured every 0.4 s (the TUI repaints at least
every 0.35 s) and the status line's
`done N` counter must keep rising: the screen repaints under load, not only after it.

Targets: TUI throughput >= 0.90 x headless, and the counter rose between nearly all captures.
Every child (the mock, the headless gateway, the tmux server and the TUI in it) is stopped on
every exit path: normal end, error, SIGINT, SIGTERM. The tmux server uses its own socket in the
run's temporary folder and never touches a developer's tmux. Only a SIGKILL of this script can
leave the tmux server (and the TUI in it) behind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import re
import shlex
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.bench import (  # noqa: E402  (the path above makes `scripts` importable)
    GATEWAY_API_KEY,
    STREAM_MODEL,
    Fleet,
    Result,
    Target,
    Workload,
    cpu_seconds,
    gateway_config,
    machine_summary,
    percentile,
    rss_mb,
    run_batch,
    sessions,
)

MIN_RATIO = 0.90
MIN_RISING_SHARE = 0.8
"""Share of consecutive screen captures (under load) whose `done` counter went up."""
CAPTURE_EVERY_S = 0.4  # a little slower than the slowest repaint (0.35 s under heavy load)
COLUMNS, LINES = 120, 36
START_TIMEOUT_S = 30.0
DONE_RE = re.compile(r"\bdone (\d+)")
LAG_RE = re.compile(r"\blag (\d+) ?ms")


@dataclass(slots=True)
class Screen:
    """The tmux server that holds the TUI, and what was read off its pane."""

    socket: Path
    """A private tmux server: its socket lives in the run's temporary folder."""
    samples: list[tuple[float, int]] = field(default_factory=list)
    lags_ms: list[int] = field(default_factory=list)
    """The loop lag the status line showed, per capture under load."""
    rounds: list[tuple[int, int]] = field(default_factory=list)
    """(captures, rising pairs) per loaded round."""
    status_line: str = ""
    """The last status line read under load, as the terminal showed it."""
    _line: str = ""

    async def tmux(self, *args: str, check: bool = True) -> str:
        proc = await asyncio.create_subprocess_exec(
            "tmux", "-S", str(self.socket), *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
        if check and proc.returncode:
            raise RuntimeError(f"tmux {' '.join(args)}: {err.decode(errors='replace').strip()}")
        return out.decode(errors="replace")

    async def capture(self) -> str:
        return await self.tmux("capture-pane", "-p", "-t", "bench", check=False)

    async def done_counter(self) -> int | None:
        """The status line's `done N`, or None if it is not on screen (or cut at the edge)."""
        for line in (await self.capture()).splitlines():
            found = DONE_RE.search(line)
            if found is None:
                continue
            if not line[found.end() :].strip() and len(line.rstrip()) >= COLUMNS - 1:
                return None  # the number touches the right edge: it may be cut short
            self._line = line.strip()
            return int(found.group(1))
        return None

    async def watch(self, stop: asyncio.Event) -> None:
        """Sample the counter until `stop`; record how often it rose between captures."""
        values: list[int] = []
        while not stop.is_set():
            value = await self.done_counter()
            if value is not None:
                values.append(value)
                self.status_line = self._line
                if lag := LAG_RE.search(self._line):
                    self.lags_ms.append(int(lag.group(1)))
                self.samples.append((time.monotonic(), value))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), CAPTURE_EVERY_S)
        rising = sum(b > a for a, b in zip(values, values[1:], strict=False))
        self.rounds.append((len(values), rising))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_tui(
    workdir: Path,
    mock_url: str,
    screen: Screen,
    *,
    profile: str | None = None,
    root: Path = ROOT,
    extra: str = "",
) -> tuple[Target, int, int]:
    """Run the gateway with its TUI in a detached tmux pane; wait until it answers."""
    port = _free_port()
    config = workdir / "tui.toml"
    config.write_text(gateway_config(mock_url).replace("[server]\n", f"[server]\nport = {port}\n"))
    (workdir / "tmux.conf").write_text("set -g remain-on-exit on\nset -g status off\n")
    # Under cProfile the ratio is distorted; that run is for finding where the time goes.
    python = f"{sys.executable} -m cProfile -o {profile}" if profile else sys.executable
    command = f"exec {python} -m tui_gateway --config {config} --db {workdir / 'tui.db'} {extra}"
    if root != ROOT:
        command = f"PYTHONPATH={shlex.quote(str(root))} {command}"
    await screen.tmux(
        "-f", str(workdir / "tmux.conf"), "new-session", "-d", "-s", "bench",
        "-x", str(COLUMNS), "-y", str(LINES), "-c", str(root), command,
    )  # fmt: skip
    pid = int((await screen.tmux("list-panes", "-t", "bench", "-F", "#{pane_pid}")).split()[0])
    server_pid = int((await screen.tmux("display-message", "-p", "#{pid}")).strip())
    url = f"http://127.0.0.1:{port}/v1"
    headers = {"Authorization": f"Bearer {GATEWAY_API_KEY}"}
    deadline = time.monotonic() + START_TIMEOUT_S
    async with aiohttp.ClientSession(headers=headers) as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(url + "/models") as resp:
                    if resp.status == 200 and await screen.done_counter() is not None:
                        break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"TUI gateway did not start; its pane:\n{await screen.capture()}"
                )
            await asyncio.sleep(0.2)
    return Target("tui", url + "/chat/completions", GATEWAY_API_KEY, pid), pid, server_pid


async def stop_tui(screen: Screen, pid: int | None) -> None:
    """Quit the app with `q` (it flushes its log), then end the tmux server in any case."""
    with contextlib.suppress(RuntimeError, OSError):
        if pid is not None and Path(f"/proc/{pid}").exists():
            await screen.tmux("send-keys", "-t", "bench", "q", check=False)
            for _ in range(50):
                if not Path(f"/proc/{pid}").exists() or "<defunct>" in _comm(pid):
                    break
                await asyncio.sleep(0.1)
        await screen.tmux("kill-server", check=False)


def _comm(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text()
    return ""


@dataclass(slots=True)
class Run:
    results: dict[str, Result] = field(
        default_factory=lambda: {"headless": Result(), "tui": Result()}
    )
    per_round: list[tuple[float, float]] = field(default_factory=list)
    """(headless req/s, tui req/s) per round."""
    tmux_cpu_s: float = 0.0
    final_done: int | None = None
    sent_to_tui: int = 0
    rss_mb: dict[str, float] = field(default_factory=dict)


async def measure(args: argparse.Namespace, run: Run, screen: Screen, workdir: Path) -> None:
    fleet = Fleet(workdir)
    loop = asyncio.get_running_loop()
    tui_pid: int | None = None
    try:
        py = sys.executable
        mock = await fleet.spawn(
            "mock", [py, str(ROOT / "scripts/mock_upstream.py"), "--port", "0"]
        )
        (workdir / "headless.toml").write_text(gateway_config(mock.url))
        argv = [py, "-m", "tui_gateway", "--headless", "--config", str(workdir / "headless.toml")]
        argv += ["--port", "0", "--db", str(workdir / "headless.db")]
        argv += shlex.split(args.gateway_args or "")
        root = Path(args.gateway_root).resolve() if args.gateway_root else None
        gw = await fleet.spawn("headless", argv, extra_lines=2, root=root)
        headless = Target("headless", gw.url + "/chat/completions", GATEWAY_API_KEY, gw.pid)
        tui, tui_pid, tmux_pid = await start_tui(
            workdir,
            mock.url,
            screen,
            profile=args.profile_tui,
            root=root or ROOT,
            extra=args.gateway_args or "",
        )
        targets = [headless, tui]
        workload = Workload("stream-c32", True, args.concurrency, args.requests, STREAM_MODEL)
        warm = Workload("warmup", True, 8, args.warmup, STREAM_MODEL)
        async with sessions(targets) as clients:
            for t in targets:
                await run_batch(clients[t.name], t, warm, args.warmup, 30.0, Result(), mock.pid)
            run.sent_to_tui = args.warmup
            per_round = math.ceil(args.requests / args.rounds)
            cap = args.time_cap / args.rounds
            for i in range(args.rounds):
                rps: dict[str, float] = {}
                for t in targets if i % 2 == 0 else targets[::-1]:
                    print(f"round {i + 1}: {t.name} ...", file=sys.stderr, flush=True)
                    one = Result()
                    stop = asyncio.Event()
                    watcher = None
                    if t is tui:
                        watcher = loop.create_task(screen.watch(stop), name="screen-watch")
                    tmux0 = cpu_seconds(tmux_pid)
                    await run_batch(clients[t.name], t, workload, per_round, cap, one, mock.pid)
                    stop.set()
                    if watcher is not None:
                        await watcher
                        run.tmux_cpu_s += cpu_seconds(tmux_pid) - tmux0
                        run.sent_to_tui += one.completed + one.errors
                    rps[t.name] = one.rps
                    _merge(run.results[t.name], one)
                run.per_round.append((rps["headless"], rps["tui"]))
        await asyncio.sleep(0.5)  # a few repaints after the last request
        run.final_done = await screen.done_counter()
        run.rss_mb = {"headless": rss_mb(gw.pid, "VmHWM"), "tui": rss_mb(tui_pid, "VmHWM")}
    except Exception:  # not on ^C or SIGTERM: then only clean up
        fleet.print_stderr_tails()
        with contextlib.suppress(Exception):
            print(f"--- TUI pane\n{await screen.capture()}", file=sys.stderr)
        raise
    finally:
        await stop_tui(screen, tui_pid)
        await fleet.stop()


def _merge(into: Result, one: Result) -> None:
    into.latencies += one.latencies
    into.ttfbs += one.ttfbs
    into.errors += one.errors
    for kind, n in one.error_kinds.items():
        into.error_kinds[kind] = into.error_kinds.get(kind, 0) + n
    into.elapsed_s += one.elapsed_s
    into.cpu_s += one.cpu_s


def verdicts(run: Run, screen: Screen) -> list[tuple[str, str, bool]]:
    h, t = run.results["headless"], run.results["tui"]
    ratio = t.rps / h.rps if h.rps else math.nan
    captures = sum(c for c, _ in screen.rounds)
    pairs = sum(max(c - 1, 0) for c, _ in screen.rounds)
    rising = sum(r for _, r in screen.rounds)
    share = rising / pairs if pairs else 0.0
    every_round = bool(screen.rounds) and all(r >= 2 for _, r in screen.rounds)
    return [
        (f"TUI throughput ≥ {MIN_RATIO:.2f} × headless", f"{ratio:.3f}", ratio >= MIN_RATIO),
        (
            "screen kept updating under load",
            f"`done` rose in {rising}/{pairs} capture pairs ({captures} captures)",
            share >= MIN_RISING_SHARE and every_round,
        ),
        ("no request errors", f"{h.errors + t.errors}", h.errors + t.errors == 0),
    ]


def markdown(args: argparse.Namespace, run: Run, screen: Screen) -> str:
    lines = [
        f"- Machine: {machine_summary()}",
        f"- Command: `{' '.join(['python', 'scripts/bench_tui.py', *sys.argv[1:]])}`",
        f"- Plan: {args.requests} streams of `{STREAM_MODEL}` per target at concurrency "
        f"{args.concurrency}, {args.rounds} alternating rounds, {args.warmup} warm-up each; "
        f"TUI in tmux {COLUMNS}x{LINES}, pane captured every {CAPTURE_EVERY_S} s under load",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        "",
        "| target | done | errors | p50 ms | p99 ms | req/s | gateway CPU µs/req | core use |"
        " peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in run.results.items():
        lines.append(
            f"| {name} | {r.completed} | {r.errors} | {percentile(r.latencies, 0.5) * 1e3:.2f} |"
            f" {percentile(r.latencies, 0.99) * 1e3:.2f} | {r.rps:.0f} |"
            f" {r.per_request_us(r.cpu_s):.0f} | {r.cpu_s / r.elapsed_s:.0%} |"
            f" {run.rss_mb.get(name, math.nan):.1f} |"
        )
    tui = run.results["tui"]
    ratios = ", ".join(f"{b / a:.3f}" for a, b in run.per_round if a)
    lags = sorted(screen.lags_ms)
    lines += [
        "",
        f"- TUI / headless per round: {ratios}",
        f"- tmux (the terminal) used {run.tmux_cpu_s / max(tui.elapsed_s, 1e-9):.0%} of a core "
        f"while the TUI target was loaded ({tui.per_request_us(run.tmux_cpu_s):.0f} µs/req)",
        f"- Screen counter: `done` read {len(screen.samples)} times under load; after the run "
        f"it showed {run.final_done} for {run.sent_to_tui} requests sent to the TUI gateway",
        f"- Last status line read under load: `{screen.status_line}`",
    ]
    if lags:
        lines.append(
            f"- Loop lag shown on the status line under load: median {lags[len(lags) // 2]} ms, "
            f"max {lags[-1]} ms"
        )
    lines += ["", "| target | measured | result |", "|---|---|---|"]
    for name, measured, ok in verdicts(run, screen):
        lines.append(f"| {name} | {measured} | {'PASS' if ok else 'FAIL'} |")
    return "\n".join(lines) + "\n"


async def amain(args: argparse.Namespace) -> int:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    run = Run()
    with tempfile.TemporaryDirectory(prefix="tui-gateway-bench-tui-") as tmp:
        screen = Screen(Path(tmp) / "tmux.sock")
        await measure(args, run, screen, Path(tmp))
    text = markdown(args, run, screen)
    print(text)
    if args.output:
        Path(args.output).write_text(text)
    failed = [name for name, _, ok in verdicts(run, screen) if not ok]
    print("targets: " + ("all PASS" if not failed else "FAIL: " + "; ".join(failed)))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="tui-gateway: the TUI's cost under load")
    parser.add_argument("--requests", type=int, default=9000, help="streams per target")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=200, help="warm-up streams per target")
    parser.add_argument("--time-cap", type=float, default=90.0, help="seconds per target")
    parser.add_argument("--quick", action="store_true", help="600 streams, 2 rounds: a smoke run")
    parser.add_argument("--output", help="also write the markdown results to this file")
    parser.add_argument("--profile-tui", metavar="FILE", help="run the TUI gateway under cProfile")
    parser.add_argument(
        "--gateway-args", metavar="ARGS", help='extra flags for both gateways: "--loop asyncio"'
    )
    parser.add_argument("--gateway-root", metavar="DIR", help="run this checkout's gateway")
    args = parser.parse_args(argv)
    if args.profile_tui:
        args.profile_tui = str(Path(args.profile_tui).resolve())
    if args.quick:
        args.requests, args.rounds, args.warmup = 600, 2, 50
    try:
        return asyncio.run(amain(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        return 130


if __name__ == "__main__":
    sys.exit(main())
