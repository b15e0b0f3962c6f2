"""`tui-gateway attach [URL] [--key KEY]`: the live screen on a gateway that is already running.

Which gateway: the URL given, else the local one at the configured port. Which key: `--key`, else
for a local gateway the config's `server.api_key` or the generated one in the data dir (what the
gateway itself uses). Before the screen opens, one call checks the gateway is there and takes the
key, so a wrong port or key is one clear line, not an empty screen.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import aiohttp

from . import event_loop, paths
from .config import ServerSettings
from .config_clients import is_loopback
from .remote.api import Api, RemoteError, root_of

CHECK_TIMEOUT_S = 5.0


class AttachError(Exception):
    """No gateway to attach to: the message says why and what to do."""


def target(
    url: str | None,
    key: str | None,
    server: ServerSettings,
    *,
    host: str | None = None,
    port: int | None = None,
) -> tuple[str, str]:
    """The gateway's root URL and the key to send it; `host`/`port` override the config's for
    the local gateway (`tui-gateway --port N attach`)."""
    if url is None:
        from .setup import SetupError, resolve_target  # the address clients are told to use

        try:
            local = resolve_target(server, host=host, port=port)
        except SetupError as exc:
            raise AttachError(f"{exc}; or pass the gateway's URL") from None
        return local.base_url, key or local.api_key
    root = root_of(url)
    host = urlsplit(root).hostname or ""
    if key is None and not is_loopback(host):
        if server.api_key is None:
            raise AttachError(
                f"{host} is another machine: pass --key KEY (its server.api_key; the key "
                "generated in this machine's data dir is only this machine's gateway's)"
            )
        key = server.api_key
    return root, key or server.api_key or paths.generated_api_key()


def check(url: str, key: str) -> None:
    """One authenticated call, so a wrong URL or key fails here with the reason."""

    async def probe() -> None:
        timeout = aiohttp.ClientTimeout(total=CHECK_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await Api(url, key, session).call("GET", "/v1/models")

    try:
        asyncio.run(probe())
    except RemoteError as exc:
        raise AttachError(str(exc)) from None


def run(url: str, key: str, *, theme: str, loop: str) -> None:
    from .remote.gateway import RemoteGateway
    from .tui.app import GatewayApp

    event_loop.run(GatewayApp(RemoteGateway(url, key), theme=theme).run_async(), choice=loop)
