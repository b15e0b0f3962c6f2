"""Small builders that keep tests short: settings over the mock upstream, a started gateway."""

from __future__ import annotations

import socket
from collections.abc import Iterable
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


async def start_gateway(settings: Settings, db_path: Path) -> Gateway:
    sock: socket.socket = bind_socket("127.0.0.1", 0)
    gateway = Gateway(settings, api_key=API_KEY, db_path=db_path, sock=sock)
    await gateway.start()
    return gateway
