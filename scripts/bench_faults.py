"""What a streaming client sees when the upstream misbehaves: one row per fault scenario.

    python scripts/bench_faults.py [--output FILE] [--scenarios cut,no-done] [--modes default,none]
                                   [--no-sdk] [--strict] [--fallback MODEL]
                                   [--first-byte-timeout S] [--stall-timeout S] [--heartbeat S]

Starts, on 127.0.0.1, `scripts/mock_upstream.py` and two `python -m tui_gateway --headless`
gateways that differ only in the provider's `continuation`: by default one without the key (so
`auto`, what a new user gets) and one with "none" (`--modes` picks among default, prefill,
instruct, none, and hedge: the default with `[routing] hedge = true`). Each gateway
has one provider, `mock`, whose `balanced` pool holds a healthy model (`ok:chunks=20,delay_ms=5`)
and every faulty model of the mock, disabled. For each scenario the admin API enables the faulty
model and moves it to the head of the pool, so the chain is exactly [faulty, healthy] with
`strategy = "ordered"`; every cooldown is ended (`DELETE /gateway/cooldowns`) and the request
opens a new conversation (a first user message of its own), so neither a previous fault's
cooldown nor stickiness hides this one.

Each scenario is streamed with aiohttp reading the raw SSE lines, so that keep-alive comments
count: they are what keeps a client's read timeout from firing. Per request it reports the wait
for the first content byte, the total time, the longest silence (between the request going out,
the response headers, every line received and the end of the body), whether the answer is whole
(finish_reason stop, then [DONE], no error event, the text of a complete reply at the end) or else
the error the client was given, and the attempts (the `X-Gateway-Attempts` header, and the
request log as `GET /gateway/state` shows it). With `--no-sdk` left out, the same scenario is also
run once more through the official `openai` SDK (AsyncOpenAI, max_retries=0), to show what an
application built on it ends up with.

Pass/fail per row:

- silence: the client never waited longer than heartbeat_interval_s + MARGIN_S without a byte;
- answer: whole, or the stream ends with an error event (or the request fails with an HTTP error
  status and an OpenAI error body), and never with finish_reason stop on a cut answer.

`--fallback` replaces the healthy second model (for instance with
`slow-first-token:ttft_ms=1400`, to see what the client hears across two slow attempts), and the
timer flags change the three `[streaming]` settings.

Bounded: each request has a client-side cap, the whole run has one; every subprocess is stopped
on every exit path (normal end, error, SIGINT, SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.bench import (  # noqa: E402  (the path above makes `scripts` importable)
    GATEWAY_API_KEY,
    MOCK_API_KEY,
    Child,
    Fleet,
    _api_key_from,
    machine_summary,
)
from scripts.mock_upstream import _WORDS, parse_model  # noqa: E402

MARGIN_S = 0.25
"""Allowed on top of the heartbeat interval: timer and scheduling slack, chosen before any run."""
MAX_ATTEMPTS = 3
HEALTHY = "ok:chunks=20,delay_ms=5"
PROVIDER = "mock"
REQUEST_CAP_S = 20.0
"""Client-side cap on one request; well above anything a working gateway needs here."""
RUN_CAP_S = 600.0
MODES = ("default", "prefill", "instruct", "none", "hedge")
"""The provider's `continuation`; `default` leaves the key out of the config (it is `auto`);
`hedge` is the default with `[routing] hedge = true` (a late first byte raced)."""
DEFAULT_MODES = ("default", "none")


@dataclass(frozen=True, slots=True)
class Scenario:
    model: str
    """The mock model string (scenario and parameters)."""
    note: str


SCENARIOS = (
    Scenario("ok", "baseline: nothing wrong"),
    Scenario("slow-first-token:ttft_ms=1500", "first token under first_byte_timeout_s"),
    Scenario("slow-first-token:ttft_ms=3000", "first token over first_byte_timeout_s"),
    Scenario("stall-before-first", "no headers, ever (the mock holds for an hour)"),
    Scenario("stall-after-first:after=3", "3 chunks, then silence"),
    Scenario("drop-mid-stream:after=3", "3 chunks, then the TCP connection is cut"),
    Scenario("cut", "8 chunks, clean HTTP end, no finish_reason, no [DONE]"),
    Scenario("no-done", "8 chunks and finish_reason, no [DONE]"),
    Scenario("wrapped-error", "HTTP 200, the first event is an error"),
    Scenario("wrapped-error:after=3,delay_ms=100", "3 chunks 100 ms apart, then an error event"),
    Scenario("error-500", "HTTP 500"),
    Scenario("error-429", "HTTP 429, Retry-After 1"),
    Scenario("html-200", "HTTP 200 with an HTML page"),
    Scenario("malformed", "one event that is not JSON among 4 chunks"),
    Scenario("context-length", "HTTP 400 context_length_exceeded (not retryable)"),
)
_DEFAULT_CHUNKS = {"ok": 8, "slow-first-token": 8, "no-done": 8, "long": 200, "malformed": 4}
"""Chunks of a complete reply per mock scenario that can give one (see mock_upstream.py)."""


@dataclass(frozen=True, slots=True)
class Setup:
    """The gateway settings under test. Timers small enough for a quick run (defaults: 10/20/10)."""

    first_byte_timeout_s: float = 2.0
    stall_timeout_s: float = 1.5
    heartbeat_interval_s: float = 0.5
    fallback: str = HEALTHY
    """The second model of every chain."""

    @property
    def silence_limit_s(self) -> float:
        return self.heartbeat_interval_s + MARGIN_S


def model_key(model: str) -> str:
    return f"{PROVIDER}/{model}"


def complete_text(model: str) -> str | None:
    """The whole reply the mock gives for `model`, or None if that scenario never completes."""
    scenario, params = parse_model(model)
    if scenario not in _DEFAULT_CHUNKS:
        return None
    n = int(params.get("chunks", _DEFAULT_CHUNKS[scenario]))
    text = params.get("text")
    return " ".join(text or _WORDS[i % len(_WORDS)] for i in range(n))


def gateway_config(setup: Setup, mock_url: str, continuation: str, faulty: list[str]) -> str:
    # The healthy model first; every faulty one after it, disabled until its scenario runs.
    models = f'\n[[models]]\nprovider = "{PROVIDER}"\nid = "{setup.fallback}"\npool = "balanced"\n'
    models += "".join(
        f'\n[[models]]\nprovider = "{PROVIDER}"\nid = "{m}"\npool = "balanced"\nenabled = false\n'
        for m in faulty
    )
    return f"""\
[server]
api_key = "{GATEWAY_API_KEY}"

[routing]
strategy = "ordered"
max_attempts = {MAX_ATTEMPTS}
hedge = {"true" if continuation == "hedge" else "false"}

[streaming]
first_byte_timeout_s = {setup.first_byte_timeout_s}
stall_timeout_s = {setup.stall_timeout_s}
heartbeat_interval_s = {setup.heartbeat_interval_s}

[[providers]]
name = "{PROVIDER}"
kind = "openai"
base_url = "{mock_url}"
api_keys = ["{MOCK_API_KEY}"]
{"" if continuation in ("default", "hedge") else f'continuation = "{continuation}"'}
{models}"""


# ---------------------------------------------------------------- what one client saw


@dataclass(slots=True)
class Seen:
    """One streamed request, as the client received it."""

    status: int = 0
    attempts_header: str = "—"
    model_header: str = "—"
    request_id: str = ""
    first_content_s: float = math.nan
    total_s: float = math.nan
    max_silence_s: float = math.nan
    silence_at: str = ""
    """Between which two points the longest silence was."""
    keepalives: int = 0
    content_chunks: int = 0
    text: str = ""
    finish_reasons: list[str] = field(default_factory=list)
    done: bool = False
    data_after_done: int = 0
    error: dict[str, Any] | None = None
    """The error event's (or error body's) `error` object."""
    error_is_last: bool = False
    """The error event was the last data event (a [DONE] may follow)."""
    transport: str = ""
    """A client-side failure: timeout, connection reset, ..."""
    unparsed: int = 0
    chunk_ids: list[str] = field(default_factory=list)
    """Distinct completion ids, in order of appearance."""
    chunk_models: list[str] = field(default_factory=list)
    """Distinct `model` fields, in order of appearance."""
    role_deltas: int = 0

    def whole(self, expected: list[str]) -> bool:
        return (
            self.status == 200
            and not self.transport
            and self.error is None
            and self.done
            and self.data_after_done == 0
            and self.finish_reasons[-1:] == ["stop"]
            and self.text in expected  # exactly: a repeated opening is not a whole answer
        )

    def clear_error(self) -> bool:
        if self.status >= 400:
            return self.error is not None and not self.transport
        return (
            self.error is not None
            and self.error_is_last
            and "stop" not in self.finish_reasons
            and not self.transport
        )

    def outcome(self, expected: list[str]) -> str:
        if self.transport:
            return f"client failure: {self.transport}"
        if self.whole(expected):
            return f"whole ({self.content_chunks} chunks)"
        if self.error is not None:
            where = f"HTTP {self.status}" if self.status >= 400 else "error event"
            return f"{where} `{self.error.get('type')}`/`{self.error.get('code')}`"
        if "stop" in self.finish_reasons:
            return "finish_reason stop on a cut answer"
        if not self.done:
            return "ended without [DONE], finish_reason or error"
        return "[DONE] without finish_reason or error (silent truncation)"


class _Timeline:
    def __init__(self, start: float) -> None:
        self.last = start
        self.last_name = "request sent"
        self.max_gap = 0.0
        self.where = ""

    def mark(self, name: str) -> float:
        now = time.perf_counter()
        if now - self.last > self.max_gap:
            self.max_gap = now - self.last
            self.where = f"{self.last_name} → {name}"
        self.last, self.last_name = now, name
        return now


async def stream_raw(
    session: aiohttp.ClientSession, url: str, key: str, body: dict[str, Any]
) -> Seen:
    """POST a streaming request and read the SSE body line by line, timing every line."""
    seen = Seen()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    start = time.perf_counter()
    tl = _Timeline(start)
    try:
        async with asyncio.timeout(REQUEST_CAP_S):
            async with session.post(url, json=body, headers=headers) as resp:
                tl.mark("headers")
                seen.status = resp.status
                seen.attempts_header = resp.headers.get("X-Gateway-Attempts", "—")
                seen.model_header = resp.headers.get("X-Gateway-Model", "—")
                seen.request_id = resp.headers.get("X-Request-Id", "")
                if resp.status != 200:
                    raw = await resp.read()
                    tl.mark("error body")
                    with contextlib.suppress(ValueError, AttributeError):
                        seen.error = json.loads(raw).get("error")
                    seen.error_is_last = True
                else:
                    await _read_events(resp, seen, tl, start)
    except TimeoutError:
        seen.transport = f"no end within {REQUEST_CAP_S:g} s (client cap)"
    except (aiohttp.ClientError, OSError) as exc:
        seen.transport = f"{type(exc).__name__}: {exc}"[:80]
    end = time.perf_counter()
    seen.total_s = end - start
    seen.max_silence_s = max(tl.max_gap, end - tl.last)
    seen.silence_at = tl.where if tl.max_gap >= end - tl.last else f"{tl.last_name} → cap"
    return seen


async def _read_events(
    resp: aiohttp.ClientResponse, seen: Seen, tl: _Timeline, start: float
) -> None:
    n = 0
    while True:
        line = await resp.content.readline()
        if not line:
            tl.mark("end of body")
            return
        n += 1
        text = line.decode(errors="replace").rstrip("\r\n")
        if not text:
            tl.mark(f"line {n} (blank)")
            continue
        if text.startswith(":"):
            seen.keepalives += 1
            tl.mark(f"keep-alive {seen.keepalives}")
            continue
        now = tl.mark(f"line {n}")
        if not text.startswith("data:"):
            seen.unparsed += 1
            continue
        payload = text[5:].strip()
        if seen.done:
            seen.data_after_done += 1
            continue
        if payload == "[DONE]":
            seen.done = True
            continue
        try:
            event = json.loads(payload)
        except ValueError:
            seen.unparsed += 1
            continue
        if not isinstance(event, dict):
            seen.unparsed += 1
            continue
        if event.get("error") is not None:
            seen.error = event["error"] if isinstance(event["error"], dict) else {"message": event}
            seen.error_is_last = True
            continue
        seen.error_is_last = False
        for name, values in (("id", seen.chunk_ids), ("model", seen.chunk_models)):
            value = event.get(name)
            if isinstance(value, str) and value not in values:
                values.append(value)
        for choice in event.get("choices") or ():
            delta = choice.get("delta") or {}
            seen.role_deltas += "role" in delta
            content = delta.get("content")
            if content:
                if math.isnan(seen.first_content_s):
                    seen.first_content_s = now - start
                seen.content_chunks += 1
                seen.text += content
            if choice.get("finish_reason"):
                seen.finish_reasons.append(choice["finish_reason"])


async def stream_sdk(base_url: str, key: str, body: dict[str, Any]) -> str:
    """The same request through the official SDK: what an application built on it ends up with."""
    import openai

    client = openai.AsyncOpenAI(
        base_url=base_url, api_key=key, max_retries=0, timeout=REQUEST_CAP_S
    )
    text, finish = "", None
    try:
        async with asyncio.timeout(REQUEST_CAP_S + 5):
            stream = await client.chat.completions.create(
                model=body["model"], messages=body["messages"], stream=True
            )
            async for chunk in stream:
                for choice in chunk.choices:
                    text += choice.delta.content or ""
                    finish = choice.finish_reason or finish
    except openai.APIStatusError as exc:
        return f"raised {type(exc).__name__} ({exc.status_code})"
    except openai.APIError as exc:
        code = (exc.body or {}).get("code") if isinstance(exc.body, dict) else None
        return f"raised {type(exc).__name__}" + (f" (code `{code}`)" if code else "")
    except TimeoutError:
        return "no end within the cap"
    finally:
        await client.close()
    if finish == "stop":
        return f"returned {len(text)} chars, finish_reason stop"
    return f"returned {len(text)} chars, finish_reason {finish!r}, no exception"


# ---------------------------------------------------------------- one gateway, one scenario


@dataclass(slots=True)
class Row:
    scenario: Scenario
    mode: str
    seen: Seen
    log_attempts: int | None
    log_status: int | None
    log_error_kind: str | None
    log_model: str | None
    log_heartbeats: int | None
    failures: list[str]
    setup: Setup
    sdk: str = ""

    @property
    def expected(self) -> list[str]:
        texts = (complete_text(self.scenario.model), complete_text(self.setup.fallback))
        return [t for t in texts if t]

    @property
    def silence_ok(self) -> bool:
        return self.seen.max_silence_s <= self.setup.silence_limit_s

    @property
    def answer_ok(self) -> bool:
        return self.seen.whole(self.expected) or self.seen.clear_error()


class Gateway:
    """A running gateway and the admin calls this benchmark makes on it."""

    def __init__(
        self, child: Child, mode: str, session: aiohttp.ClientSession, setup: Setup
    ) -> None:
        self.child = child
        self.setup = setup
        self.mode = mode
        self.session = session
        self.url = child.url
        self.base = child.url.removesuffix("/v1")
        self.key = _api_key_from(child.lines)
        self.auth = {"Authorization": f"Bearer {self.key}"}

    async def admin(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(
            method, self.base + path, json=body, headers=self.auth
        ) as resp:
            data = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"{method} {path}: HTTP {resp.status} {data}")
            return data

    async def set_head(self, model: str, enabled: bool) -> None:
        key = model_key(model)
        await self.admin("POST", f"/gateway/models/{key}/enabled", {"enabled": enabled})
        if enabled:
            await self.admin("POST", f"/gateway/models/{key}/move", {"position": 0})

    async def check_chain(self, model: str) -> None:
        """The balanced pool's usable chain must be exactly [faulty, healthy], nothing cooling."""
        state = await self.admin("GET", "/gateway/state")
        usable = [m for m in state["pools"]["balanced"] if m["usable"]]
        chain = [m["model"] for m in usable]
        want = [model_key(model), model_key(self.setup.fallback)]
        if chain != want or any(m["cooling"] for m in usable):
            raise RuntimeError(f"{self.mode}: chain is {usable}, wanted {want} and none cooling")

    async def finished(self) -> int:
        return int((await self.admin("GET", "/gateway/state"))["totals"]["finished"])

    async def log_entry(self, before: int, request_id: str) -> dict[str, Any] | None:
        """The request's row in the gateway's recent requests, once it is there."""
        for _ in range(100):
            state = await self.admin("GET", "/gateway/state")
            if state["totals"]["finished"] > before:
                recent: list[dict[str, Any]] = state["recent"]
                found = [e for e in recent if not request_id or e["id"] == request_id]
                return found[-1] if found else None
            await asyncio.sleep(0.02)
        return None


def _body(scenario: Scenario, mode: str, run: str, client: str) -> dict[str, Any]:
    # A first user message of its own: a new conversation, so no sticky model applies.
    text = f"[{run} {mode} {client}] fault bench: {scenario.model}. Say something."
    return {"model": "auto", "stream": True, "messages": [{"role": "user", "content": text}]}


async def run_scenario(gw: Gateway, scenario: Scenario, run: str, *, sdk: bool) -> Row:
    await gw.set_head(scenario.model, True)
    try:
        await gw.admin("DELETE", "/gateway/cooldowns")
        await gw.check_chain(scenario.model)
        before = await gw.finished()
        seen = await stream_raw(
            gw.session, gw.url + "/chat/completions", gw.key, _body(scenario, gw.mode, run, "raw")
        )
        entry = await gw.log_entry(before, seen.request_id)
        record = entry or {}
        row = Row(
            scenario,
            gw.mode,
            seen,
            log_attempts=record.get("attempt"),
            log_status=record.get("status"),
            log_error_kind=record.get("error_kind"),
            log_model=record.get("model"),
            log_heartbeats=record.get("heartbeats"),
            failures=list(record.get("failures") or ()),
            setup=gw.setup,
        )
        if sdk:
            await gw.admin("DELETE", "/gateway/cooldowns")
            await gw.check_chain(scenario.model)
            row.sdk = await stream_sdk(gw.url, gw.key, _body(scenario, gw.mode, run, "sdk"))
        return row
    finally:
        await gw.set_head(scenario.model, False)


# ---------------------------------------------------------------- report


def _ms(seconds: float) -> str:
    return "—" if math.isnan(seconds) else f"{seconds * 1000:.0f}"


def _verdict(ok: bool) -> str:
    return "pass" if ok else "**FAIL**"


def table(rows: list[Row], setup: Setup, *, sdk: bool) -> list[str]:
    head = (
        f"Timers: first_byte_timeout_s {setup.first_byte_timeout_s:g}, stall_timeout_s "
        f"{setup.stall_timeout_s:g}, heartbeat_interval_s {setup.heartbeat_interval_s:g}; chain "
        f"[faulty, `{setup.fallback}`], strategy ordered, max_attempts {MAX_ATTEMPTS}. "
        f"Silence limit {setup.silence_limit_s * 1000:.0f} ms "
        f"(heartbeat + {MARGIN_S * 1000:.0f} ms)."
    )
    lines = [
        head,
        "",
        "| scenario | continuation | first content ms | total ms | longest silence ms |"
        " keep-alives | what the client got | attempts (header / log) | served by (log) |"
        " silence | answer |" + (" openai SDK |" if sdk else ""),
        "|---|---|---:|---:|---:|---:|---|---:|---|---|---|" + ("---|" if sdk else ""),
    ]
    for r in rows:
        s = r.seen
        log = "—" if r.log_attempts is None else str(r.log_attempts)
        served = (r.log_model or "—").removeprefix(PROVIDER + "/")
        if r.log_error_kind:
            served += f" (failed: {r.log_error_kind})"
        lines.append(
            f"| `{r.scenario.model}` | {r.mode} | {_ms(s.first_content_s)} | {_ms(s.total_s)} |"
            f" {_ms(s.max_silence_s)} | {s.keepalives} | {s.outcome(r.expected)} |"
            f" {s.attempts_header} / {log} | `{served}` | {_verdict(r.silence_ok)} |"
            f" {_verdict(r.answer_ok)} |" + (f" {r.sdk} |" if sdk else "")
        )
    return lines


def details(rows: list[Row]) -> list[str]:
    lines = ["Per request: where the longest silence was, and the gateway's failure lines.", ""]
    for r in rows:
        s = r.seen
        extra = []
        if s.finish_reasons:
            extra.append(f"finish_reasons {s.finish_reasons}")
        if s.unparsed:
            extra.append(f"{s.unparsed} unparsed lines")
        if s.data_after_done:
            extra.append(f"{s.data_after_done} events after [DONE]")
        if len(s.chunk_ids) > 1 or len(s.chunk_models) > 1 or s.role_deltas > 1:
            models = ", ".join(f"`{m}`" for m in s.chunk_models)
            extra.append(
                f"{len(s.chunk_ids)} completion ids, models {models}, {s.role_deltas} role deltas"
            )
        if s.error is not None:
            extra.append(f"error message: {str(s.error.get('message'))[:160]!r}")
        lines.append(
            f"- `{r.scenario.model}` ({r.mode}): silence {_ms(s.max_silence_s)} ms at"
            f" {s.silence_at}; header X-Gateway-Model `{s.model_header}`; gateway heartbeats"
            f" {r.log_heartbeats}, status {r.log_status}"
            + ("; " + "; ".join(extra) if extra else "")
        )
        for failure in r.failures:
            lines.append(f"  - {failure}")
    return lines


def markdown(rows: list[Row], setup: Setup, argv: list[str], *, sdk: bool, elapsed_s: float) -> str:
    lines = [
        f"- Machine: {machine_summary()}",
        f"- Command: `{' '.join(argv)}`",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; run took {elapsed_s:.1f} s",
        "",
        *table(rows, setup, sdk=sdk),
        "",
        *details(rows),
    ]
    failed = [f"{r.scenario.model} ({r.mode})" for r in rows if not (r.silence_ok and r.answer_ok)]
    lines += [
        "",
        f"Rows passing both checks: {len(rows) - len(failed)}/{len(rows)}"
        + (f"; failing: {', '.join(failed)}" if failed else ""),
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- orchestration


async def run(
    args: argparse.Namespace, setup: Setup, scenarios: list[Scenario], modes: list[str]
) -> list[Row]:
    rows: list[Row] = []
    run_id = uuid.uuid4().hex[:8]
    faulty = [s.model for s in SCENARIOS]
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="tui-gateway-faults-") as tmp:
        fleet = Fleet(Path(tmp))
        try:
            mock = await fleet.spawn("mock", [py, str(ROOT / "scripts/mock_upstream.py")])
            children: dict[str, Child] = {}
            for mode in modes:
                config = Path(tmp) / f"faults-{mode}.toml"
                config.write_text(gateway_config(setup, mock.url, mode, faulty))
                argv = [py, "-m", "tui_gateway", "--headless", "--config", str(config)]
                argv += ["--host", "127.0.0.1", "--port", "0"]
                argv += ["--db", str(Path(tmp) / f"faults-{mode}.db")]
                children[mode] = await fleet.spawn(f"gateway-{mode}", argv, extra_lines=2)
            timeout = aiohttp.ClientTimeout(total=REQUEST_CAP_S + 5)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                for scenario in scenarios:
                    for mode in modes:
                        gw = Gateway(children[mode], mode, session, setup)
                        print(f"{scenario.model} ({mode}) ...", file=sys.stderr, flush=True)
                        rows.append(await run_scenario(gw, scenario, run_id, sdk=args.sdk))
                async with session.get(mock.url.removesuffix("/v1") + "/mock/stats") as resp:
                    stats = await resp.json()
            print(f"mock stats: {json.dumps(stats)}", file=sys.stderr)
        except BaseException:
            fleet.print_stderr_tails()
            raise
        finally:
            await fleet.stop()
    return rows


async def amain(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    scenarios = list(SCENARIOS)
    if args.scenarios:
        wanted = {w.strip() for w in args.scenarios.split(",") if w.strip()}
        scenarios = [s for s in SCENARIOS if s.model in wanted or parse_model(s.model)[0] in wanted]
        if not scenarios:
            raise SystemExit(f"no scenario matches {sorted(wanted)}")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if set(modes) - set(MODES):
        raise SystemExit(f"unknown modes: {sorted(set(modes) - set(MODES))}")
    setup = Setup(args.first_byte_timeout, args.stall_timeout, args.heartbeat, args.fallback)
    if setup.fallback in {s.model for s in SCENARIOS}:
        raise SystemExit("--fallback must differ from every scenario's model (add a parameter)")
    started = time.perf_counter()
    async with asyncio.timeout(RUN_CAP_S):
        rows = await run(args, setup, scenarios, modes)
    argv = ["python", "scripts/bench_faults.py", *sys.argv[1:]]
    report = markdown(rows, setup, argv, sdk=args.sdk, elapsed_s=time.perf_counter() - started)
    print(report)
    if args.output:
        Path(args.output).write_text(report)
    failed = [r for r in rows if not (r.silence_ok and r.answer_ok)]
    print("faults: " + ("every row PASS" if not failed else f"{len(failed)} row(s) FAIL"))
    return 1 if failed and args.strict else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="what a streaming client sees under faults")
    parser.add_argument("--output", help="write the markdown report to this file")
    parser.add_argument("--scenarios", help="comma list of scenario names (default: all)")
    parser.add_argument(
        "--modes", default=",".join(DEFAULT_MODES), help=f"continuation modes: {', '.join(MODES)}"
    )
    parser.add_argument("--no-sdk", dest="sdk", action="store_false", help="skip the SDK pass")
    parser.add_argument("--strict", action="store_true", help="exit 1 if any row fails")
    default = Setup()
    parser.add_argument("--fallback", default=default.fallback, help="second model of each chain")
    parser.add_argument(
        "--first-byte-timeout", type=float, default=default.first_byte_timeout_s, metavar="S"
    )
    parser.add_argument("--stall-timeout", type=float, default=default.stall_timeout_s, metavar="S")
    parser.add_argument(
        "--heartbeat", type=float, default=default.heartbeat_interval_s, metavar="S"
    )
    args = parser.parse_args(argv)
    try:
        return asyncio.run(amain(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        # SIGINT or SIGTERM: the children were already stopped on the way out.
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
