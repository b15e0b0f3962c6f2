"""Serving one client request through whichever front door it came in by, and `GET /v1/models`.

`door(dialect)` is the handler of a dialect's endpoint: the dialect parses the body into a chat
call, and from there every door shares the routing, the relay, the log and the screen.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from ..domain.catalog import VIRTUAL_MODELS, UnknownModel
from ..domain.errors import ErrorKind
from ..domain.state import GatewayState
from ..providers.base import prompt_estimate
from .dialects import Dialect
from .errors import APIError
from .headers import session_header
from .keys import CLIENT, IN_FLIGHT, REQUEST_LOG, SETTINGS, STATE, UPSTREAMS
from .rejected import REQUEST_ID
from .relay import Relay
from .stream_relay import StreamRelay
from .validation import read_json


def door(dialect: Dialect) -> Handler:
    """The aiohttp handler for `dialect`'s endpoint."""

    async def handle(request: web.Request) -> web.StreamResponse:
        return await serve(request, dialect)

    return handle


async def serve(request: web.Request, dialect: Dialect) -> web.StreamResponse:
    app = request.app
    state, settings, log = app[STATE], app[SETTINGS], app[REQUEST_LOG]
    try:
        call = dialect.parse(await read_json(request))
        target = state.catalog.resolve(call.model)
    except UnknownModel as exc:
        raise APIError(
            404,
            f"model '{exc}' is not configured; GET /v1/models lists the models you can use",
            param="model",
            code="model_not_found",
        ) from None

    session = state.open_session(session_header(request), target, call.messages)
    flow = state.begin_request(
        session=session.key,
        requested_model=call.model,
        stream=call.stream,
        body=call.body,
        dialect=dialect.name,
        client=request.get(CLIENT),
    )
    if state.quotas:  # what token limits must take; only a config with limits pays for it
        flow.quota_tokens = prompt_estimate(call.messages)
    plan = state.plan(target, session, flow)
    request[REQUEST_ID] = flow.id  # from here on, this request's own record is its log row
    kind = StreamRelay if call.stream else Relay
    relay = kind(request, call, state, app[UPSTREAMS], settings, flow, target.pool, dialect)
    in_flight = app[IN_FLIGHT]
    in_flight.add(relay)
    try:
        head, rest = plan
        if not head and not rest():  # with no head the rest is already ranked: this is cheap
            skipped = state.keys_rejected_notes(target.pool)  # say why, when keys are the reason
            why = "; ".join(skipped) or f"pool '{target.pool}' is empty"
            message = f"no enabled model can serve '{call.model}' ({why})"
            flow.fail(503, ErrorKind.NO_CANDIDATE, message)
            raise APIError(503, message, type="upstream_error", code="no_candidate")
        if isinstance(relay, StreamRelay):
            return await relay.stream(plan)
        return await relay.once(plan)
    except asyncio.CancelledError:
        if flow.error_kind is None:
            flow.fail(503, ErrorKind.SHUTDOWN, "gateway shut down during the request")
        raise
    finally:
        # Exactly one log row and no active entry left behind, whatever happened above.
        in_flight.discard(relay)
        if state.finish_request(flow):
            log.append(flow)


def _models(state: GatewayState) -> dict[str, dict[str, Any]]:
    """What `GET /v1/models` lists, by id: the virtual models, then every usable model."""
    models = {
        name: {"id": name, "object": "model", "created": 0, "owned_by": "tui-gateway"}
        for name in VIRTUAL_MODELS
    }
    for key, model in state.catalog.models.items():
        if state.is_usable(key):
            models[key] = {"id": key, "object": "model", "created": 0, "owned_by": model.provider}
    return models


async def list_models(request: web.Request) -> web.Response:
    data = list(_models(request.app[STATE]).values())
    return web.json_response({"object": "list", "data": data})


async def get_model(request: web.Request) -> web.Response:
    """`GET /v1/models/{id}`, the id slashes and all: one model as the list has it, or a 404
    in the OpenAI shape (a model banned or switched off is not listed, so not found)."""
    model_id = request.match_info["id"]
    found = _models(request.app[STATE]).get(model_id)
    if found is None:
        message = f"The model '{model_id}' does not exist; GET /v1/models lists those you can use"
        raise APIError(404, message, code="model_not_found", param="model")
    return web.json_response(found)


async def hello(request: web.Request) -> web.Response:
    """`GET /` (and HEAD), without a key: the gateway is up, and where its doors are."""
    return web.json_response(
        {
            "name": "tui-gateway",
            "status": "ok",
            "endpoints": ["/v1/chat/completions", "/v1/messages", "/v1/responses", "/v1/models"],
        }
    )
