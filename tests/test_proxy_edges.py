"""Auth, bad input, the state API, stalls, cut streams and vanished clients, over real sockets."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import openai
import pytest

from tests.conftest import GatewayFactory, SdkFactory
from tests.factories import API_KEY, make_settings, model
from tests.logged import logged
from tui_gateway.server import Gateway

HELLO = [{"role": "user", "content": "hello"}]
AUTH = {"Authorization": f"Bearer {API_KEY}"}
FAST_TIMERS = {"first_byte_timeout_s": 0.3, "stall_timeout_s": 0.3}


async def post(
    gateway: Gateway, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        async with session.post(
            gateway.base_url + "/chat/completions",
            data=data,
            headers=AUTH if headers is None else headers,
        ) as resp:
            return resp.status, await resp.json()


async def read_sse(resp: aiohttp.ClientResponse) -> list[Any]:
    events: list[Any] = []
    async for line in resp.content:
        if line.startswith(b"data: "):
            payload = line[6:].strip()
            events.append("[DONE]" if payload == b"[DONE]" else json.loads(payload))
    return events


async def test_wrong_or_missing_key_is_401_in_openai_shape(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok")]))
    status, body = await post(gateway, {"model": "auto", "messages": HELLO}, headers={})
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    wrong = openai.AsyncOpenAI(base_url=gateway.base_url, api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        await wrong.models.list()
    await wrong.close()


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": HELLO}, "model"),
        ({"model": "auto"}, "messages"),
        ({"model": "auto", "messages": []}, "messages"),
        ({"model": "auto", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": "auto", "messages": HELLO, "stream": "yes"}, "stream"),
        ({"model": "auto", "messages": HELLO, "temperature": 9}, "temperature"),
        ({"model": "auto", "messages": HELLO, "max_tokens": 0}, "max_tokens"),
    ],
)
async def test_bad_body_is_400_naming_the_field(
    gateway_factory: GatewayFactory, mock_url: str, body: dict[str, Any], param: str
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok")]))
    status, reply = await post(gateway, body)
    assert status == 400
    assert reply["error"]["param"] == param
    assert set(reply["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"", b"\xff\xfe"])
async def test_malformed_json_is_400_never_500(
    gateway_factory: GatewayFactory, mock_url: str, raw: bytes
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok")]))
    status, reply = await post(gateway, raw)
    assert status == 400 and reply["error"]["code"] == "invalid_json"


async def test_unknown_model_and_unknown_route_are_404_json(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok")]))
    status, reply = await post(gateway, {"model": "gpt-9", "messages": HELLO})
    assert status == 404 and reply["error"]["code"] == "model_not_found"
    async with aiohttp.ClientSession(headers=AUTH) as session:
        async with session.get(gateway.base_url + "/nothing-here") as resp:
            assert resp.status == 404
            assert "error" in await resp.json()


async def test_models_lists_virtual_and_enabled_models(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str
) -> None:
    models = [
        model("mock", "ok"),
        model("mock", "off", enabled=False),
        model("mock", "quick", pool="fast"),
    ]
    gateway = await gateway_factory(make_settings(mock_url, models))
    listed = [m.id async for m in sdk(gateway).models.list()]
    assert listed == ["auto", "auto-fast", "auto-smart", "mock/ok", "mock/quick"]


async def test_disabled_pool_gives_503_no_candidate(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok", enabled=False)]))
    status, reply = await post(gateway, {"model": "auto", "messages": HELLO})
    assert status == 503 and reply["error"]["code"] == "no_candidate"
    assert gateway.state.active == {}


async def test_every_request_writes_exactly_one_row_with_its_attempts(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str
) -> None:
    settings = make_settings(mock_url, [model("mock", "error-500"), model("mock", "ok")])
    gateway = await gateway_factory(settings)
    client = sdk(gateway)
    await client.chat.completions.create(model="auto", messages=HELLO)
    stream = await client.chat.completions.create(
        model="auto", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    [_ async for _ in stream]
    await post(gateway, {"model": "auto"})  # rejected: still one row
    rows = await logged(gateway.request_log)
    assert len(rows) == 3
    rejected, streamed, plain = rows  # newest first
    assert rejected.status == 400 and rejected.error_kind == "invalid_request"
    for row, is_stream in ((plain, False), (streamed, True)):
        assert row.status == 200 and row.streamed is is_stream
        assert row.model == "mock/ok" and row.provider == "mock"
        assert row.tokens_out and row.tokens_in and row.ttfb_ms is not None
        assert row.session == plain.session  # same first user message, same mode
    assert [a.status for a in plain.attempts] == [500, 200]
    # The second turn goes straight to the conversation's sticky model (the 500 one cools too).
    assert [a.status for a in streamed.attempts] == [200]
    assert gateway.state.active == {}


async def test_state_api_shows_a_request_in_flight_then_forgets_it(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(
        make_settings(mock_url, [model("mock", "ok:chunks=3,delay_ms=150")])
    )
    async with aiohttp.ClientSession(headers=AUTH) as session:
        async with session.post(
            gateway.base_url + "/chat/completions",
            json={"model": "auto", "messages": HELLO, "stream": True},
        ) as resp:
            await resp.content.readline()  # the first chunk is here; the rest is still coming
            async with session.get(
                gateway.base_url.removesuffix("/v1") + "/gateway/state"
            ) as state:
                snapshot = await state.json()
            await resp.read()
        async with session.get(gateway.base_url.removesuffix("/v1") + "/gateway/state") as state:
            after = await state.json()
    [active] = snapshot["active"]
    assert active["model"] == "mock/ok:chunks=3,delay_ms=150" and active["provider"] == "mock"
    assert active["chunks"] >= 1 and active["ttfb_ms"] is not None
    assert [m["model"] for m in snapshot["pools"]["balanced"]] == ["mock/ok:chunks=3,delay_ms=150"]
    assert after["active"] == []


async def test_stall_before_first_chunk_falls_back_silently(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str
) -> None:
    settings = make_settings(
        mock_url,
        [model("mock", "stall-before-first"), model("mock", "ok:text=rescued")],
        streaming=FAST_TIMERS,
    )
    gateway = await gateway_factory(settings)
    stream = await sdk(gateway).chat.completions.create(model="auto", messages=HELLO, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text.startswith("rescued")
    [row] = await logged(gateway.request_log)
    assert [a.error_kind for a in row.attempts] == ["timeout", None]


async def test_non_streaming_timeout_falls_back(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str
) -> None:
    settings = make_settings(
        mock_url,
        [model("mock", "stall-before-first"), model("mock", "ok:text=rescued")],
        routing={"request_timeout_s": 0.3},
    )
    gateway = await gateway_factory(settings)
    reply = await sdk(gateway).chat.completions.create(model="auto", messages=HELLO)
    assert reply.choices[0].message.content.startswith("rescued")


BREAKS = [
    ("stall-after-first:after=2", "stall", "stream_timeout"),
    ("drop-mid-stream:after=2", "truncated", "upstream_error"),
    ("cut:after=2", "truncated", "upstream_error"),
    ("wrapped-error:after=2,delay_ms=30", "wrapped", "upstream_error"),
]


@pytest.mark.parametrize(("scenario", "kind", "error_type"), BREAKS)
async def test_without_continuation_a_failure_after_the_first_chunk_ends_with_an_error_event(
    gateway_factory: GatewayFactory, mock_url: str, scenario: str, kind: str, error_type: str
) -> None:
    provider = {"name": "mock", "kind": "openai", "base_url": mock_url, "api_keys": ["sk-mock"]}
    settings = make_settings(
        providers=[provider | {"continuation": "none"}],
        models=[model("mock", scenario), model("mock", "ok")],
        streaming=FAST_TIMERS,
    )
    gateway = await gateway_factory(settings)
    events = await _stream_events(gateway)
    assert events[-1] == "[DONE]"
    error = events[-2]["error"]
    assert error["type"] == error_type and error["code"] == kind
    assert not any(
        c.get("choices") and c["choices"][0].get("finish_reason") == "stop" for c in events[:-2]
    ), "a cut answer must never look complete"
    [row] = await logged(gateway.request_log)
    assert row.error_kind == kind and row.model == f"mock/{scenario}"
    assert gateway.state.active == {}


@pytest.mark.parametrize(("scenario", "kind", "error_type"), BREAKS)
async def test_by_default_a_failure_after_the_first_chunk_is_continued_on_the_next_model(
    gateway_factory: GatewayFactory, mock_url: str, scenario: str, kind: str, error_type: str
) -> None:
    settings = make_settings(
        mock_url, [model("mock", scenario), model("mock", "ok")], streaming=FAST_TIMERS
    )
    gateway = await gateway_factory(settings)
    events = await _stream_events(gateway)
    assert events[-1] == "[DONE]"
    assert not any("error" in e for e in events[:-1])
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    assert len({e["id"] for e in events[:-1]}) == 1, "one completion id throughout"
    roles = [e for e in events[:-1] if e["choices"] and "role" in e["choices"][0]["delta"]]
    assert len(roles) == 1
    [row] = await logged(gateway.request_log)
    assert row.status == 200 and row.error_kind is None and row.model == "mock/ok"
    assert [a.error_kind for a in row.attempts] == [kind, None]


async def _stream_events(gateway: Gateway) -> list[Any]:
    async with aiohttp.ClientSession(headers=AUTH) as session:
        async with session.post(
            gateway.base_url + "/chat/completions",
            json={"model": "auto", "messages": HELLO, "stream": True},
        ) as resp:
            assert resp.status == 200
            return await read_sse(resp)


async def test_stream_without_done_but_with_final_chunk_is_complete(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "no-done:text=ok")]))
    stream = await sdk(gateway).chat.completions.create(model="auto", messages=HELLO, stream=True)
    chunks = [c async for c in stream]
    assert chunks[-1].choices[0].finish_reason == "stop"
    [row] = await logged(gateway.request_log)
    assert row.error_kind is None


async def test_client_disconnect_mid_stream_leaves_one_row_and_no_active_entry(
    gateway_factory: GatewayFactory, mock_url: str, mock_upstream: Any
) -> None:
    from scripts.mock_upstream import RECEIVED

    gateway = await gateway_factory(
        make_settings(mock_url, [model("mock", "ok:chunks=200,delay_ms=20")])
    )
    async with aiohttp.ClientSession(headers=AUTH) as session:
        resp = await session.post(
            gateway.base_url + "/chat/completions",
            json={"model": "auto", "messages": HELLO, "stream": True},
        )
        await resp.content.readline()
        resp.close()  # the client walks away mid-answer
    for _ in range(100):
        if not gateway.state.active:
            break
        await asyncio.sleep(0.02)
    assert gateway.state.active == {}
    [row] = await logged(gateway.request_log)
    assert row.error_kind == "client_closed"
    [received] = mock_upstream.app[RECEIVED]
    for _ in range(100):  # the upstream request was aborted too, not left streaming
        if received.disconnected:
            break
        await asyncio.sleep(0.02)
    assert received.disconnected


async def test_a_client_that_leaves_a_whole_reply_ends_the_attempt_and_nothing_else_is_tried(
    gateway_factory: GatewayFactory, sdk: SdkFactory, mock_url: str, mock_upstream: Any
) -> None:
    """A whole reply sends nothing until it ends: the gateway must still notice the client go,
    drop the upstream call, and not spend the next candidate on nobody."""
    from scripts.mock_upstream import RECEIVED

    stalled = "stall-before-first"
    settings = make_settings(
        mock_url, [model("mock", stalled), model("mock", "ok")], routing={"request_timeout_s": 60}
    )
    gateway = await gateway_factory(settings)
    client = sdk(gateway).with_options(timeout=0.5, max_retries=0)
    with pytest.raises(openai.APITimeoutError):
        await client.chat.completions.create(model="auto", messages=HELLO)
    async with asyncio.timeout(3):  # not the 60 s the attempt was allowed
        while gateway.state.active:
            await asyncio.sleep(0.02)
    [received] = mock_upstream.app[RECEIVED]  # the second model was never called
    assert received.model == stalled
    for _ in range(100):
        if received.disconnected:
            break
        await asyncio.sleep(0.02)
    assert received.disconnected, "the upstream call was left open"
    [row] = await logged(gateway.request_log)
    assert (row.status, row.error_kind) == (499, "client_closed")
    assert [a.error_kind for a in row.attempts] == ["client_closed"]


async def test_shutdown_cuts_an_open_stream_with_an_error_event_and_flushes_the_log(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    settings = make_settings(
        mock_url, [model("mock", "ok:chunks=500,delay_ms=20")], server={"shutdown_grace_s": 0.2}
    )
    gateway = await gateway_factory(settings)
    async with aiohttp.ClientSession(headers=AUTH) as session:
        async with session.post(
            gateway.base_url + "/chat/completions",
            json={"model": "auto", "messages": HELLO, "stream": True},
        ) as resp:
            await resp.content.readline()
            stopping = asyncio.create_task(gateway.stop())
            events = await read_sse(resp)
            await stopping
    assert events[-1] == "[DONE]" and events[-2]["error"]["code"] == "shutdown"
    import sqlite3

    with sqlite3.connect(gateway.request_log.path) as db:
        rows = db.execute("SELECT error_kind FROM requests").fetchall()
    assert rows == [("shutdown",)]


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize(
    "scenario",
    ["ok", "error-500", "error-429", "error-400", "wrapped-error", "stall-before-first",
     "stall-after-first", "drop-mid-stream", "cut", "html-200"],
)  # fmt: skip
async def test_every_exit_path_leaves_one_row_and_nothing_in_flight(
    gateway_factory: GatewayFactory, mock_url: str, scenario: str, stream: bool
) -> None:
    """Issue 3: each request removes exactly its own active entry on every exit path."""
    settings = make_settings(
        mock_url, [model("mock", scenario)], streaming=FAST_TIMERS,
        routing={"request_timeout_s": 0.3},
    )  # fmt: skip
    gateway = await gateway_factory(settings)
    async with aiohttp.ClientSession(headers=AUTH) as session:
        async with session.post(
            gateway.base_url + "/chat/completions",
            json={"model": "auto", "messages": HELLO, "stream": stream},
        ) as resp:
            await resp.read()
    assert gateway.state.active == {}
    assert gateway.state.flows.busy_providers() == []
    assert len(await logged(gateway.request_log)) == 1
