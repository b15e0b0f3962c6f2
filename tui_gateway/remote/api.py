"""One authenticated client of a running gateway's admin API; its errors in one plain sentence."""

from __future__ import annotations

from typing import Any

import aiohttp


class RemoteError(Exception):
    """The gateway could not be reached, refused the key, or refused the call; says which."""


def root_of(url: str) -> str:
    """`http://host:port` from what a user types: with or without `/v1`, a trailing slash."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = f"http://{url}"
    return url.removesuffix("/v1")


class Api:
    """Calls `root` with the bearer key; one session for the screen's whole life."""

    def __init__(self, root: str, api_key: str, session: aiohttp.ClientSession) -> None:
        self.root = root
        self.session = session
        self.headers = {"Authorization": f"Bearer {api_key}"}

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        """The JSON answer of one call; RemoteError with the gateway's own message if refused."""
        try:
            async with self.session.request(
                method, self.root + path, json=body, headers=self.headers
            ) as response:
                if response.status >= 400:
                    raise RemoteError(await refusal(response))
                return await response.json(content_type=None)
        except aiohttp.ClientError as exc:
            raise RemoteError(unreachable(self.root, exc)) from None
        except TimeoutError:
            raise RemoteError(f"{self.root} did not answer in time") from None


async def refusal(response: aiohttp.ClientResponse) -> str:
    """What the gateway said, from its OpenAI-style error body (or the status alone)."""
    try:
        message = (await response.json(content_type=None))["error"]["message"]
    except (ValueError, KeyError, TypeError, aiohttp.ClientError):
        message = response.reason or "error"
    if response.status == 401:
        return f"the gateway refused the key ({message}); pass --key, or check server.api_key"
    return f"HTTP {response.status}: {message}"


def unreachable(root: str, exc: BaseException) -> str:
    """Why the gateway could not be reached, in words (aiohttp's own are about its internals)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot reach the gateway at {root}: nothing answers there (is it running?)"
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
        return f"the gateway at {root} went away mid-answer"
    if isinstance(exc, TimeoutError):
        return f"the gateway at {root} went silent"
    reason = str(exc) or type(exc).__name__
    return f"cannot reach the gateway at {root}: {reason}"
