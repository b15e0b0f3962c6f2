"""Peak memory of a gateway under a fixed load, in one process, for A/B runs of two builds.

    python scripts/bench_memory.py            # this checkout
    PYTHONPATH=/path/to/other/checkout python scripts/bench_memory.py

A gateway and the mock upstream start in this process (port 0); 6,000 non-streaming and 3,000
streaming (50-chunk) requests go through at 32 in flight. Prints VmRSS/VmHWM after start and
after each load, and the live object count at the end: a count that grows with requests means
something is kept per request. Client, mock and gateway share the process, so compare only runs
of this script with each other.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # last: a PYTHONPATH build of tui_gateway still comes first

from scripts.mock_upstream import make_app  # noqa: E402  (the path above makes it importable)
from tests.factories import API_KEY, make_settings, model, start_gateway  # noqa: E402

LOADS = ((False, 6000), (True, 3000))
CONCURRENCY = 32


async def _one(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any], slots: asyncio.Semaphore
) -> None:
    async with slots, http.post(url, json=body) as resp:
        await resp.read()


def memory() -> str:
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status if line.startswith(("VmRSS", "VmHWM")))
    return "  ".join(f"{k} {int(v.split()[0]) / 1024:.1f} MB" for k, v in sorted(fields.items()))


async def main() -> None:
    mock = TestServer(make_app(), host="127.0.0.1")
    await mock.start_server()
    settings = make_settings(
        str(mock.make_url("/v1")), [model("mock", "ok"), model("mock", "ok:chunks=50")]
    )
    with tempfile.TemporaryDirectory() as tmp:
        gateway = await start_gateway(settings, Path(tmp) / "memory.db")
        gc.freeze()
        gc.set_threshold(20_000, 50, 100)  # as the CLI tunes it
        print("started:", memory())
        url = gateway.base_url + "/chat/completions"
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as http:
            for stream, count in LOADS:
                slots = asyncio.Semaphore(CONCURRENCY)
                body = {
                    "model": "mock/ok:chunks=50" if stream else "mock/ok",
                    "messages": [{"role": "user", "content": "hello"}],
                    "stream": stream,
                }

                await asyncio.gather(*(_one(http, url, body, slots) for _ in range(count)))
                print(f"after {count} {'streaming' if stream else 'non-streaming'}:", memory())
        print("live objects:", len(gc.get_objects()))
        await gateway.stop()
    await mock.close()


if __name__ == "__main__":
    asyncio.run(main())
