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
- every answer carries `X-Request-Id` (and the same `Request-Id` from /v1/messages), and its
  row in the request log has the same status and says it failed exactly when the client was
  told so (an error status or an error event);
- no answer took longer than `--max-latency-s` (nothing waits out a 120 s timeout);
- once the clients stop, nothing is left in flight, and the gateway stops on one SIGTERM
  with exit 0 and no traceback.

Clients also give up part way (a tenth of the requests get a deadline 0.5-100 ms in, which
the slow ones meet): a request they left is logged as 499 (or
200 if it had just ended), and the log holds one row per request (and per key the user pressed
that was refused, such as a skip of a request already done).

Bugs this found: a connection dropped after a skip leaving the next request waiting 120 s, a
skip flag outliving its wait, errors without `X-Request-Id`, a stream committed by a keep-alive
logged with a status its client never got, and a request the upstream held and dropped sent to
it again on a new connection. Run it as

    python scripts/chaos_gateway.py --seconds 60 --clients 12
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import aiohttp

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.bench import Fleet

MODELS = (  # the pool's order (`ordered` routing): the faults first, so they are met
    "stall-before-first:ms=3000",
    "stall-after-first:ms=3000",
    "drop-mid-stream",
    "error-500",
    "error-429:retry_after=1",
    "slow-first-token:ttft_ms=400",
    "ok:chunks=20",
    "ok:chunks=5,delay_ms=5",
)
SAFE = "ok:text=safe"
LEFT_SHARE = 0.1
"""Of the requests, those the client gives up on, 20-400 ms in."""
KEY = "chaos-key"


@dataclass(slots=True)
class Answer:
    path: str
    status: int
    request_id: str | None
    seconds: float
    problem: str | None = None
    failed: bool = False
    """The request failed: an error status, or a stream whose last event is an error."""
    left: bool = False
    """The client gave up on it (status 0; the id is there if the headers had come)."""


@dataclass(slots=True)
class Tally:
    """What one run saw: the answers, the user's actions, and then what the log holds."""

    answers: list[Answer] = field(default_factory=list)
    actions: Counter[str] = field(default_factory=Counter)
    attempts: Counter[str] = field(default_factory=Counter)
    """How the logged attempts ended, by error kind (`ok`, `stall`, `skipped`, ...)."""
    problems: list[str] = field(default_factory=list)


def config(mock_url: str, timeout_s: float, *, hedge: bool = False, rpm: int = 0) -> str:
    limits = f"limits = {{ rpm = {rpm} }}\n" if rpm else ""  # per key and model
    models = "".join(f'\n[[models]]\nprovider = "mock"\nid = "{m}"\n' for m in (*MODELS, SAFE))
    return f"""\
[server]
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


@dataclass(frozen=True, slots=True)
class Door:
    """One of the gateway's front doors, and how its answers end, break and fail."""

    path: str
    body: dict[str, object]
    ended: bytes
    """What a whole stream's last event holds."""
    broken: bytes
    """What the last event (before chat's `[DONE]`) of a stream that broke after its headers
    holds."""
    id_headers: tuple[str, ...] = ("X-Request-Id",)


HI = [{"role": "user", "content": "hi"}]
DOORS = (
    Door("/v1/chat/completions", {"model": "auto", "messages": HI}, b"data: [DONE]", b'{"error"'),
    Door(
        "/v1/messages",
        {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": HI},
        b"event: message_stop",
        b"event: error",
        ("X-Request-Id", "Request-Id"),
    ),
    Door(
        "/v1/responses",
        {"model": "auto", "input": "hi"},
        b"event: response.completed",
        b"event: response.failed",
    ),
)


def error_message(door: Door, data: bytes) -> str | None:
    """The message of an error body in the door's own shape, None if it is not in that shape."""
    try:
        body = json.loads(data)
        if door.path == "/v1/messages" and body["type"] != "error":
            return None
        message = body["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return None
    return message if isinstance(message, str) else None


async def one_request(http: aiohttp.ClientSession, url: str, rng: random.Random) -> Answer:
    door, stream = rng.choice(DOORS), rng.random() < 0.6
    headers = {"Authorization": f"Bearer {KEY}"}
    if rng.random() < 0.5:
        headers["X-Session-Id"] = f"chat-{rng.randrange(8)}"
    start = time.perf_counter()
    # Some clients give up part way (a user's Ctrl-C, their own timeout).
    deadline = asyncio.timeout(rng.uniform(0.0005, 0.1) if rng.random() < LEFT_SHARE else None)
    seen: list[str | None] = [None]
    try:
        body = {**door.body, "stream": stream}
        async with deadline, http.post(url + door.path, json=body, headers=headers) as resp:
            seen[0] = resp.headers.get("X-Request-Id")
            data = await resp.read()
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        seconds = time.perf_counter() - start
        if deadline.expired():
            return Answer(door.path, 0, seen[0], seconds, left=True)
        return Answer(door.path, 0, None, seconds, f"{door.path}: no answer: {exc!r}")
    ids = {resp.headers.get(name) for name in door.id_headers}
    request_id, seconds = resp.headers.get("X-Request-Id"), time.perf_counter() - start
    answer = Answer(door.path, resp.status, request_id, seconds)
    answer.failed = resp.status != 200
    *_, before, last = [b"", *data.rstrip(b"\n").split(b"\n\n")]
    final = before if last == b"data: [DONE]" else last  # chat's error event comes before it
    if len(ids) != 1:
        answer.problem = f"{door.path}: the id headers {door.id_headers} differ: {ids}"
    elif resp.status == 200:
        # A stream that broke after its headers ends in an error event: the attempts ran out.
        answer.failed = stream and door.broken in final
        if stream and not answer.failed and door.ended not in last:
            answer.problem = f"{door.path}: a stream that does not end: ...{data[-160:]!r}"
    elif resp.status not in (429, 502, 503):
        answer.problem = f"{door.path}: status {resp.status}: {data[:200]!r}"
    elif resp.status == 429 and "Retry-After" not in resp.headers:
        answer.problem = f"{door.path}: a 429 without Retry-After"
    elif error_message(door, data) is None:
        answer.problem = f"{door.path}: a {resp.status} not in the door's shape: {data[:200]!r}"
    return answer


async def client(http: aiohttp.ClientSession, url: str, seed: int, until: float, tally: Tally):
    rng = random.Random(seed)
    while time.monotonic() < until:
        tally.answers.append(await one_request(http, url, rng))


async def user(http: aiohttp.ClientSession, url: str, rng: random.Random, until: float, tally):
    """What the screen's keys do, at random, until `until`."""
    banned: set[str] = set()
    while time.monotonic() < until:
        await asyncio.sleep(rng.uniform(0.01, 0.1))
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
        if action == "ban" and resp.status == 200:
            banned.add(model)
        elif action == "unban" and resp.status == 200:
            banned.discard(model)


def read_log(db: Path) -> tuple[dict[str, tuple[int, bool]], Counter[str]]:
    """Each request's logged status and whether it failed, and how its attempts ended (so
    the faults were met)."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT id, status, error_kind IS NOT NULL FROM requests")
        statuses = {request_id: (status, bool(failed)) for request_id, status, failed in rows}
        kinds = conn.execute("SELECT coalesce(error_kind, 'ok'), count(*) FROM attempts GROUP BY 1")
        return statuses, Counter(dict(kinds))


def check(tally: Tally, logged: dict[str, tuple[int, bool]], max_latency_s: float) -> list[str]:
    """Every broken rule, as a line."""
    problems = [a.problem for a in tally.answers if a.problem]
    refused = sum(n for action, n in tally.actions.items() if not action.endswith(" 200"))
    if len(logged) != len(tally.answers) + refused:  # the user's refused keys are rows too
        problems.append(f"{len(logged)} log rows for {len(tally.answers) + refused} requests")
    for answer in tally.answers:
        if answer.left:
            if answer.request_id and logged.get(answer.request_id, (0,))[0] not in (200, 499):
                found = logged.get(answer.request_id, "no row")
                problems.append(f"{answer.request_id}: left by its client, logged {found}")
            continue
        if answer.status and answer.request_id is None:
            problems.append(f"a {answer.status} without X-Request-Id")
        elif answer.request_id and logged.get(answer.request_id) != (answer.status, answer.failed):
            said = (answer.status, answer.failed)
            found = logged.get(answer.request_id, "no row")
            problems.append(
                f"{answer.request_id}: answered {said}, logged (status, failed) {found}"
            )
        if answer.seconds > max_latency_s:
            problems.append(f"{answer.request_id} took {answer.seconds:.1f} s")
    return problems


async def run(args: argparse.Namespace) -> Tally:
    """Start the mock and the gateway, run the clients and the user, and check the rules."""
    workdir = Path(tempfile.mkdtemp(prefix="chaos-"))
    fleet, tally = Fleet(workdir), Tally()
    py = sys.executable
    try:
        mock = await fleet.spawn("mock", [py, "scripts/mock_upstream.py", "--port", "0"])
        conf, db = workdir / "chaos.toml", workdir / "chaos.db"
        conf.write_text(
            config(mock.url, args.request_timeout_s, hedge=args.hedge, rpm=args.quota_rpm)
        )
        argv = [py, "-m", "tui_gateway", "--headless", "--config", str(conf), "--port", "0"]
        argv += ["--log-level", "warning"]
        gateway = await fleet.spawn("gateway", [*argv, "--db", str(db)], extra_lines=2)
        url = gateway.url.removesuffix("/v1")
        until = time.monotonic() + args.seconds
        timeout = aiohttp.ClientTimeout(total=args.max_latency_s * 2)
        connector = aiohttp.TCPConnector(limit=args.clients + 4)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
            http.headers["Authorization"] = f"Bearer {KEY}"
            clients = [client(http, url, args.seed + i, until, tally) for i in range(args.clients)]
            await asyncio.gather(*clients, user(http, url, random.Random(args.seed), until, tally))
            async with http.get(url + "/gateway/state") as resp:
                left = [flow["id"] for flow in (await resp.json())["active"]]
        gateway.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(gateway.proc.wait(), 20)
        stderr = gateway.stderr_tail(1000)
    finally:
        await fleet.stop()
    logged, tally.attempts = read_log(db)
    tally.problems = check(tally, logged, args.max_latency_s)
    if left:
        tally.problems.append(f"left in flight after the clients stopped: {left}")
    if code != 0 or "Traceback" in stderr:
        tally.problems.append(f"the gateway exited {code}:\n{stderr[-2000:]}")
    return tally


def report(tally: Tally, seconds_run: float) -> None:
    statuses = Counter(
        "left" if a.left else f"{a.status} broken" if a.failed and a.status == 200 else a.status
        for a in tally.answers
    )
    seconds = sorted(a.seconds for a in tally.answers)
    print(f"{len(seconds)} answers in {seconds_run:.0f} s: {dict(statuses.most_common())}")
    if seconds:
        p50, p99 = seconds[len(seconds) // 2], seconds[int(len(seconds) * 0.99)]
        print(f"latency p50 {p50:.3f} s, p99 {p99:.3f} s, max {seconds[-1]:.3f} s")
    print("attempts by outcome:", dict(tally.attempts.most_common()))
    print("user actions:", dict(sorted(tally.actions.items())))
    for line in tally.problems[:30]:
        print("PROBLEM:", line)
    print(f"{len(tally.problems)} problems" if tally.problems else "every rule held")


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--request-timeout-s", type=float, default=120.0)
    parser.add_argument("--max-latency-s", type=float, default=10.0)
    parser.add_argument("--hedge", action="store_true", help="race late first bytes (hedge)")
    parser.add_argument("--quota-rpm", type=int, default=0, help="limit each model (0: none)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    tally = asyncio.run(run(args))
    report(tally, args.seconds)
    return 1 if tally.problems else 0


if __name__ == "__main__":
    sys.exit(main())
