"""Small builders that keep tests short: settings over the mock upstream, a started gateway."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tui_gateway.config import Settings, settings_from_dict
from tui_gateway.server import Gateway, bind_socket

API_KEY = "test-key"


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def model(provider: str, id: str, pool: str = "balanced", **extra: Any) -> dict[str, Any]:
    return {"provider": provider, "id": id, "pool": pool, **extra}


def make_settings(
    upstream_url: str = "",
    models: Iterable[dict[str, Any]] = (),
    *,
    providers: Iterable[dict[str, Any]] | None = None,
    **sections: dict[str, Any],
) -> Settings:
    """Settings with one `mock` provider at `upstream_url` (unless `providers` is given)."""
    if providers is None:
        providers = [
            {"name": "mock", "kind": "openai", "base_url": upstream_url, "api_keys": ["k1"]}
        ]
    raw: dict[str, Any] = {
        "server": {"api_key": API_KEY, "port": 0, "shutdown_grace_s": 1.0},
        # Tests see the chain order unless they ask for Thompson sampling (and give a seed).
        "routing": {"strategy": "ordered"},
        "providers": list(providers),
        "models": list(models),
    }
    for name, table in sections.items():
        raw[name] = {**raw.get(name, {}), **table}
    return settings_from_dict(raw, source="test")


async def start_gateway(
    settings: Settings, db_path: Path, clock: Callable[[], float] | None = None
) -> Gateway:
    sock: socket.socket = bind_socket("127.0.0.1", 0)
    timed = {} if clock is None else {"clock": clock}
    gateway = Gateway(settings, api_key=API_KEY, db_path=db_path, sock=sock, **timed)
    await gateway.start()
    return gateway


LISTENING = re.compile(r"^tui-gateway listening on (http://127\.0\.0\.1:(\d+)/v1)$")

SIM_PROVIDER = """
[[providers]]
name = "sim"
kind = "simulated"
[[models]]
provider = "sim"
id = "quick"
simulate = { first_token_ms = 0, tokens_per_s = 5000, reply_tokens = 5 }
"""
"""One fast simulated model, for configs that bring their own `[server]`."""
SIM_CONFIG = '\n[server]\napi_key = "cli-key"' + SIM_PROVIDER
"""One fast simulated model and the key `cli-key`: a gateway a subprocess test can drive."""


STDERR = "gateway.stderr"


def gateway_stderr(tmp_path: Path) -> str:
    """What the gateway `headless_gateway(tmp_path)` started has written to stderr so far."""
    return (tmp_path / STDERR).read_text()


@contextmanager
def headless_gateway(
    tmp_path: Path, config_text: str = SIM_CONFIG
) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    """`tui-gateway --headless` in a subprocess on a free port: (process, base URL, log path).

    Its stderr goes to a file (`gateway_stderr(tmp_path)` reads it): a pipe that nobody reads
    fills after a few hundred requests' log lines, and the gateway then waits on its write.
    The process is killed at exit if the test did not stop it.
    """
    config = tmp_path / "c.toml"
    config.write_text(config_text)
    db = tmp_path / "log.db"
    with (tmp_path / STDERR).open("w") as stderr, subprocess.Popen(
        [sys.executable, "-m", "tui_gateway", "--config", str(config), "--port", "0",
         "--db", str(db), "--headless"],
        stdout=subprocess.PIPE, stderr=stderr, text=True,
    ) as proc:  # fmt: skip
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline().strip()
            match = LISTENING.match(first)
            assert match, f"unexpected start-up line {first!r}"
            assert proc.stdout.readline().strip() == f"OPENAI_BASE_URL={match.group(1)}"
            proc.stdout.readline()  # OPENAI_API_KEY=...
            yield proc, match.group(1), db
        finally:
            if proc.poll() is None:
                proc.kill()
