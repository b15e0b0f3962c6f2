"""What one upstream call costs the gateway's process, per HTTP client (issue 10).

    python scripts/bench_client.py [--requests 3000] [--rounds 5] [--loop uvloop|asyncio]

Starts `scripts/mock_upstream.py` on 127.0.0.1 and, in this process, posts to it with aiohttp's
`ClientSession` (as the gateway did up to issue 10, and as `scripts/passthrough.py` still does)
and with `tui_gateway.providers.http.UpstreamClient` (the relay's client now), rounds
interleaved. Each request is a streamed chat request (`ok:chunks=50`) or a non-streamed one
(`ok`), 32 in flight, its body read to the end. Prints this process's CPU per request (user +
system, `time.process_time`) for each client and workload: the load loop's own cost is in both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from tui_gateway.event_loop import loop_factory
from tui_gateway.providers.http import UpstreamClient

ROOT = Path(__file__).resolve().parent.parent
HEADERS = {"Authorization": "Bearer bench", "Content-Type": "application/json"}


def _body(model: str, stream: bool) -> bytes:
    messages = [{"role": "user", "content": "hi"}]
    return json.dumps({"model": model, "messages": messages, "stream": stream}).encode()


async def _batch(call: Callable[[], Awaitable[int]], requests: int, concurrency: int = 32) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await call()

    await asyncio.gather(*(one() for _ in range(requests)))


async def run(url: str, requests: int, rounds: int) -> dict[str, dict[str, list[float]]]:
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=None)
    )
    client = UpstreamClient()
    results: dict[str, dict[str, list[float]]] = {}
    try:
        for workload, body in (
            ("stream", _body("ok:chunks=50", True)),
            ("nonstream", _body("ok", False)),
        ):

            async def with_aiohttp(body: bytes = body) -> int:
                resp = await session.post(url, data=body, headers=HEADERS)
                try:
                    return sum([len(data) async for data in resp.content.iter_any()])
                finally:
                    resp.close()

            async def with_upstream_client(body: bytes = body) -> int:
                resp = await client.post(url, data=body, headers=HEADERS)
                try:
                    return sum([len(data) async for data in resp])
                finally:
                    resp.close()

            clients = {
                "aiohttp ClientSession": with_aiohttp,
                "UpstreamClient": with_upstream_client,
            }
            for call in clients.values():
                await _batch(call, 300)  # warm-up: connections open, code paths hot
            for turn in range(rounds):
                order = list(clients.items())
                for name, call in order[turn % 2 :] + order[: turn % 2]:
                    started = time.process_time()
                    await _batch(call, requests)
                    per_request = (time.process_time() - started) / requests * 1e6
                    results.setdefault(workload, {}).setdefault(name, []).append(per_request)
    finally:
        await session.close()
        await client.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args()
    mock = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts/mock_upstream.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert mock.stdout is not None
        found = re.search(r"http://\S+", mock.stdout.readline())
        if found is None:
            raise SystemExit("the mock upstream did not start")
        url = found.group(0).rstrip("/") + "/chat/completions"
        factory, _ = loop_factory(args.loop)
        with asyncio.Runner(loop_factory=factory) as runner:
            results = runner.run(run(url, args.requests, args.rounds))
    finally:
        mock.terminate()
        mock.wait()
    print(f"CPU µs per request of this process, {args.rounds} rounds, loop {args.loop}:")
    for workload, by_client in results.items():
        medians = {name: statistics.median(values) for name, values in by_client.items()}
        base = medians["aiohttp ClientSession"]
        for name, values in by_client.items():
            rounds = " ".join(f"{v:.0f}" for v in values)
            ratio = medians[name] / base
            print(
                f"  {workload:9s} {name:22s} median {medians[name]:5.0f}"
                f"  ({ratio:.2f}x)  rounds {rounds}"
            )


if __name__ == "__main__":
    main()
