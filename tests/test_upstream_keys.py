"""Upstream API keys the provider rejects (401/403): tried once, then left out (issue 8).

A provider with several keys, one of them revoked, used to fail every request that drew the bad
key. Now a rejected key is marked invalid at once, the same request goes on on the provider's next
key, and a provider with no valid key left is skipped by routing with that reason in any error.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from hypothesis import given
from hypothesis import strategies as st
from textual.app import App, ComposeResult

from scripts.mock_upstream import RECEIVED
from scripts.mock_upstream import make_app as make_mock_upstream
from tests.conftest import GatewayFactory, SdkFactory
from tests.factories import API_KEY, FakeClock, make_settings, model, start_gateway
from tui_gateway.config import ProviderSettings
from tui_gateway.domain.attempts import AttemptPlan
from tui_gateway.domain.errors import ErrorKind, UpstreamClientError
from tui_gateway.domain.events import Event, KeyRejected
from tui_gateway.domain.keys import KeyRing, mask_secret
from tui_gateway.domain.protection import decide
from tui_gateway.domain.routing import Candidate
from tui_gateway.domain.state import GatewayState
from tui_gateway.providers.base import error_detail, error_from_status
from tui_gateway.server import Gateway
from tui_gateway.tui.widgets.pools import PoolsPane

GOOD = "sk-good-0123456789abcdefghij"
GOOD2 = "sk-also-good-0123456789abcdef"
REVOKED = "sk-revoked-9876543210zyxwvuts"
REVOKED2 = "sk-revoked-too-5555544444333"
FORBIDDEN = "sk-forbidden-1111122222abcde"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def ring(*secrets: str, name: str = "mock", kind: str = "openai") -> KeyRing:
    return KeyRing([ProviderSettings(name=name, kind=kind, api_keys=secrets)])  # type: ignore[arg-type]


# --- KeyRing (pure) -------------------------------------------------------------------------


def test_keys_take_turns_and_a_rejected_key_is_never_picked_again() -> None:
    keys = ring("a" * 20, "b" * 20, "c" * 20)
    assert [keys.pick("mock")[0] for _ in range(3)] == ["mock#1", "mock#2", "mock#3"]
    assert keys.invalidate("mock#2", reason="revoked", status=401, now=5.0)
    picked = [keys.pick("mock") for _ in range(4)]
    assert {key_id for key_id, _ in picked} == {"mock#1", "mock#3"}
    assert {secret for _, secret in picked} == {"a" * 20, "c" * 20}
    assert keys.valid_ids("mock") == ["mock#1", "mock#3"]
    assert keys.ids("mock") == ["mock#1", "mock#2", "mock#3"]  # names stay stable


def test_a_usable_subset_is_preferred_but_an_invalid_key_is_never_picked_from_it() -> None:
    keys = ring("a" * 20, "b" * 20, "c" * 20)
    assert [keys.pick("mock", ["mock#3"])[0] for _ in range(2)] == ["mock#3", "mock#3"]
    keys.invalidate("mock#3", reason="revoked", status=401, now=5.0)
    # Nothing usable is valid (say, the only key not rate-limited was just revoked): all valid.
    assert {keys.pick("mock", ["mock#3"])[0] for _ in range(4)} == {"mock#1", "mock#2"}


def test_a_provider_is_all_invalid_once_its_last_key_goes() -> None:
    keys = ring(REVOKED, FORBIDDEN)
    assert keys.invalidate("mock#1", reason="Incorrect API key provided", status=401, now=1.0)
    assert not keys.all_invalid("mock") and keys.describe_rejection("mock") is None
    assert not keys.invalidate("mock#1", reason="again", status=401, now=2.0)  # already marked
    assert keys.rejection("mock#1") is not None
    assert keys.rejection("mock#1").since == 1.0  # type: ignore[union-attr]  # the first one
    keys.invalidate("mock#2", reason="forbidden", status=403, now=3.0)
    assert keys.all_invalid("mock")
    assert keys.describe_rejection("mock") == "all 2 API keys were rejected (401, 403)"
    assert keys.pick("mock") == ("mock#1", REVOKED)  # a request planned before still ends


def test_a_single_key_and_a_keyless_provider_say_so_when_rejected() -> None:
    single = ring(REVOKED)
    single.invalidate("mock#1", reason="nope", status=401, now=1.0)
    assert single.describe_rejection("mock") == "its only API key was rejected (401)"
    keyless = ring(name="local", kind="simulated")
    assert keyless.ids("local") == ["local#1"] and keyless.pick("local") == ("local#1", "")
    keyless.invalidate("local#1", reason="nope", status=403, now=1.0)
    assert keyless.describe_rejection("local") == (
        "it has no API key and the upstream refused the request (403)"
    )
    assert keyless.as_json()["local"][0]["masked"] == "(no key)"


def test_as_json_masks_every_secret_and_says_why_a_key_is_invalid() -> None:
    keys = ring(GOOD, REVOKED)
    # An upstream that echoes the key it refused must not put it on the screen either.
    keys.invalidate("mock#2", reason=f"Incorrect API key provided: {REVOKED}", status=401, now=7.5)
    shown = keys.as_json()
    assert shown == {
        "mock": [
            {"id": "mock#1", "masked": "sk-goo…ghij", "status": "ok", "reason": None,
             "status_code": None, "since": None},
            {"id": "mock#2", "masked": "sk-rev…vuts", "status": "invalid",
             "reason": "Incorrect API key provided: sk-rev…vuts", "status_code": 401,
             "since": 7.5},
        ]
    }  # fmt: skip
    text = json.dumps(shown)
    assert GOOD not in text and REVOKED not in text


@given(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1))
def test_a_masked_key_never_shows_the_whole_key(secret: str) -> None:
    masked = mask_secret(secret)
    assert secret not in masked
    assert len(masked.replace("…", "")) <= len(secret) // 2


# --- the state, the plan and the error tree (pure) ------------------------------------------


def keyed_state() -> GatewayState:
    settings = make_settings(
        providers=[
            {"name": "mock", "kind": "openai", "base_url": "http://x", "api_keys": [GOOD, REVOKED]},
            {"name": "other", "kind": "openai", "base_url": "http://x", "api_keys": [GOOD2]},
        ],
        models=[model("mock", "a"), model("mock", "b"), model("other", "c")],
    )
    return GatewayState(settings, clock=FakeClock(), rng=random.Random(1))


def test_rejecting_a_key_tells_the_event_log_and_the_last_one_takes_the_provider_out() -> None:
    state = keyed_state()
    events: list[Event] = []
    state.subscribe(events.append)
    assert state.usable_models() == {"mock/a", "mock/b", "other/c"}
    state.reject_key("mock#2", status=401, reason="Incorrect API key provided")
    state.reject_key("mock#2", status=401, reason="Incorrect API key provided")  # in flight too
    assert [e.text for e in events] == [
        "mock#2 (sk-rev…vuts) rejected by mock (401): not used again until a key check passes"
    ]
    assert state.usable_models() == {"mock/a", "mock/b", "other/c"}
    assert state.pick_key("mock/a") == ("mock#1", GOOD)
    assert not state.other_key_free("mock/a", "mock#1")
    state.reject_key("mock#1", status=403, reason="forbidden")
    assert events[-1] == KeyRejected("mock#1", "sk-goo…ghij", "mock", 403, provider_out=True)
    assert events[-1].text == (
        "mock#1 (sk-goo…ghij) rejected by mock (403): not used again until a key check passes;"
        " mock has no valid key left: its models are out"
    )
    assert state.usable_models() == {"other/c"}  # the cache was dropped
    assert not state.is_usable("mock/a") and not state.is_usable("mock/b")
    assert state.keys_rejected_notes("balanced") == [
        "provider mock skipped: all 2 API keys were rejected (401, 403)"
    ]
    pools = state.snapshot().pools["balanced"]
    assert [m.usable for m in pools] == [False, False, True]


def test_a_rejected_key_teaches_the_posterior_nothing_and_cools_nothing() -> None:
    state = keyed_state()
    request = state.begin_request(session="s1", requested_model="auto", stream=False)
    state.begin_attempt(request, model="mock/a", provider="mock")
    kind = ErrorKind.KEY_REJECTED
    attempt = request.attempt_failed(UpstreamClientError("bad key", status=401))
    state.record_failure(
        request, attempt, key_id="mock#2", kind=kind,
        decision=state.decide("mock/a", kind, after_first_byte=False), reason="401",
    )  # fmt: skip
    assert not state.book.posterior("mock/a").seen
    assert state.cooldowns.entries(state.clock()) == []
    for level in ("provider-ban", "model-skip", "off"):
        decision = decide(level, kind, after_first_byte=False)
        assert not (decision.ban_provider or decision.clear_sticky)


def test_a_rejected_key_retries_the_same_model_and_a_keyless_provider_is_passed_over() -> None:
    dead: set[str] = set()
    a, b, c = (
        Candidate("mock/a", "mock", "named"),
        Candidate("mock/b", "mock", "pool"),
        Candidate("other/c", "other", "pool"),
    )
    plan = AttemptPlan([a, b, c], max_attempts=5, keys_rejected=dead.__contains__)
    nothing = decide("model-skip", ErrorKind.KEY_REJECTED, after_first_byte=False)
    assert plan.next() == (a, 0.0)
    retry = plan.failed(a, ErrorKind.KEY_REJECTED, nothing, other_key_free=True)
    assert retry is not None and retry.why == "another key"
    assert plan.next() == (a, 0.0)
    dead.add("mock")  # its last key went: mock/b is not tried
    assert plan.failed(a, ErrorKind.KEY_REJECTED, nothing, other_key_free=False) is None
    assert plan.next() == (c, 0.0)
    assert plan.tries == 3


@pytest.mark.parametrize("status", [401, 403])
def test_a_401_or_403_is_the_keys_fault_and_another_upstream_may_serve(status: int) -> None:
    body = b'{"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}}'
    error = error_from_status(status, error_detail(body))
    assert error.kind == ErrorKind.KEY_REJECTED and error.retryable
    assert isinstance(error, UpstreamClientError)  # still a 4xx in the tree
    # Adapters that raise the class themselves (cloudflare's malformed key) get the same kind.
    assert UpstreamClientError("bad key", status=status).kind == ErrorKind.KEY_REJECTED


def test_googles_400_for_a_bad_key_is_a_rejected_key_and_other_400s_are_not() -> None:
    gemini = json.dumps({"error": {
        "code": 400, "message": "API key not valid. Please pass a valid API key.",
        "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                     "reason": "API_KEY_INVALID", "domain": "googleapis.com"}],
    }}).encode()  # fmt: skip
    assert error_from_status(400, error_detail(gemini)).kind == ErrorKind.KEY_REJECTED
    other = b'{"error": {"message": "Invalid JSON payload received."}}'
    assert error_from_status(400, error_detail(other)).kind == ErrorKind.REJECTED


class PoolsApp(App[None]):
    """The pools pane alone, painted once from the state's snapshot."""

    def __init__(self, state: GatewayState) -> None:
        super().__init__()
        self.state = state

    def compose(self) -> ComposeResult:
        yield PoolsPane()

    def on_mount(self) -> None:
        self.query_one(PoolsPane).show(self.state.snapshot())


async def test_the_pools_pane_marks_and_dims_models_whose_provider_has_no_valid_key() -> None:
    state = keyed_state()
    state.reject_key("mock#1", status=401, reason="no")
    state.reject_key("mock#2", status=401, reason="no")
    state.ban_model("mock/b")  # the user's ban shows before the upstream's verdict
    async with PoolsApp(state).run_test() as pilot:
        await pilot.pause()
        pane = pilot.app.query_one(PoolsPane)
        flags = pane.get_column_index("flags")
        shown = {key: pane.get_row(key) for key in ("mock/a", "mock/b", "other/c")}
        assert {k: str(row[flags]) for k, row in shown.items()} == {
            "mock/a": "●k ", "mock/b": "●b ", "other/c": "●  ",
        }  # fmt: skip
        assert shown["mock/a"][-1].style == "dim" and shown["other/c"][-1].style == ""


# --- end to end: the mock upstream refuses some keys ----------------------------------------


@pytest.fixture
async def keyed_upstream() -> AsyncIterator[TestServer]:
    """The mock upstream, refusing REVOKED and REVOKED2 with 401 and FORBIDDEN with 403."""
    app = make_mock_upstream(
        rejected_keys=frozenset({REVOKED, REVOKED2}), forbidden_keys=frozenset({FORBIDDEN})
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


def keys_sent(upstream: TestServer) -> Counter[str]:
    """How many requests the upstream got with each bearer key."""
    return Counter(
        r.headers["Authorization"].removeprefix("Bearer ") for r in upstream.app[RECEIVED]
    )


def provider(name: str, upstream: TestServer, *keys: str) -> dict[str, Any]:
    url = str(upstream.make_url("/v1"))
    return {"name": name, "kind": "openai", "base_url": url, "api_keys": list(keys)}


async def state_of(gateway: Gateway) -> tuple[dict[str, Any], str]:
    """`GET /gateway/state`, parsed and as the raw text the client received."""
    url = gateway.base_url.removesuffix("/v1") + "/gateway/state"
    async with aiohttp.ClientSession(headers=AUTH) as session, session.get(url) as resp:
        assert resp.status == 200
        text = await resp.text()
    return json.loads(text), text


async def post(gateway: Gateway, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession(headers=AUTH) as session:
        async with session.post(gateway.base_url + "/chat/completions", json=body) as resp:
            return resp.status, await resp.json()


async def ask(sdk: SdkFactory, gateway: Gateway, n: int, model_name: str = "auto") -> str:
    """One request through the official SDK, streaming every other time; returns the text."""
    client = sdk(gateway)
    messages: Any = [{"role": "user", "content": f"question {n}"}]
    if n % 2:
        stream = await client.chat.completions.create(
            model=model_name, messages=messages, stream=True
        )
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    reply = await client.chat.completions.create(model=model_name, messages=messages)
    return reply.choices[0].message.content or ""


@pytest.mark.parametrize(
    "keys", [(GOOD, REVOKED), (REVOKED, GOOD)], ids=["bad-second", "bad-first"]
)
async def test_one_revoked_key_of_two_is_sent_once_and_every_request_succeeds(
    gateway_factory: GatewayFactory,
    keyed_upstream: TestServer,
    sdk: SdkFactory,
    keys: tuple[str, str],
) -> None:
    """Issue 8: of 6 requests, 3 failed with the upstream's 401 and the good key was never tried."""
    settings = make_settings(
        providers=[provider("mock", keyed_upstream, *keys)], models=[model("mock", "ok:text=hi")]
    )
    gateway = await gateway_factory(settings)
    answers = [await ask(sdk, gateway, n) for n in range(6)]
    assert answers == [" ".join(["hi"] * 8)] * 6
    assert keys_sent(keyed_upstream) == {GOOD: 6, REVOKED: 1}
    state, raw = await state_of(gateway)
    bad = keys.index(REVOKED)
    [shown] = [k for k in state["keys"]["mock"] if k["status"] == "invalid"]
    assert shown["id"] == f"mock#{bad + 1}" and shown["masked"] == "sk-rev…vuts"
    assert shown["reason"] == "Incorrect API key provided" and shown["status_code"] == 401
    assert isinstance(shown["since"], float)
    assert REVOKED not in raw and GOOD not in raw  # no secret anywhere in the state
    posterior = state["posteriors"]["mock/ok:text=hi"]
    assert posterior["failures"] == 0 and posterior["successes"] == 6
    assert state["cooldowns"] == []


async def test_a_403_key_is_treated_like_a_401(
    gateway_factory: GatewayFactory, keyed_upstream: TestServer, sdk: SdkFactory
) -> None:
    settings = make_settings(
        providers=[provider("mock", keyed_upstream, FORBIDDEN, GOOD)], models=[model("mock", "ok")]
    )
    gateway = await gateway_factory(settings)
    for n in range(4):
        await ask(sdk, gateway, n)
    assert keys_sent(keyed_upstream) == {GOOD: 4, FORBIDDEN: 1}
    state, _ = await state_of(gateway)
    assert [(k["status"], k["status_code"]) for k in state["keys"]["mock"]] == [
        ("invalid", 403),
        ("ok", None),
    ]
    assert state["posteriors"]["mock/ok"]["failures"] == 0


@pytest.mark.parametrize("dead_keys", [(REVOKED,), (REVOKED, REVOKED2)], ids=["one", "two"])
async def test_a_provider_whose_keys_are_all_rejected_is_skipped_for_a_healthy_one(
    gateway_factory: GatewayFactory,
    keyed_upstream: TestServer,
    sdk: SdkFactory,
    dead_keys: tuple[str, ...],
) -> None:
    settings = make_settings(
        providers=[
            provider("dead", keyed_upstream, *dead_keys),
            provider("live", keyed_upstream, GOOD),
        ],
        models=[model("dead", "ok:text=dead"), model("live", "ok:text=live")],
    )
    gateway = await gateway_factory(settings)
    answers = [await ask(sdk, gateway, n) for n in range(4)]
    assert all(a.startswith("live") for a in answers)  # the client never saw the 401
    assert keys_sent(keyed_upstream) == {GOOD: 4} | {key: 1 for key in dead_keys}
    state, _ = await state_of(gateway)
    assert {k["status"] for k in state["keys"]["dead"]} == {"invalid"}
    assert [(m["model"], m["usable"]) for m in state["pools"]["balanced"]] == [
        ("dead/ok:text=dead", False),
        ("live/ok:text=live", True),
    ]
    assert state["posteriors"]["dead/ok:text=dead"]["failures"] == 0


async def test_with_only_rejected_keys_left_the_client_is_told_why_and_never_gets_a_401(
    gateway_factory: GatewayFactory, keyed_upstream: TestServer
) -> None:
    settings = make_settings(
        providers=[provider("mock", keyed_upstream, REVOKED, REVOKED2)],
        models=[model("mock", "ok")],
    )
    gateway = await gateway_factory(settings)
    why = "provider mock skipped: all 2 API keys were rejected (401)"
    messages = [{"role": "user", "content": "hi"}]
    status, body = await post(gateway, {"model": "auto", "messages": messages})
    assert status == 502 and body["error"]["code"] == "upstream_keys_rejected"
    assert why in body["error"]["message"]
    assert keys_sent(keyed_upstream) == {REVOKED: 1, REVOKED2: 1}
    for stream in (False, True):
        status, body = await post(
            gateway, {"model": "auto", "messages": messages, "stream": stream}
        )
        assert status == 503 and body["error"]["code"] == "no_candidate"
        assert body["error"]["message"] == f"no enabled model can serve 'auto' ({why})"
    assert keys_sent(keyed_upstream) == {REVOKED: 1, REVOKED2: 1}  # nothing sent again


async def test_after_a_restart_a_rejected_key_stays_out_and_the_log_taught_no_failure(
    tmp_path: Path, keyed_upstream: TestServer, sdk: SdkFactory
) -> None:
    settings = make_settings(
        providers=[provider("mock", keyed_upstream, REVOKED, GOOD)], models=[model("mock", "ok")]
    )
    db = tmp_path / "keys.db"
    first = await start_gateway(settings, db)
    try:
        await ask(sdk, first, 0)
    finally:
        await first.stop()
    second = await start_gateway(settings, db)
    try:
        state, _ = await state_of(second)
        # Saved (issue 14): out until a key check passes, not tried again by the restart.
        assert [k["status"] for k in state["keys"]["mock"]] == ["invalid", "ok"]
        assert state["posteriors"]["mock/ok"]["failures"] == 0  # the log's 401 is neutral
        await ask(sdk, second, 0)
    finally:
        await second.stop()
    assert keys_sent(keyed_upstream) == {REVOKED: 1, GOOD: 2}


@pytest.mark.parametrize(
    ("key", "status", "code"),
    [(REVOKED, 401, "invalid_api_key"), (FORBIDDEN, 403, "permission_denied")],
)
async def test_the_mock_refuses_keys_in_openai_shape_and_still_records_the_request(
    keyed_upstream: TestServer, key: str, status: int, code: str
) -> None:
    url = str(keyed_upstream.make_url("/v1/chat/completions"))
    body = {"model": "ok", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(url, json=body) as resp:
            assert resp.status == status
            error = (await resp.json())["error"]
    assert error["code"] == code and error["type"] == "invalid_request_error"
    assert keys_sent(keyed_upstream) == {key: 1}
