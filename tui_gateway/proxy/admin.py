"""The admin/state API: the same GatewayState verbs the TUI's keys call, over HTTP.

    GET    /gateway/state                              the live snapshot
    POST   /gateway/models/{model}/move                {"delta": -1} or {"position": 0}
    POST   /gateway/models/{model}/enabled             {"enabled": false}
    POST   /gateway/models/{model}/ban                 ban everywhere
    DELETE /gateway/models/{model}/ban
    POST   /gateway/providers/{provider}/ban
    DELETE /gateway/providers/{provider}/ban
    POST   /gateway/providers/{provider}/protection    {"protection": "model-skip"}
    DELETE /gateway/sessions/{session}                 forget one sticky session
    DELETE /gateway/sessions                           forget them all
    DELETE /gateway/cooldowns                          end every cooldown now (?model=KEY: its)
    POST   /gateway/requests/{id}/skip                 move a request on from its attempt now
    POST   /gateway/demo                               {"paused": true}
    GET    /gateway/stats?range=24h                    the log's figures (admin_stats.py)
    POST   /gateway/keys/check                         check every API key now (admin_keys.py)

`{model}` is the `provider/id` key from /v1/models (slashes and all).
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from ..config import PROTECTION_LEVELS
from ..domain.state import GatewayState
from .admin_keys import add_key_routes
from .admin_stats import get_stats
from .errors import APIError
from .keys import STATE
from .validation import read_json


async def get_state(request: web.Request) -> web.Response:
    """Everything the screen shows, as JSON: a `Snapshot` encoded as it is."""
    return _json(request.app[STATE].snapshot())


def _json(value: Any) -> web.Response:
    return web.Response(body=msgspec.json.encode(value), content_type="application/json")


def _model(request: web.Request) -> str:
    key = request.match_info["model"]
    if key not in request.app[STATE].catalog.models:
        raise APIError(404, f"no model '{key}'; GET /v1/models lists them", code="model_not_found")
    return key


def _provider(request: web.Request) -> str:
    name = request.match_info["provider"]
    if name not in request.app[STATE].catalog.providers:
        raise APIError(404, f"no provider '{name}'", code="provider_not_found")
    return name


def _field(body: dict[str, Any], name: str, kind: type, expected: str) -> Any:
    value = body.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise APIError(400, f"'{name}' must be {expected}", param=name)
    return value


def _ok(state: GatewayState, **extra: Any) -> web.Response:
    return _json({"ok": True, **extra, "pools": state.pools()})


async def move_model(request: web.Request) -> web.Response:
    state, key = request.app[STATE], _model(request)
    body = await read_json(request)
    if "position" in body:
        target = _field(body, "position", int, "a whole number (0 is the head of the pool)")
        delta = target - state.chain(state.catalog.models[key].pool).index(key)
    else:
        delta = _field(body, "delta", int, "a whole number (negative moves toward the head)")
    return _ok(state, position=state.move_in_pool(key, delta))


async def set_enabled(request: web.Request) -> web.Response:
    state, key = request.app[STATE], _model(request)
    enabled = _field(await read_json(request), "enabled", bool, "true or false")
    state.set_enabled(key, enabled)
    return _ok(state)


async def ban_model(request: web.Request) -> web.Response:
    state, key = request.app[STATE], _model(request)
    (state.ban_model if request.method == "POST" else state.unban_model)(key)
    return _ok(state)


async def ban_provider(request: web.Request) -> web.Response:
    state, name = request.app[STATE], _provider(request)
    (state.ban_provider if request.method == "POST" else state.unban_provider)(name)
    return _ok(state)


async def set_protection(request: web.Request) -> web.Response:
    state, name = request.app[STATE], _provider(request)
    levels = ", ".join(PROTECTION_LEVELS)
    level = _field(await read_json(request), "protection", str, f"one of {levels}")
    if level not in PROTECTION_LEVELS:
        raise APIError(400, f"'protection' must be one of {levels}", param="protection")
    state.set_protection(name, level)
    return web.json_response({"ok": True, "protection": state.controls.protection})


async def clear_session(request: web.Request) -> web.Response:
    state, key = request.app[STATE], request.match_info["session"]
    if not state.clear_sticky(key):
        raise APIError(404, f"no sticky session '{key}'", code="session_not_found")
    return web.json_response({"ok": True})


async def clear_sessions(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "cleared": request.app[STATE].clear_all_sticky()})


async def clear_cooldowns(request: web.Request) -> web.Response:
    """Every cooldown, or with `?model=KEY` that model's only."""
    state, key = request.app[STATE], request.query.get("model")
    if key is not None and key not in state.catalog.models:
        raise APIError(404, f"no model '{key}'; GET /v1/models lists them", code="model_not_found")
    return web.json_response({"ok": True, "cleared": state.clear_cooldowns(key)})


async def skip_request(request: web.Request) -> web.Response:
    """The screen's `x`: cut the request's current attempt short; it goes on from the next."""
    request_id = request.match_info["id"]
    moved = request.app[STATE].skip_request(request_id)
    if moved is None:
        raise APIError(404, f"no request '{request_id}' in flight", code="request_not_found")
    if not moved:
        raise APIError(
            409, f"request '{request_id}' is between attempts; try again", code="nothing_to_skip"
        )
    return web.json_response({"ok": True, "skipped": request_id})


async def set_demo(request: web.Request) -> web.Response:
    """`{"paused": true}` pauses the demo's built-in traffic; false resumes it."""
    paused = _field(await read_json(request), "paused", bool, "true or false")
    state = request.app[STATE]
    state.set_demo_paused(paused)
    return web.json_response({"paused": state.demo_paused})


def add_admin_routes(router: web.UrlDispatcher) -> None:
    model = "/gateway/models/{model:.+}"
    provider = "/gateway/providers/{provider}"
    router.add_get("/gateway/state", get_state)
    router.add_post(model + "/move", move_model)
    router.add_post(model + "/enabled", set_enabled)
    router.add_post(model + "/ban", ban_model)
    router.add_delete(model + "/ban", ban_model)
    router.add_post(provider + "/ban", ban_provider)
    router.add_delete(provider + "/ban", ban_provider)
    router.add_post(provider + "/protection", set_protection)
    router.add_delete("/gateway/sessions/{session}", clear_session)
    router.add_delete("/gateway/sessions", clear_sessions)
    router.add_delete("/gateway/cooldowns", clear_cooldowns)
    router.add_post("/gateway/requests/{id}/skip", skip_request)
    router.add_post("/gateway/demo", set_demo)
    router.add_get("/gateway/stats", get_stats)
    add_key_routes(router)
