"""`--demo`: simulated providers across all pools and a gentle client that keeps them busy."""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import replace

import aiohttp

from .config import ServerSettings, Settings, parse_settings
from .domain.state import GatewayState

DEMO_CONFIG = """
[routing]
max_attempts = 4
request_timeout_s = 20

[streaming]
first_byte_timeout_s = 6
stall_timeout_s = 8
heartbeat_interval_s = 3

[[providers]]
name = "swift"
kind = "simulated"

[[providers]]
name = "steady"
kind = "simulated"

[[providers]]
name = "sage"
kind = "simulated"

[[providers]]
name = "flaky"
kind = "simulated"
protection = "provider-ban"

[[models]]
provider = "swift"
id = "swift-mini"
pool = "fast"
intelligence = 3
simulate = { first_token_ms = 120, tokens_per_s = 140, reply_tokens = 50, seed = 1 }

[[models]]
provider = "flaky"
id = "flaky-flash"
pool = "fast"
intelligence = 4
simulate = { first_token_ms = 200, tokens_per_s = 120, reply_tokens = 50, error_rate = 0.15, stall_rate = 0.1, wrapped_error_rate = 0.05, seed = 2 }

[[models]]
provider = "steady"
id = "steady-7b"
pool = "balanced"
intelligence = 5
simulate = { first_token_ms = 350, tokens_per_s = 70, reply_tokens = 80, rate_limit_rate = 0.05, seed = 3 }

[[models]]
provider = "flaky"
id = "flaky-70b"
pool = "balanced"
intelligence = 7
simulate = { first_token_ms = 600, tokens_per_s = 45, reply_tokens = 90, error_rate = 0.2, stall_rate = 0.1, seed = 4 }

[[models]]
provider = "swift"
id = "swift-13b"
pool = "balanced"
intelligence = 5
simulate = { first_token_ms = 250, tokens_per_s = 90, reply_tokens = 70, seed = 5 }

[[models]]
provider = "sage"
id = "sage-large"
pool = "smart"
intelligence = 9
simulate = { first_token_ms = 1200, tokens_per_s = 30, reply_tokens = 120, rate_limit_rate = 0.1, seed = 6 }

[[models]]
provider = "steady"
id = "steady-34b"
pool = "smart"
intelligence = 7
simulate = { first_token_ms = 700, tokens_per_s = 50, reply_tokens = 100, seed = 7 }
"""

_OPENERS = (
    "Why does my asyncio task never finish when the upstream stalls?",
    "Refactor this function to use a dataclass instead of a dict.",
    "Write a pytest for the retry budget in the HTTP client.",
    "Explain the difference between a cooldown and a ban.",
    "How do I stream server-sent events with aiohttp?",
    "Suggest a better name for process_data_v2.",
    "Why is this SQL query slow on a million rows?",
    "Review this diff for race conditions.",
)
_FOLLOW_UPS = (
    "Can you make it shorter?",
    "Now add type hints.",
    "What about the error path?",
    "Show the test too.",
)
_MODELS = ("auto", "auto", "auto", "auto-fast", "auto-smart")


def demo_settings(server: ServerSettings | None = None) -> Settings:
    """The built-in demo config, with the user's `[server]` settings if they have a config."""
    settings = parse_settings(DEMO_CONFIG, source="built-in demo config")
    return settings if server is None else replace(settings, server=server)


class DemoTraffic:
    """A few simulated developers chatting through the gateway, pausable from the state."""

    def __init__(
        self, state: GatewayState, base_url: str, api_key: str, *, workers: int = 3, seed: int = 7
    ) -> None:
        self.state = state
        self.url = base_url + "/chat/completions"
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.workers = workers
        self.rng = random.Random(seed)

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(timeout=timeout, headers=self.headers) as session:
            await asyncio.gather(*(self._developer(session, n) for n in range(self.workers)))

    async def _developer(self, session: aiohttp.ClientSession, n: int) -> None:
        await asyncio.sleep(0.3 * n)
        while True:
            model = self.rng.choice(_MODELS)
            messages: list[dict[str, str]] = [
                {
                    "role": "user",
                    "content": f"{self.rng.choice(_OPENERS)} (#{self.rng.randrange(10**6)})",
                }
            ]
            for _turn in range(self.rng.randint(1, 4)):
                while self.state.demo_paused:
                    await asyncio.sleep(0.25)
                reply = await self._ask(session, model, messages, stream=self.rng.random() < 0.8)
                if reply is None:
                    break
                messages += [
                    {"role": "assistant", "content": reply},
                    {"role": "user", "content": self.rng.choice(_FOLLOW_UPS)},
                ]
                await asyncio.sleep(self.rng.uniform(0.8, 2.5))

    async def _ask(
        self,
        session: aiohttp.ClientSession,
        model: str,
        messages: list[dict[str, str]],
        *,
        stream: bool,
    ) -> str | None:
        body = {"model": model, "messages": messages, "stream": stream}
        try:
            async with session.post(self.url, json=body) as resp:
                if resp.status != 200:
                    await resp.read()
                    return None
                if not stream:
                    data = await resp.json()
                    return str(data["choices"][0]["message"]["content"])
                return await _read_stream(resp)
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError):
            return None  # the gateway shows what went wrong; the demo just moves on


async def _read_stream(resp: aiohttp.ClientResponse) -> str | None:
    parts: list[str] = []
    async for line in resp.content:
        if not line.startswith(b"data: ") or line.strip() == b"data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        if "error" in chunk:
            return None
        for choice in chunk.get("choices", ()):
            parts.append(choice.get("delta", {}).get("content") or "")
    return "".join(parts)
