"""Measure what tui-gateway costs over calling the upstream directly, and over a bare proxy.

    python scripts/bench.py [--quick] [--output FILE] [--targets direct,passthrough]
                            [--workloads stream-c32] [--profile-gateway gw.prof]
                            [--gateway-root /tmp/worktree] [--gateway-args "--loop asyncio"]

Starts three subprocesses on 127.0.0.1 — the mock upstream, the bare passthrough proxy and
`python -m tui_gateway --headless` — and drives the same workloads at each of them from this
process with one aiohttp client per target:

    nonstream-c1    non-streaming chat completions, one at a time
    nonstream-c32   non-streaming, 32 in flight
    stream-c32      streams of 50 content chunks, 32 in flight
    stream-paced-c1 streams of 10 chunks 2 ms apart, one at a time: time to first byte

Rounds are interleaved (direct, passthrough, gateway, then rotated) so that drift in machine
load hits every target alike. Every subprocess is killed on every exit path.

The `gateway-asyncio` target is the same gateway on the default asyncio loop (`--loop asyncio`),
to compare event loops within one run; `gateway` runs with the default `--loop auto` (uvloop
when it is installed). The passthrough always runs on the default loop: it is the floor.
The `gateway-redis` target is the same gateway with `[cluster] redis_url` set (issue 12): its
shared state mirrored to a Redis, `--redis-url`, or a `redis-server` started for the run on a
free port; its numbers against `gateway` are the cost of the mirror.
`--gateway-root DIR` runs the gateway of another checkout (a git worktree of a stable build),
with the mock and the passthrough of this one. `--base-root DIR` adds that checkout's gateway
as the `gateway-base` target beside this one's, rounds interleaved: a before/after in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import ctypes.util
import itertools
import json
import math
import os
import platform
import shlex
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ("direct", "passthrough", "gateway", "gateway-base", "gateway-asyncio", "gateway-redis")
DEFAULT_TARGETS = ("direct", "passthrough", "gateway")
STREAM_MODEL = "ok:chunks=50"
# Paced chunks, so that time to first byte is distinct from time to the last one.
PACED_MODEL = "ok:chunks=10,delay_ms=2"
MODELS = ("ok", STREAM_MODEL, PACED_MODEL)
GATEWAY_API_KEY = "bench-key"
MOCK_API_KEY = "mock-key"
START_TIMEOUT_S = 30.0

# Pass/fail thresholds printed at the end (issue 10: ratios to the bare hop in the same run).
MAX_ADDED_P50_C1_MS = 1.0
MAX_CPU_RATIO_TO_PASSTHROUGH = 1.3
"""Gateway CPU per request over the passthrough's, for nonstream-c1, nonstream-c32, stream-c32."""
CPU_RATIO_WORKLOADS = ("nonstream-c1", "nonstream-c32", "stream-c32")
MIN_STREAM_RATIO_TO_PASSTHROUGH = 0.95
MAX_IDLE_RSS_MB = 45.0


@dataclass(frozen=True, slots=True)
class Workload:
    """One load shape, run against every target."""

    name: str
    stream: bool
    concurrency: int
    requests: int
    """Total per target, split across rounds."""
    model: str = "ok"


@dataclass(frozen=True, slots=True)
class Plan:
    workloads: tuple[Workload, ...]
    warmup: int
    rounds: int
    time_cap_s: float
    """Per workload and target, over all rounds."""

    def warmup_for(self, workload: Workload) -> int:
        """Warm-up requests per target before `workload`: slow shapes get fewer."""
        return min(self.warmup, max(workload.requests // 4, 1))


FULL = Plan(
    workloads=(
        Workload("nonstream-c1", False, 1, 2000),
        Workload("nonstream-c32", False, 32, 6000),
        Workload("stream-c32", True, 32, 3000, STREAM_MODEL),
        Workload("stream-paced-c1", True, 1, 200, PACED_MODEL),
    ),
    warmup=200,
    rounds=5,
    time_cap_s=60.0,
)
QUICK = Plan(
    workloads=(
        Workload("nonstream-c1", False, 1, 100),
        Workload("nonstream-c32", False, 32, 300),
        Workload("stream-c32", True, 32, 100, STREAM_MODEL),
        Workload("stream-paced-c1", True, 1, 20, PACED_MODEL),
    ),
    warmup=30,
    rounds=1,
    time_cap_s=10.0,
)


# ---------------------------------------------------------------- subprocesses


def _die_with_parent() -> None:
    # Linux only: the child gets SIGTERM if the bench dies without running its cleanup.
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        ctypes.CDLL(libc_name).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass(slots=True)
class Child:
    """A server subprocess and what it printed on startup."""

    name: str
    proc: asyncio.subprocess.Process
    stderr_path: Path
    url: str = ""
    lines: list[str] = field(default_factory=list)
    drain: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


async def _read_line(child: Child, timeout: float) -> str:
    assert child.proc.stdout is not None
    raw = await asyncio.wait_for(child.proc.stdout.readline(), timeout)
    if not raw:
        raise RuntimeError(f"{child.name} exited early:\n{child.stderr_tail()}")
    line = raw.decode(errors="replace").rstrip("\n")
    child.lines.append(line)
    return line


async def _drain_stdout(child: Child) -> None:
    # Keep reading so a chatty child never blocks on a full pipe.
    assert child.proc.stdout is not None
    while await child.proc.stdout.read(65536):
        pass


class Fleet:
    """The server subprocesses of one bench run; `stop()` ends all of them."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.children: list[Child] = []

    async def spawn(
        self, name: str, argv: Sequence[str], *, extra_lines: int = 0, root: Path | None = None
    ) -> Child:
        """Start a server; wait for its `... listening on URL` line and `extra_lines` more.

        `root` is the checkout to run it from (its directory and first on PYTHONPATH), if not
        this one: how a worktree of another build is benchmarked against this one's baselines.
        """
        stderr_path = self.workdir / f"{name}.stderr"
        env = None
        if root is not None:
            path = os.environ.get("PYTHONPATH")
            env = {**os.environ, "PYTHONPATH": str(root) + (os.pathsep + path if path else "")}
        with stderr_path.open("wb") as stderr:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                cwd=root or ROOT,
                env=env,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        child = Child(name, proc, stderr_path)
        self.children.append(child)
        line = await _read_line(child, START_TIMEOUT_S)
        if " listening on " not in line:
            raise RuntimeError(f"{name}: unexpected first line {line!r}\n{child.stderr_tail()}")
        child.url = line.split(" listening on ", 1)[1].strip()
        for _ in range(extra_lines):
            with contextlib.suppress(asyncio.TimeoutError):
                await _read_line(child, 2.0)
        loop = asyncio.get_running_loop()
        child.drain = loop.create_task(_drain_stdout(child), name=f"drain-{name}")
        return child

    def print_stderr_tails(self) -> None:
        for child in self.children:
            tail = child.stderr_tail(30)
            if tail:
                print(f"--- {child.name} stderr (tail)\n{tail}", file=sys.stderr)

    async def stop(self) -> None:
        """Terminate every child; kill the ones that do not exit within 5 s."""
        for child in self.children:
            if child.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.proc.terminate()
        for child in self.children:
            try:
                await asyncio.wait_for(child.proc.wait(), 5.0)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    child.proc.kill()
                await child.proc.wait()
            if child.drain is not None:
                child.drain.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await child.drain


def gateway_config(mock_url: str, redis_url: str | None = None) -> str:
    models = "".join(
        f'\n[[models]]\nprovider = "mock"\nid = "{m}"\npool = "balanced"\n' for m in MODELS
    )
    cluster = f'[cluster]\nredis_url = "{redis_url}"\n\n' if redis_url else ""
    return f"""\
{cluster}[server]
api_key = "{GATEWAY_API_KEY}"

[routing]
max_attempts = 3

[[providers]]
name = "mock"
kind = "openai"
base_url = "{mock_url}"
api_keys = ["{MOCK_API_KEY}"]
{models}"""


def _api_key_from(lines: list[str]) -> str:
    for line in lines:
        if line.startswith("OPENAI_API_KEY="):
            return line.split("=", 1)[1].strip()
    return GATEWAY_API_KEY


# ---------------------------------------------------------------- /proc readings


def rss_mb(pid: int, field_name: str = "VmRSS") -> float:
    """Resident memory of `pid` in MB from /proc/PID/status (VmHWM is the peak so far)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    return math.nan


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of `pid`, from /proc/PID/stat."""
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU time of `pid`, from /proc/PID/stat; system is time in the kernel."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


# ---------------------------------------------------------------- load generation


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    url: str
    """Full chat completions URL."""
    api_key: str
    pid: int | None
    """The proxy process, for CPU accounting; None for direct."""


@dataclass(slots=True)
class Result:
    """Everything measured for one workload against one target, over all rounds."""

    latencies: list[float] = field(default_factory=list)
    ttfbs: list[float] = field(default_factory=list)
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    cpu_s: float = 0.0
    """CPU time of the proxy process (none for direct)."""
    sys_s: float = 0.0
    """The part of `cpu_s` spent in the kernel (socket calls, mostly)."""
    mock_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    """CPU time of this process, the load generator."""

    def per_request_us(self, seconds: float) -> float:
        return seconds / self.completed * 1e6 if self.completed else math.nan

    @property
    def completed(self) -> int:
        return len(self.latencies)

    @property
    def rps(self) -> float:
        return self.completed / self.elapsed_s if self.elapsed_s else math.nan

    def note_error(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1


def _body(workload: Workload) -> bytes:
    body: dict[str, Any] = {
        "model": workload.model,
        "messages": [{"role": "user", "content": "Say hello to the benchmark."}],
        "stream": workload.stream,
    }
    if workload.stream:
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body).encode()


async def _one_request(
    session: aiohttp.ClientSession, target: Target, body: bytes, stream: bool, result: Result
) -> None:
    headers = {"Authorization": f"Bearer {target.api_key}", "Content-Type": "application/json"}
    start = time.perf_counter()
    first: float | None = None
    try:
        async with session.post(target.url, data=body, headers=headers) as resp:
            tail = b""
            async for data in resp.content.iter_any():
                if first is None:
                    first = time.perf_counter()
                tail = (tail + data)[-64:]
            end = time.perf_counter()
            if resp.status != 200:
                result.note_error(f"HTTP {resp.status}")
                return
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        result.note_error(type(exc).__name__)
        return
    if stream and not tail.endswith(b"data: [DONE]\n\n"):
        result.note_error("stream without [DONE]")
        return
    result.latencies.append(end - start)
    if stream and first is not None:
        result.ttfbs.append(first - start)


async def run_batch(
    session: aiohttp.ClientSession,
    target: Target,
    workload: Workload,
    n: int,
    time_cap_s: float,
    result: Result,
    mock_pid: int,
) -> None:
    """Send `n` requests at the workload's concurrency, stopping early at the time cap."""
    body = _body(workload)
    counter = itertools.count()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + time_cap_s

    async def worker() -> None:
        while next(counter) < n and loop.time() < deadline:
            await _one_request(session, target, body, workload.stream, result)

    user0, sys0 = cpu_split(target.pid) if target.pid else (0.0, 0.0)
    mock0 = cpu_seconds(mock_pid)
    client0 = time.process_time()
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workload.concurrency)))
    result.elapsed_s += time.perf_counter() - start
    if target.pid:
        user1, sys1 = cpu_split(target.pid)
        result.cpu_s += (user1 - user0) + (sys1 - sys0)
        result.sys_s += sys1 - sys0
    result.mock_cpu_s += cpu_seconds(mock_pid) - mock0
    result.client_cpu_s += time.process_time() - client0


@contextlib.asynccontextmanager
async def sessions(targets: Sequence[Target]) -> AsyncIterator[dict[str, aiohttp.ClientSession]]:
    """One keep-alive client session per target, sized for the highest concurrency."""
    timeout = aiohttp.ClientTimeout(total=60)
    opened = {
        t.name: aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64), timeout=timeout)
        for t in targets
    }
    try:
        yield opened
    finally:
        for session in opened.values():
            await session.close()


# ---------------------------------------------------------------- statistics and report


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no data."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.2f}"


def _fmt(value: float, spec: str = ".2f") -> str:
    return "n/a" if math.isnan(value) else format(value, spec)


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


def workload_table(workload: Workload, results: dict[str, Result]) -> list[str]:
    head = "| target | done | errors | p50 ms | p99 ms |"
    rule = "|---|---:|---:|---:|---:|"
    if workload.stream:
        head += " TTFB p50 ms | TTFB p99 ms |"
        rule += "---:|---:|"
    head += " req/s | proxy CPU µs/req | of it kernel | proxy core use | mock CPU µs/req |"
    head += " client CPU µs/req |"
    rule += "---:|---:|---:|---:|---:|---:|"
    rows = [f"### {workload.name} ({workload.requests} requests per target)", "", head, rule]
    for name, r in results.items():
        row = f"| {name} | {r.completed} | {r.errors} | {_ms(percentile(r.latencies, 0.5))} |"
        row += f" {_ms(percentile(r.latencies, 0.99))} |"
        if workload.stream:
            row += f" {_ms(percentile(r.ttfbs, 0.5))} | {_ms(percentile(r.ttfbs, 0.99))} |"
        direct = name == "direct"
        proxy_cpu = math.nan if direct else r.per_request_us(r.cpu_s)
        core_use = "n/a" if direct else f"{_ratio(r.cpu_s, r.elapsed_s):.0%}"
        kernel = "n/a" if direct else f"{_ratio(r.sys_s, r.cpu_s):.0%}"
        row += f" {_fmt(r.rps, '.0f')} | {_fmt(proxy_cpu, '.0f')} | {kernel} | {core_use} |"
        row += f" {_fmt(r.per_request_us(r.mock_cpu_s), '.0f')} |"
        row += f" {_fmt(r.per_request_us(r.client_cpu_s), '.0f')} |"
        rows.append(row)
    errors = {n: r.error_kinds for n, r in results.items() if r.error_kinds}
    if errors:
        rows += ["", f"Errors: `{json.dumps(errors)}`"]
    return rows + [""]


def cpu_ratio(results: dict[str, Result], name: str = "gateway") -> float:
    """`name`'s CPU per request over the passthrough's in the same run; NaN if one is missing."""
    r, pt = results.get(name), results.get("passthrough")
    if r is None or pt is None:
        return math.nan
    return _ratio(r.per_request_us(r.cpu_s), pt.per_request_us(pt.cpu_s))


def comparison_rows(workload: Workload, results: dict[str, Result]) -> list[str]:
    direct = results.get("direct")
    pt = results.get("passthrough")
    rows = []
    for name, r in results.items():
        if name == "direct" or direct is None:
            continue
        added50 = percentile(r.latencies, 0.5) - percentile(direct.latencies, 0.5)
        added99 = percentile(r.latencies, 0.99) - percentile(direct.latencies, 0.99)
        ttfb = percentile(r.ttfbs, 0.5) - percentile(direct.ttfbs, 0.5)
        vs_direct = _ratio(r.rps, direct.rps)
        vs_pt = _ratio(r.rps, pt.rps) if pt is not None and name != "passthrough" else math.nan
        cpu = cpu_ratio(results, name) if name != "passthrough" else math.nan
        rows.append(
            f"| {workload.name} | {name} | {_ms(added50)} | {_ms(added99)} |"
            f" {_ms(ttfb) if workload.stream else '—'} | {_fmt(vs_direct)}x |"
            f" {_fmt(vs_pt) + 'x' if not math.isnan(vs_pt) else '—'} |"
            f" {_fmt(cpu) + 'x' if not math.isnan(cpu) else '—'} |"
        )
    return rows


@dataclass(slots=True)
class Report:
    plan: Plan
    argv: list[str]
    results: dict[str, dict[str, Result]] = field(default_factory=dict)
    rss: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def targets_verdicts(self) -> list[tuple[str, str, bool | None]]:
        """(target, measured, passed); passed is None when it could not be measured."""
        out: list[tuple[str, str, bool | None]] = []
        c1 = self.results.get("nonstream-c1", {})
        if "gateway" in c1 and "direct" in c1:
            added = percentile(c1["gateway"].latencies, 0.5) - percentile(
                c1["direct"].latencies, 0.5
            )
            ok = added * 1000 <= MAX_ADDED_P50_C1_MS
            out.append((f"added p50 at c1 ≤ {MAX_ADDED_P50_C1_MS} ms", f"{_ms(added)} ms", ok))
        else:
            out.append((f"added p50 at c1 ≤ {MAX_ADDED_P50_C1_MS} ms", "not run", None))
        for name in CPU_RATIO_WORKLOADS:
            label = f"{name}: gateway CPU/req ≤ {MAX_CPU_RATIO_TO_PASSTHROUGH}x passthrough"
            ratio = cpu_ratio(self.results.get(name, {}))
            if math.isnan(ratio):
                out.append((label, "not run", None))
            else:
                out.append((label, f"{ratio:.2f}x", ratio <= MAX_CPU_RATIO_TO_PASSTHROUGH))
        st = self.results.get("stream-c32", {})
        label = f"stream c32 throughput ≥ {MIN_STREAM_RATIO_TO_PASSTHROUGH}x passthrough"
        if "gateway" in st and "passthrough" in st:
            ratio = _ratio(st["gateway"].rps, st["passthrough"].rps)
            out.append((label, f"{_fmt(ratio)}x", ratio >= MIN_STREAM_RATIO_TO_PASSTHROUGH))
        else:
            out.append((label, "not run", None))
        idle = self.rss.get("gateway", {}).get("idle_mb", math.nan)
        out.append(
            (
                f"idle RSS ≤ {MAX_IDLE_RSS_MB:.0f} MB (headless)",
                f"{_fmt(idle, '.1f')} MB",
                None if math.isnan(idle) else idle <= MAX_IDLE_RSS_MB,
            )
        )
        return out

    def markdown(self) -> str:
        lines = [
            "## Results",
            "",
            f"- Machine: {machine_summary()}",
            f"- Command: `{' '.join(self.argv)}`",
            f"- Plan: {self.plan.rounds} interleaved round(s), up to {self.plan.warmup} warm-up "
            f"requests per target and workload, cap {self.plan.time_cap_s:.0f} s per workload "
            "and target",
            f"- Date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
            "",
        ]
        for workload in self.plan.workloads:
            if workload.name in self.results:
                lines += workload_table(workload, self.results[workload.name])
        lines += [
            "### Overhead compared with direct",
            "",
            "| workload | via | added p50 ms | added p99 ms | added TTFB p50 ms |"
            " throughput / direct | throughput / passthrough | CPU per request / passthrough |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for workload in self.plan.workloads:
            lines += comparison_rows(workload, self.results.get(workload.name, {}))
        lines += [
            "",
            "### Memory (RSS)",
            "",
            "| process | idle MB | peak MB (VmHWM) | after load MB |",
        ]
        lines += ["|---|---:|---:|---:|"]
        for name, rss in self.rss.items():
            lines.append(
                f"| {name} | {_fmt(rss.get('idle_mb', math.nan), '.1f')} |"
                f" {_fmt(rss.get('peak_mb', math.nan), '.1f')} |"
                f" {_fmt(rss.get('after_mb', math.nan), '.1f')} |"
            )
        lines += ["", "### Targets", "", "| target | measured | result |", "|---|---:|---|"]
        for name, measured, passed in self.targets_verdicts():
            verdict = "not measured" if passed is None else ("PASS" if passed else "FAIL")
            lines.append(f"| {name} | {measured} | {verdict} |")
        if self.notes:
            lines += ["", *[f"- {note}" for note in self.notes]]
        return "\n".join(lines) + "\n"


def machine_summary() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, aiohttp {aiohttp.__version__}"
    )


# ---------------------------------------------------------------- orchestration


async def start_redis(fleet: Fleet) -> str:
    """A `redis-server` for the `gateway-redis` target, in the run's directory, saving nothing."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    stderr_path = fleet.workdir / "redis.stderr"
    with stderr_path.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(fleet.workdir),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )  # fmt: skip
    fleet.children.append(Child("redis", proc, stderr_path, url=f"redis://127.0.0.1:{port}/0"))
    async with asyncio.timeout(START_TIMEOUT_S):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return f"redis://127.0.0.1:{port}/0"


async def start_targets(
    fleet: Fleet,
    names: Sequence[str],
    *,
    profile: str | None = None,
    gateway_root: Path | None = None,
    base_root: Path | None = None,
    gateway_args: Sequence[str] = (),
    redis_url: str | None = None,
) -> tuple[Child, list[Target]]:
    """Start the mock and whichever proxies `names` asks for; return the mock and targets."""
    py = sys.executable
    mock = await fleet.spawn("mock", [py, str(ROOT / "scripts/mock_upstream.py"), "--port", "0"])
    targets = []
    if "direct" in names:
        targets.append(Target("direct", mock.url + "/chat/completions", MOCK_API_KEY, None))
    if "passthrough" in names:
        argv = [py, str(ROOT / "scripts/passthrough.py"), "--upstream", mock.url, "--port", "0"]
        pt = await fleet.spawn("passthrough", argv)
        targets.append(Target("passthrough", pt.url + "/chat/completions", MOCK_API_KEY, pt.pid))
    config = fleet.workdir / "bench.toml"
    config.write_text(gateway_config(mock.url))
    if "gateway-redis" in names:
        shared = fleet.workdir / "bench-redis.toml"
        shared.write_text(gateway_config(mock.url, redis_url or await start_redis(fleet)))
    for name in ("gateway", "gateway-base", "gateway-asyncio", "gateway-redis"):
        if name not in names:
            continue
        if name == "gateway-base" and base_root is None:
            raise SystemExit("the gateway-base target needs --base-root DIR")
        # Under cProfile the numbers are distorted; that run is for finding where time goes.
        prefix = [py, "-m", "cProfile", "-o", profile] if profile and name == "gateway" else [py]
        chosen = shared if name == "gateway-redis" else config
        argv = [*prefix, "-m", "tui_gateway", "--headless", "--config", str(chosen)]
        argv += ["--port", "0"]
        argv += ["--db", str(fleet.workdir / f"{name}.db"), *gateway_args]
        if name == "gateway-asyncio":
            argv += ["--loop", "asyncio"]
        root = base_root if name == "gateway-base" else gateway_root
        gw = await fleet.spawn(name, argv, extra_lines=2, root=root)
        key = _api_key_from(gw.lines)
        targets.append(Target(name, gw.url + "/chat/completions", key, gw.pid))
    return mock, targets


async def warm_up(
    targets: Sequence[Target], clients: dict[str, aiohttp.ClientSession], plan: Plan, mock_pid: int
) -> None:
    for workload in plan.workloads:
        n = plan.warmup_for(workload)
        concurrency = min(workload.concurrency, 8)
        shape = Workload("warmup", workload.stream, concurrency, n, workload.model)
        for target in targets:
            result = Result()
            await run_batch(clients[target.name], target, shape, n, 30.0, result, mock_pid)
            if result.errors:
                raise RuntimeError(f"warm-up against {target.name} failed: {result.error_kinds}")


async def run_plan(
    plan: Plan,
    names: Sequence[str],
    report: Report,
    *,
    profile: str | None = None,
    gateway_root: Path | None = None,
    base_root: Path | None = None,
    gateway_args: Sequence[str] = (),
    redis_url: str | None = None,
) -> None:
    with tempfile.TemporaryDirectory(prefix="tui-gateway-bench-") as tmp:
        fleet = Fleet(Path(tmp))
        try:
            mock, targets = await start_targets(
                fleet,
                names,
                profile=profile,
                gateway_root=gateway_root,
                base_root=base_root,
                gateway_args=gateway_args,
                redis_url=redis_url,
            )
            await asyncio.sleep(1.0)  # let imports and startup work settle before "idle"
            for t in targets:
                if t.pid:
                    report.rss[t.name] = {"idle_mb": rss_mb(t.pid)}
            async with sessions(targets) as clients:
                await warm_up(targets, clients, plan, mock.pid)
                for workload in plan.workloads:
                    print(f"running {workload.name} ...", file=sys.stderr, flush=True)
                    report.results[workload.name] = await run_workload(
                        workload, targets, clients, plan, mock.pid
                    )
                session = next(iter(clients.values()))
                report.notes.append(await mock_check(mock, report, session, len(targets)))
            for t in targets:
                if t.pid:
                    report.rss[t.name]["peak_mb"] = rss_mb(t.pid, "VmHWM")
                    report.rss[t.name]["after_mb"] = rss_mb(t.pid)
        except BaseException:
            fleet.print_stderr_tails()
            raise
        finally:
            await fleet.stop()


async def mock_check(
    mock: Child, report: Report, session: aiohttp.ClientSession, n_targets: int
) -> str:
    """Compare what the mock received with what the bench sent: catches silent retries."""
    async with session.get(mock.url.removesuffix("/v1") + "/mock/stats") as resp:
        seen = (await resp.json())["requests"]
    sent: dict[str, int] = {}
    for workload in report.plan.workloads:
        done = sum(r.completed + r.errors for r in report.results.get(workload.name, {}).values())
        sent[workload.model] = (
            sent.get(workload.model, 0) + done + n_targets * report.plan.warmup_for(workload)
        )
    return f"Requests the mock received per model: {seen}; requests the bench sent: {sent}."


async def run_workload(
    workload: Workload,
    targets: Sequence[Target],
    clients: dict[str, aiohttp.ClientSession],
    plan: Plan,
    mock_pid: int,
) -> dict[str, Result]:
    results = {t.name: Result() for t in targets}
    per_round = math.ceil(workload.requests / plan.rounds)
    cap = plan.time_cap_s / plan.rounds
    for i in range(plan.rounds):
        order = list(targets[i % len(targets) :]) + list(targets[: i % len(targets)])
        for target in order:
            await run_batch(
                clients[target.name],
                target,
                workload,
                per_round,
                cap,
                results[target.name],
                mock_pid,
            )
    return results


def print_summary(report: Report) -> None:
    print(report.markdown())
    failed = [name for name, _, ok in report.targets_verdicts() if ok is False]
    print(
        "targets: " + ("all measured targets PASS" if not failed else "FAIL: " + "; ".join(failed))
    )


async def amain(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    plan = QUICK if args.quick else FULL
    if args.rounds:
        plan = Plan(plan.workloads, plan.warmup, args.rounds, plan.time_cap_s)
    if args.workloads:
        wanted = set(args.workloads.split(","))
        chosen = tuple(w for w in plan.workloads if w.name in wanted)
        plan = Plan(chosen, plan.warmup, plan.rounds, plan.time_cap_s)
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    unknown = set(names) - set(TARGETS)
    if unknown:
        raise SystemExit(f"unknown targets: {sorted(unknown)}")
    report = Report(plan, ["python", "scripts/bench.py", *sys.argv[1:]])
    profile = str(Path(args.profile_gateway).resolve()) if args.profile_gateway else None
    root = Path(args.gateway_root).resolve() if args.gateway_root else None
    await run_plan(
        plan,
        names,
        report,
        profile=profile,
        gateway_root=root,
        base_root=Path(args.base_root).resolve() if args.base_root else None,
        gateway_args=shlex.split(args.gateway_args or ""),
        redis_url=args.redis_url,
    )
    print_summary(report)
    if args.output:
        Path(args.output).write_text(report.markdown())
    if args.json:
        raw = {w: {t: asdict(r) for t, r in rs.items()} for w, rs in report.results.items()}
        Path(args.json).write_text(json.dumps({"results": raw, "rss": report.rss}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="tui-gateway overhead benchmark")
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    parser.add_argument("--output", help="write the markdown results to this file")
    parser.add_argument("--json", help="write raw latencies and RSS to this JSON file")
    parser.add_argument(
        "--targets",
        default=",".join(DEFAULT_TARGETS),
        help=f"comma list of targets, of {', '.join(TARGETS)}",
    )
    parser.add_argument("--rounds", type=int, default=0, help="override interleaved rounds")
    parser.add_argument("--workloads", help="comma list, e.g. stream-c32 (default: all)")
    parser.add_argument(
        "--profile-gateway", metavar="FILE", help="run the gateway under cProfile, write FILE"
    )
    parser.add_argument(
        "--gateway-root", metavar="DIR", help="run the gateway of this checkout (e.g. a worktree)"
    )
    parser.add_argument(
        "--base-root",
        metavar="DIR",
        help="the checkout whose gateway the gateway-base target runs (a before, beside this)",
    )
    parser.add_argument(
        "--gateway-args", metavar="ARGS", help='extra gateway flags, e.g. "--loop asyncio"'
    )
    parser.add_argument(
        "--redis-url",
        metavar="URL",
        help="the Redis of the gateway-redis target (default: a redis-server started for the run)",
    )
    args = parser.parse_args(argv)
    try:
        return asyncio.run(amain(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
