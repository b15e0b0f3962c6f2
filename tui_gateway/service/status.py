"""`tui-gateway service status`: ask the gateway itself whether it is up, where, and since when.

It reads `GET /livez` and `GET /readyz` (no key) and `GET /gateway/info` (the key), directly:
never through an HTTP proxy from the environment, which would answer for a loopback address.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

PROBE_TIMEOUT_S = 3.0
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True, slots=True)
class Status:
    """What the gateway at one address said (or that nothing answered)."""

    url: str
    """Where it was asked: `http://host:port` (no `/v1`)."""
    up: bool
    ready: str | None = None
    """`ready`, `starting` or `stopping`, as `/readyz` says; None if it was not asked."""
    info: dict[str, Any] | None = None
    """`/gateway/info`: version, started_at, uptime_s, base_url, pid, demo; None if refused."""
    problem: str = ""
    """Why it is not up, or why the info is missing."""


def probe(url: str, api_key: str) -> Status:
    """Ask the gateway at `url` (`http://host:port`) how it is."""
    try:
        code, body = _get(f"{url}/livez")
    except OSError as exc:
        return Status(url, up=False, problem=f"nothing answers at {url} ({_reason(exc)})")
    if code != 200 or not isinstance(body, dict) or body.get("status") != "up":
        return Status(
            url, up=False, problem=f"{url} answers, but not as tui-gateway (livez {code})"
        )
    ready = _field(f"{url}/readyz", "status")
    try:
        code, body = _get(f"{url}/gateway/info", api_key)
    except OSError as exc:
        return Status(url, up=True, ready=ready, problem=f"no info ({_reason(exc)})")
    if code == 401:
        problem = "it refused the key this config gives, so its uptime is unknown"
        return Status(url, up=True, ready=ready, problem=problem)
    if code != 200 or not isinstance(body, dict):
        return Status(url, up=True, ready=ready, problem=f"no info (HTTP {code})")
    return Status(url, up=True, ready=ready, info=body)


def describe(status: Status) -> str:
    """One line: `tui-gateway is up at URL (up 2 h 5 min, since ..., pid N, version V)`."""
    if not status.up:
        return f"tui-gateway is not running: {status.problem}"
    info = status.info
    if info is None:
        return f"tui-gateway is up at {status.url}/v1{_readiness(status)}, but {status.problem}"
    facts = [f"up {duration(float(info.get('uptime_s', 0)))}"]
    facts += [f"since {info.get('started_at')}", f"pid {info.get('pid')}"]
    facts += [f"version {info.get('version')}"] + (["demo"] if info.get("demo") else [])
    url = info.get("base_url") or f"{status.url}/v1"
    return f"tui-gateway is up at {url}{_readiness(status)} ({', '.join(facts)})"


def duration(seconds: float) -> str:
    """`42 s`, `5 min 3 s`, `2 h 5 min`, `3 d 4 h`: the two largest units that matter."""
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def _readiness(status: Status) -> str:
    return "" if status.ready in (None, "ready") else f" but {status.ready}"


def _field(url: str, key: str) -> str | None:
    try:
        _code, body = _get(url)
    except OSError:
        return None
    value = body.get(key) if isinstance(body, dict) else None
    return value if isinstance(value, str) else None


def _get(url: str, api_key: str | None = None) -> tuple[int, Any]:
    """(status, parsed JSON or None); OSError when nothing answers."""
    request = urllib.request.Request(url)
    if api_key is not None:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with _DIRECT.open(request, timeout=PROBE_TIMEOUT_S) as response:
            return response.status, _json(response.read())
    except urllib.error.HTTPError as exc:  # an answer all the same (401, 404, 503)
        with exc:
            return exc.code, _json(exc.read())
    except http.client.HTTPException as exc:  # something that does not speak HTTP
        raise OSError(f"not HTTP: {type(exc).__name__}") from None


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _reason(exc: OSError) -> str:
    reason = getattr(exc, "reason", exc)  # URLError wraps the socket's error
    return str(getattr(reason, "strerror", None) or reason)
