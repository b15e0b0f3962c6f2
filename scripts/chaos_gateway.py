"""Clients and a restless user at once: a soak run of a real gateway process against faults.

Several clients send requests (to the chat, Messages and Responses doors, streamed and not, some
in sticky sessions) to a headless `tui-gateway` in front of the mock upstream, whose models
stall, drop streams, fail with a 5xx or a 429, or answer late. Meanwhile a "user" does what the
screen's keys do, every 10-100 ms at random: bans and unbans models, moves them in the pool,
skips requests in flight (`x`), forgets sessions and ends cooldowns. One model (`ok:text=safe`)
is never banned, so a request always has somewhere to go unless the user's own skips use up its
attempts.

What must hold at the end, or the run exits 1:

- every answer is a 200 (a stream ending as its door ends one: `data: [DONE]`, `message_stop`,
  `response.completed`; or in the door's error event if it broke once its headers were out), or
  a 502/503 in the door's error shape, or a 429 with `Retry-After`; never another status, never
  a connection the gateway dropped;
- a successful answer, as the client reads it from its door, is whole: its text one model's
  answer, or what a rescued one relayed before it broke joined to the rest, with nothing
  repeated and nothing lost (two of the models repeat a word or start over when asked to
  continue, so the joins are tested); or its one tool call, with arguments that parse (one
  of the two tool-call models goes quiet in the middle of them);
- every answer carries `X-Request-Id` (and the same `Request-Id` from /v1/messages), and its
  row in the request log has the same status and says it failed exactly when the client was
  told so (an error status or an error event);
- no answer took longer than `--max-latency-s` (nothing waits out a 120 s timeout);
- once the clients stop, nothing is left in flight, and the gateway stops on one SIGTERM
  with exit 0 and no traceback.

Clients also give up part way (a tenth of the requests get a deadline 0.5-100 ms in, which
the slow ones meet): a request they left is logged as 499 (or 200 if it had just ended), and
the log holds one row per request (and per key the user pressed that was refused, such as a
skip of a request already done); only a request given up before it was sent may have none.
With `--cluster N`, N gateways share a `redis-server` and the clients and the user pick one at
random for each request and key; once the user stops, every gateway must show the same pool
order, bans and switched-off models within SETTLE_S. With `--stop-under-load` the gateways get
their SIGTERM while the clients are still sending: what was in flight must still be answered
(finished, or a 503 or an error event) and logged, and only what was sent after it may go
unanswered. The rules are in scripts/chaos_rules.py.

Bugs this found: a connection dropped after a skip leaving the next request waiting 120 s, a
skip flag outliving its wait, errors without `X-Request-Id`, a stream committed by a keep-alive
logged with a status its client never got, and a request the upstream held and dropped sent to
it again on a new connection. Run it as

    python scripts/chaos_gateway.py --seconds 60 --clients 12
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts import chaos_screen
from scripts.bench import Fleet, start_redis
from scripts.chaos_rules import DOORS, Answer, check, diverged, judge, read_log

MODELS = (  # the pool's order (`ordered` routing): the faults first, so they are met
    "stall-before-first:ms=3000",
    "stall-after-first:ms=3000",
    "drop-mid-stream",
    "error-500",
    "error-429:retry_after=1",
    "slow-first-token:ttft_ms=400",
    "tool-call:fragments=4,stall_after=3",  # goes quiet in the middle of its call's arguments
    "tool-call",
    "ok:chunks=20,continue=repeat-word",
    "ok:chunks=5,delay_ms=5,continue=restart",
)
SAFE = "ok:text=safe"
LEFT_SHARE = 0.1
"""Of the requests, those that get a deadline their client gives up at, 0.5-100 ms in."""
KEY = "chaos-key"
AFTER_STOP_S = 3.0
"""With `--stop-under-load`: how long the clients go on sending after the SIGTERM."""
SETTLE_S = 2.0
"""How long a cluster's gateways get, after the user's last key, to agree on what they share."""


@dataclass(slots=True)
class Tally:
    """What one run saw: the answers, the user's actions, and then what the logs hold."""

    answers: list[Answer] = field(default_factory=list)
    actions: Counter[str] = field(default_factory=Counter)
    refused: Counter[int] = field(default_factory=Counter)
    """Per gateway, the user's keys it refused (each is a row of its log)."""
    attempts: Counter[str] = field(default_factory=Counter)
    """How the logged attempts ended, by error kind (`ok`, `stall`, `skipped`, ...)."""
    problems: list[str] = field(default_factory=list)
    keys: Counter[str] = field(default_factory=Counter)
    """With `--screen`: the keys pressed on the TUI, and how often."""
    kept: Path | None = None
    """Where the run's config, stderr and request logs are, when kept (`--keep`, or a failure)."""


def config(
    mock_url: str, timeout_s: float, *, hedge: bool = False, rpm: int = 0, redis: str = ""
) -> str:
    limits = f"limits = {{ rpm = {rpm} }}\n" if rpm else ""  # per key and model
    cluster = f'[cluster]\nredis_url = "{redis}"\n\n' if redis else ""
    models = "".join(f'\n[[models]]\nprovider = "mock"\nid = "{m}"\n' for m in (*MODELS, SAFE))
    return f"""\
{cluster}[server]
api_key = "{KEY}"
shutdown_grace_s = 2.0

[routing]
strategy = "ordered"
max_attempts = 4
request_timeout_s = {timeout_s}
transient_cooldown_s = 1.0
hedge = {"true" if hedge else "false"}
hedge_min_s = 0.1
max_quota_wait_s = 1.0

[streaming]
first_byte_timeout_s = 1.0
stall_timeout_s = 0.5
heartbeat_interval_s = 0.5

[[providers]]
name = "mock"
kind = "openai"
base_url = "{mock_url}"
api_keys = ["mock-key"]
{limits}{models}"""


async def one_request(http: aiohttp.ClientSession, urls: list[str], rng: random.Random) -> Answer:
    gateway, door, stream = rng.randrange(len(urls)), rng.choice(DOORS), rng.random() < 0.6
    headers = {"Authorization": f"Bearer {KEY}"}
    if rng.random() < 0.5:
        headers["X-Session-Id"] = f"chat-{rng.randrange(8)}"
    start = time.perf_counter()
    # Some clients give up part way (a user's Ctrl-C, their own timeout).
    deadline = asyncio.timeout(rng.uniform(0.0005, 0.1) if rng.random() < LEFT_SHARE else None)
    seen: list[str | None] = [None]
    try:
        body = {**door.body, "stream": stream}
        async with deadline, http.post(urls[gateway] + door.path, json=body, headers=headers) as r:
            seen[0] = r.headers.get("X-Request-Id")
            data = await r.read()
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        seconds = time.perf_counter() - start
        if deadline.expired():
            return Answer(door.path, 0, seen[0], seconds, left=True, gateway=gateway, started=start)
        problem = f"{door.path}: no answer: {exc!r}"
        return Answer(door.path, 0, None, seconds, problem, gateway=gateway, started=start)
    answer = judge(door, stream, r.status, r.headers, data)
    answer.seconds, answer.gateway, answer.started = time.perf_counter() - start, gateway, start
    return answer


async def client(http: aiohttp.ClientSession, urls: list[str], seed: int, until: float, tally):
    rng = random.Random(seed)
    while time.monotonic() < until:
        answer = await one_request(http, urls, rng)
        tally.answers.append(answer)
        if answer.status == 0 and not answer.left:
            await asyncio.sleep(0.01)  # a stopped gateway refuses at once: not in a spin


async def user(http: aiohttp.ClientSession, urls: list[str], rng: random.Random, until, tally):
    """What the screen's keys do, at random, on any of the gateways, until `until` (when a
    gateway may stop: a key that meets the stop is not pressed)."""
    try:
        await press_keys(http, urls, rng, until, tally)
    except aiohttp.ClientError:
        if time.monotonic() < until - 1.0:
            raise


async def press_keys(
    http: aiohttp.ClientSession, urls: list[str], rng: random.Random, until: float, tally: Tally
) -> None:
    banned: set[str] = set()
    while time.monotonic() < until:
        await asyncio.sleep(rng.uniform(0.01, 0.1))
        gateway = rng.randrange(len(urls))
        url = urls[gateway]
        action = rng.choice(("ban", "unban", "move", "skip", "skip", "sessions", "cooldowns"))
        if action == "unban" and not banned:
            action = "ban"
        model = f"mock/{rng.choice(MODELS)}"
        path, method, body = f"/gateway/models/{quote(model, safe='/')}/ban", "POST", None
        if action == "unban":
            model = rng.choice(sorted(banned))
            path, method = f"/gateway/models/{quote(model, safe='/')}/ban", "DELETE"
        elif action == "move":
            path, body = f"/gateway/models/{quote(model, safe='/')}/move", {"delta": -1}
        elif action == "skip":
            async with http.get(url + "/gateway/state") as resp:
                active = [flow["id"] for flow in (await resp.json())["active"]]
            if not active:
                continue
            path = f"/gateway/requests/{rng.choice(active)}/skip"
        elif action == "sessions":
            path, method = "/gateway/sessions", "DELETE"
        elif action == "cooldowns":
            path, method = "/gateway/cooldowns", "DELETE"
        async with http.request(method, url + path, json=body) as resp:
            await resp.read()
        tally.actions[f"{action} {resp.status}"] += 1
        if resp.status != 200:
            tally.refused[gateway] += 1
        elif action == "ban":
            banned.add(model)
        elif action == "unban":
            banned.discard(model)


async def states(http: aiohttp.ClientSession, urls: list[str]) -> list[dict[str, Any]]:
    out = []
    for url in urls:
        async with http.get(url + "/gateway/state") as resp:
            out.append(await resp.json())
    return out


async def agreed(http: aiohttp.ClientSession, urls: list[str]) -> list[str]:
    """Nothing once the cluster's gateways show the same shared state, looking every 0.1 s
    for SETTLE_S; else how they still differ."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_S
    while differences := diverged(await states(http, urls)):
        if loop.time() > deadline:
            return differences
        await asyncio.sleep(0.1)
    return []


async def run(args: argparse.Namespace) -> Tally:
    """Start the mock and the gateways, run the clients and the user, and check the rules."""
    workdir = Path(tempfile.mkdtemp(prefix="chaos-"))
    fleet, tally = Fleet(workdir), Tally()
    py, gateways = sys.executable, args.cluster or 1
    try:
        mock = await fleet.spawn("mock", [py, "scripts/mock_upstream.py", "--port", "0"])
        redis = await start_redis(fleet) if args.cluster else ""
        conf = workdir / "chaos.toml"
        conf.write_text(
            config(
                mock.url, args.request_timeout_s, hedge=args.hedge, rpm=args.quota_rpm, redis=redis
            )
        )
        argv = [py, "-m", "tui_gateway", "--headless", "--config", str(conf), "--port", "0"]
        argv += ["--log-level", "warning"]
        dbs = [workdir / f"chaos-{n}.db" for n in range(gateways)]
        urls, started, screen = [], [], None  # with --screen, the first gateway has its TUI
        if args.screen:
            screen, url = await chaos_screen.start(workdir, conf, dbs[0], KEY)
            urls.append(url)
        for n, db in enumerate(dbs[len(urls) :], start=len(urls)):
            started.append(
                await fleet.spawn(f"gateway-{n}", [*argv, "--db", str(db)], extra_lines=2)
            )
            urls.append(started[-1].url.removesuffix("/v1"))
        until = time.monotonic() + args.seconds
        # Stopped under load: the SIGTERM comes at `until`, and the clients go on a while.
        clients_until = until + AFTER_STOP_S if args.stop_under_load else until
        stopped_at = [float("inf")]

        async def stop_under_load() -> None:
            await asyncio.sleep(until - time.monotonic())
            stopped_at[0] = time.perf_counter()
            for gateway in started:
                gateway.proc.send_signal(signal.SIGTERM)

        timeout = aiohttp.ClientTimeout(total=args.max_latency_s * 2)
        connector = aiohttp.TCPConnector(limit=args.clients + 4)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
            http.headers["Authorization"] = f"Bearer {KEY}"
            rng = random.Random(args.seed)
            load = [
                client(http, urls, args.seed + i, clients_until, tally) for i in range(args.clients)
            ]
            load.append(user(http, urls, rng, until, tally))
            if args.stop_under_load:
                load.append(stop_under_load())
            if screen is not None:
                load.append(
                    chaos_screen.press(screen, random.Random(-args.seed), until, tally.keys)
                )
            await asyncio.gather(*load)
            left: list[str] = []
            if not args.stop_under_load:
                left = [f["id"] for state in await states(http, urls) for f in state["active"]]
                if args.cluster:
                    tally.problems += await agreed(http, urls)
        if screen is not None:
            tally.problems += await chaos_screen.finish(screen)
        codes = []
        for gateway in started:
            if gateway.proc.returncode is None and not args.stop_under_load:
                gateway.proc.send_signal(signal.SIGTERM)
            codes.append(await asyncio.wait_for(gateway.proc.wait(), 20))
        for answer in tally.answers:  # sent after the stop, or as it began: nobody to answer
            if answer.status == 0 and not answer.left and answer.started > stopped_at[0] - 0.2:
                answer.problem, answer.unsent = None, True
        stderrs = [gateway.stderr_tail(1000) for gateway in started]
    finally:
        await fleet.stop()
    logs = []
    for db in dbs:
        logged, attempts = read_log(db)
        logs.append(logged)
        tally.attempts += attempts
    tally.problems += check(tally.answers, logs, tally.refused, args.max_latency_s)
    if left:
        tally.problems.append(f"left in flight after the clients stopped: {left}")
    for n, (code, stderr) in enumerate(
        zip(codes, stderrs, strict=True), start=len(urls) - len(started)
    ):
        if code != 0 or "Traceback" in stderr:
            tally.problems.append(f"gateway {n} exited {code}:\n{stderr[-2000:]}")
    if tally.problems or args.keep:
        tally.kept = workdir
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return tally


def _status(a: Answer) -> str | int:
    if a.unsent or a.left:
        return "unsent" if a.unsent else "left"
    return f"{a.status} broken" if a.failed and a.status == 200 else a.status


def report(tally: Tally, seconds_run: float) -> None:
    statuses = Counter(map(_status, tally.answers))
    seconds = sorted(a.seconds for a in tally.answers)
    print(f"{len(seconds)} answers in {seconds_run:.0f} s: {dict(statuses.most_common())}")
    if seconds:
        p50, p99 = seconds[len(seconds) // 2], seconds[int(len(seconds) * 0.99)]
        print(f"latency p50 {p50:.3f} s, p99 {p99:.3f} s, max {seconds[-1]:.3f} s")
    print("attempts by outcome:", dict(tally.attempts.most_common()))
    print("user actions:", dict(sorted(tally.actions.items())))
    if tally.keys:
        print(
            f"keys pressed on the screen: {sum(tally.keys.values())}",
            dict(tally.keys.most_common(8)),
        )
    for line in tally.problems[:30]:
        print("PROBLEM:", line)
    print(f"{len(tally.problems)} problems" if tally.problems else "every rule held")
    if tally.kept:
        print(f"the run's config, stderr and request logs: {tally.kept}")


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--request-timeout-s", type=float, default=120.0)
    parser.add_argument("--max-latency-s", type=float, default=10.0)
    parser.add_argument("--hedge", action="store_true", help="race late first bytes (hedge)")
    parser.add_argument("--quota-rpm", type=int, default=0, help="limit each model (0: none)")
    parser.add_argument(
        "--cluster", type=int, default=0, metavar="N", help="N gateways sharing a redis-server"
    )
    parser.add_argument(
        "--stop-under-load", action="store_true", help="SIGTERM the gateways mid-traffic"
    )
    parser.add_argument(
        "--screen", action="store_true", help="the first gateway with its TUI, keys pressed"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the run's files (kept on a failure)"
    )
    args = parser.parse_args(argv)
    if args.screen and args.stop_under_load:
        parser.error("--screen quits its gateway with q: not with --stop-under-load")
    return args


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    tally = asyncio.run(run(args))
    report(tally, args.seconds)
    return 1 if tally.problems else 0


if __name__ == "__main__":
    sys.exit(main())
