"""Key health (issue 14, part 2): a key the upstream refused can come back, and stays out across
a restart until it does.

`tui-gateway keys check` checks every key from the shell; `POST /gateway/keys/check` checks a
running gateway's keys and applies the results; `[health] interval_s` does it in the background.
Everything runs against the mock upstream (and small recording servers) on loopback.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import aiosqlite
import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from typer.testing import CliRunner

from scripts.mock_upstream import LISTED, RECEIVED, REFUSED_KEYS, SLOW_KEYS
from scripts.mock_upstream import make_app as make_mock_upstream
from tests.factories import API_KEY, FakeClock, make_settings, model, start_gateway
from tui_gateway.cli import app as cli_app
from tui_gateway.config import ConfigError, ProviderSettings, Settings, parse_settings
from tui_gateway.domain.events import Event, KeyRejected, KeyRestored, Note
from tui_gateway.domain.keys import KeyCheck, KeyRing, KeyStatus, secret_hash
from tui_gateway.domain.state import GatewayState
from tui_gateway.providers.key_check import check_key, check_keys
from tui_gateway.proxy.admin_keys import KEY_CHECKS
from tui_gateway.server import Gateway
from tui_gateway.store.saved import INVALID_KEYS

GOOD = "sk-good-0123456789abcdefghij"
BAD = "sk-revoked-9876543210zyxwvuts"
SLOW = "sk-slow-5555544444333332222"
NEW = "sk-fresh-1111122222333334444"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


# --- the domain: reinstating, saving and restoring ----------------------------------------


def ring(*secrets: str, name: str = "mock") -> KeyRing:
    return KeyRing([ProviderSettings(name=name, kind="openai", api_keys=secrets)])


def test_a_reinstated_key_takes_its_turn_again_in_config_order() -> None:
    keys = ring("a" * 20, "b" * 20, "c" * 20)
    keys.invalidate("mock#1", reason="revoked", status=401, now=1.0)
    keys.invalidate("mock#3", reason="revoked", status=401, now=2.0)
    assert keys.invalid_ids() == ["mock#1", "mock#3"]
    assert keys.reinstate("mock#1") and not keys.reinstate("mock#1")  # valid already
    assert keys.valid_ids("mock") == ["mock#1", "mock#2"]
    assert keys.rejection("mock#1") is None and keys.as_json()["mock"][0]["status"] == "ok"


def test_the_saved_picture_holds_a_hash_of_each_invalid_secret_never_the_secret() -> None:
    keys = ring(GOOD, BAD)
    keys.invalidate("mock#2", reason=f"Incorrect API key provided: {BAD}", status=401, now=7.5)
    saved = keys.saved_invalid()
    assert saved == {
        "mock#2": {
            "provider": "mock", "hash": secret_hash(BAD),
            "reason": "Incorrect API key provided: sk-rev…vuts", "status": 401, "since": 7.5,
        }
    }  # fmt: skip
    assert re.fullmatch(r"sha256:[0-9a-f]{16}", secret_hash(BAD))
    text = json.dumps(saved)
    assert BAD not in text and GOOD not in text


def test_a_saved_invalid_key_comes_back_invalid_only_while_its_secret_is_configured() -> None:
    before = ring(GOOD, BAD)
    before.invalidate("mock#2", reason="revoked", status=401, now=7.5)
    saved = json.loads(json.dumps(before.saved_invalid()))  # as the database gives it back

    same = ring(GOOD, BAD)
    restored = same.restore_invalid(saved)
    assert restored.invalid == ("mock#2",) and restored.changed == () and restored.dropped == 0
    assert same.rejection("mock#2") == before.rejection("mock#2")  # reason, status and since
    assert same.valid_ids("mock") == ["mock#1"]

    moved = ring(BAD, GOOD)  # the same secret under another name is the same key
    assert moved.restore_invalid(saved).invalid == ("mock#1",)
    assert moved.valid_ids("mock") == ["mock#2"]

    changed = ring(GOOD, NEW)  # the secret changed: valid again, and due a check
    restored = changed.restore_invalid(saved)
    assert restored.invalid == () and restored.changed == ("mock#2",) and restored.dropped == 1
    assert changed.valid_ids("mock") == ["mock#1", "mock#2"]

    gone = ring(GOOD, name="other")  # no longer configured
    assert gone.restore_invalid(saved).dropped == 1 and gone.invalid_ids() == []


@pytest.mark.parametrize(
    "entry",
    [3, {"provider": "mock"}, {"provider": "mock", "hash": "x", "since": "yesterday"},
     {"provider": "mock", "hash": "x", "since": 1.0, "status": "401"}],
)  # fmt: skip
def test_a_saved_entry_that_is_not_one_is_skipped(entry: Any) -> None:
    keys = ring(GOOD)
    assert keys.restore_invalid({"mock#1": entry}).dropped == 1
    assert keys.valid_ids("mock") == ["mock#1"]


def keyed_state() -> GatewayState:
    settings = make_settings(
        providers=[
            {"name": "mock", "kind": "openai", "base_url": "http://x/v1", "api_keys": [BAD]},
            {"name": "other", "kind": "openai", "base_url": "http://y/v1", "api_keys": [GOOD]},
        ],
        models=[model("mock", "a"), model("other", "b")],
    )
    return GatewayState(settings, clock=FakeClock(), rng=random.Random(1))


def result(status: KeyStatus, http: int | None = None, key_id: str = "mock#1") -> KeyCheck:
    return KeyCheck("mock", key_id, "sk-rev…vuts", status, http, 3, "said so")


def test_a_passing_check_brings_a_key_back_and_its_provider_into_routing() -> None:
    state = keyed_state()
    events: list[Event] = []
    state.subscribe(events.append)
    state.reject_key("mock#1", status=401, reason="Incorrect API key provided")
    assert state.usable_models() == {"other/b"}
    state.key_checked(result("error", 500))  # says nothing about the key
    state.key_checked(result("timeout"))  # nor does this
    assert state.keys.rejection("mock#1") is not None and len(events) == 1
    state.key_checked(result("ok", 200))
    assert state.keys.rejection("mock#1") is None
    assert state.usable_models() == {"mock/a", "other/b"}  # the cache was dropped
    assert events[-1] == KeyRestored("mock#1", "sk-rev…vuts", "mock", provider_back=True)
    assert events[-1].text == (
        "mock#1 (sk-rev…vuts) passed a key check: mock uses it again; mock's models are back"
    )
    state.key_checked(result("ok", 200))  # valid already: nothing to say
    assert len(events) == 2


def test_a_check_the_upstream_refuses_takes_the_key_out_as_traffic_does() -> None:
    state = keyed_state()
    events: list[Event] = []
    state.subscribe(events.append)
    state.key_checked(result("invalid", 403))
    assert events == [KeyRejected("mock#1", "sk-rev…vuts", "mock", 403, provider_out=True)]
    assert state.keys.rejection("mock#1").reason == "said so"  # type: ignore[union-attr]
    assert state.usable_models() == {"other/b"}


def test_periodic_checks_are_due_for_invalid_and_changed_keys_or_every_key() -> None:
    state = keyed_state()
    health = state.key_health
    assert health.due("invalid") == [] and health.due("all") is None
    state.reject_key("mock#1", status=401, reason="no")
    health.recheck.add("other#1")  # its secret changed since a previous run found it invalid
    assert health.due("invalid") == ["mock#1", "other#1"]
    state.key_checked(result("ok", 200, key_id="other#1"))
    assert health.due("invalid") == ["mock#1"]


def test_restoring_says_which_keys_are_still_invalid() -> None:
    before = keyed_state()
    before.reject_key("mock#1", status=401, reason="no")
    state = keyed_state()
    events: list[Event] = []
    state.subscribe(events.append)
    state.key_health.restore(before.key_health.saved())
    assert state.usable_models() == {"other/b"}
    assert [type(e) for e in events] == [Note]
    assert "mock#1" in events[0].text


# --- the [health] table -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[health]\ninterval_s = -1",
            "health.interval_s: a number of seconds of 0 or more, got -1 (0 turns the checks off)",
        ),
        ('[health]\ninterval_s = "5m"', "health.interval_s: a number, got a string"),
        ('[health]\nscope = "some"', "health.scope: one of 'invalid', 'all', got 'some'"),
        ("[health]\ntimeout_s = 0", "health.timeout_s: a number of seconds above 0, got 0"),
        (
            "[health]\nintervals = 60",
            "health.intervals: a known key (one of: interval_s, scope, timeout_s);"
            " did you mean 'interval_s'?",
        ),
        ("health = 60", "health: a table, got a whole number"),
    ],
)
def test_a_mistake_in_health_names_the_file_the_key_and_what_was_expected(
    text: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(text, source="c.toml", environ={})
    assert str(caught.value) == f"config error in c.toml: {message}"


def test_health_checks_are_off_by_default_and_check_only_invalid_keys_when_on() -> None:
    assert parse_settings("").health.interval_s == 0
    health = parse_settings("[health]\ninterval_s = 300").health
    assert (health.interval_s, health.scope, health.timeout_s) == (300, "invalid", 10)


# --- the check itself, by kind ------------------------------------------------------------


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[TestServer, list[tuple[str, dict[str, str]]]]]:
    """A server that answers every GET 200 and records its path, query and headers."""
    seen: list[tuple[str, dict[str, str]]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.path_qs, dict(request.headers)))
        return web.json_response({"success": True, "result": [], "data": []})

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server, seen
    await server.close()


async def test_each_kind_is_checked_with_its_cheapest_call_and_its_own_auth(
    recorder: tuple[TestServer, list[tuple[str, dict[str, str]]]],
) -> None:
    server, seen = recorder
    root = str(server.make_url("")).rstrip("/")
    cases = [
        ("openai", f"{root}/v1", "sk-o-0123456789", "/v1/models"),
        ("cohere", f"{root}/compatibility/v1", "co-0123456789", "/v1/models?page_size=1"),
        ("cohere", f"{root}/own", "co-0123456789", "/own/models"),
        ("gemini", f"{root}/v1beta", "AIza-0123456789", "/v1beta/models?pageSize=1"),
        (
            "cloudflare", f"{root}/client/v4/accounts/{{account_id}}/ai/v1", "acct-1:cf-token",
            "/client/v4/accounts/acct-1/ai/models/search?per_page=1",
        ),
    ]  # fmt: skip
    async with aiohttp.ClientSession() as session:
        for kind, base_url, secret, path in cases:
            settings = ProviderSettings(name=kind, kind=kind, base_url=base_url)  # type: ignore[arg-type]
            check = await check_key(settings, f"{kind}#1", secret, session, timeout_s=5)
            assert (check.status, check.http_status) == ("ok", 200), check
            got, headers = seen.pop()
            assert got == path
            if kind == "gemini":
                assert headers["x-goog-api-key"] == secret and "Authorization" not in headers
            else:
                token = secret.partition(":")[2] or secret  # cloudflare: the token part
                assert headers["Authorization"] == f"Bearer {token}"
        simulated = ProviderSettings(name="sim", kind="simulated")
        check = await check_key(simulated, "sim#1", "", session)
        assert (check.status, check.masked) == ("ok", "(no key)") and seen == []


@pytest.fixture
async def answering() -> AsyncIterator[tuple[str, dict[str, tuple[int, Any]]]]:
    """A server that answers each bearer key (or x-goog-api-key) with the (status, body) set."""
    answers: dict[str, tuple[int, Any]] = {}

    async def handler(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "").removeprefix("Bearer ")
        status, body = answers[request.headers.get("x-goog-api-key", auth)]
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/"), answers
    await server.close()


GOOGLE_BAD_KEY = {"error": {
    "code": 400, "message": "API key not valid. Please pass a valid API key.",
    "status": "INVALID_ARGUMENT",
    "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}],
}}  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "status", "body", "verdict"),
    [
        ("openai", 401, {"error": {"message": f"bad key {BAD}"}}, "invalid"),
        ("openai", 403, {"error": {"message": "forbidden"}}, "invalid"),
        ("openai", 429, {"error": {"message": "slow down"}}, "error"),
        ("openai", 500, {"error": {"message": "down"}}, "error"),
        ("gemini", 400, GOOGLE_BAD_KEY, "invalid"),
        ("gemini", 400, {"error": {"code": 400, "message": "bad request"}}, "error"),
        ("cohere", 401, {"message": "invalid api token"}, "invalid"),
        ("cloudflare", 403, {"success": False, "errors": [{"code": 10000, "message": "Authentication error"}]}, "invalid"),
        ("cloudflare", 200, {"success": False, "errors": [{"code": 7003, "message": "no route"}]}, "error"),
    ],
)  # fmt: skip
async def test_an_answer_is_read_as_the_relay_reads_that_kinds_answers(
    answering: tuple[str, dict[str, tuple[int, Any]]],
    kind: str,
    status: int,
    body: Any,
    verdict: str,
) -> None:
    root, answers = answering
    secret = "acct:" + BAD if kind == "cloudflare" else BAD
    answers[BAD] = (status, body)
    base_url = {"cloudflare": f"{root}/accounts/{{account_id}}/ai/v1"}.get(kind, f"{root}/v1")
    provider = ProviderSettings(name=kind, kind=kind, base_url=base_url)  # type: ignore[arg-type]
    async with aiohttp.ClientSession() as session:
        check = await check_key(provider, f"{kind}#1", secret, session, timeout_s=5)
    assert (check.status, check.http_status) == (verdict, status)
    assert BAD not in check.detail  # an upstream that echoes the key does not show it


async def test_no_connection_is_an_error_and_no_answer_in_time_a_timeout() -> None:
    async def silent(request: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.Response()

    app = web.Application()
    app.router.add_get("/{tail:.*}", silent)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        slow = ProviderSettings(name="s", kind="openai", base_url=str(server.make_url("/v1")))
        gone = ProviderSettings(name="g", kind="openai", base_url="http://127.0.0.1:1/v1")
        async with aiohttp.ClientSession() as session:
            late = await check_key(slow, "s#1", GOOD, session, timeout_s=0.1)
            refused = await check_key(gone, "g#1", GOOD, session, timeout_s=5)
    finally:
        await server.close()
    assert (late.status, late.http_status, late.detail) == (
        "timeout",
        None,
        "no answer within 0.1 s",
    )
    assert late.latency_ms >= 100
    assert refused.status == "error" and refused.detail.startswith("connection failed")


# --- tui-gateway keys check ---------------------------------------------------------------


@pytest.fixture
async def keyed_upstream() -> AsyncIterator[TestServer]:
    """The mock upstream, refusing BAD with a 401 and answering SLOW after 5 s."""
    app = make_mock_upstream(rejected_keys=frozenset({BAD}), slow_keys={SLOW: 5.0})
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


def write_config(tmp_path: Path, upstream: TestServer, *keys: str, extra: str = "") -> Path:
    path = tmp_path / "c.toml"
    path.write_text(
        f'[[providers]]\nname = "mock"\nkind = "openai"\nbase_url = "{upstream.make_url("/v1")}"\n'
        f"api_keys = {json.dumps(list(keys))}\n"
        '[[models]]\nprovider = "mock"\nid = "ok"\n' + extra
    )
    return path


async def keys_check(*args: str) -> Any:
    """`tui-gateway keys check ARGS` in a thread (it runs its own event loop), wide enough that
    no row wraps."""
    runner = CliRunner()
    return await asyncio.to_thread(
        runner.invoke, cli_app, ["keys", "check", *args], env={"COLUMNS": "160"}
    )


def rows(output: str) -> dict[str, list[str]]:
    """The table's rows by key id: provider, key, secret, status, latency, detail."""
    found = {}
    for line in output.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) >= 5 and re.fullmatch(r"\w+#\d+", cells[1]):
            found[cells[1]] = cells
    return found


async def test_keys_check_shows_each_key_masked_with_its_status_and_fails_unless_all_pass(
    tmp_path: Path, keyed_upstream: TestServer
) -> None:
    config = write_config(tmp_path, keyed_upstream, GOOD, BAD, SLOW)
    done = await keys_check("--config", str(config), "--timeout", "0.3")
    assert done.exit_code == 1, done.output
    shown = rows(done.stdout)
    assert {k: cells[2:4] for k, cells in shown.items()} == {
        "mock#1": ["sk-goo…ghij", "ok"],
        "mock#2": ["sk-rev…vuts", "invalid"],
        "mock#3": ["sk-slo…2222", "timeout"],
    }
    assert shown["mock#2"][5] == "Incorrect API key provided"
    assert shown["mock#3"][4].endswith(" ms") and int(shown["mock#3"][4].split()[0]) >= 300
    for secret in (GOOD, BAD, SLOW):
        assert secret not in done.output
    assert "2 of 3 keys not ok" in done.stderr


async def test_keys_check_exits_0_when_every_key_passes_and_can_answer_in_json(
    tmp_path: Path, keyed_upstream: TestServer
) -> None:
    config = write_config(tmp_path, keyed_upstream, GOOD)
    done = await keys_check("--config", str(config), "--json")
    assert done.exit_code == 0, done.output
    [check] = json.loads(done.stdout)
    assert check | {"latency_ms": 0} == {
        "provider": "mock", "key_id": "mock#1", "masked": "sk-goo…ghij", "status": "ok",
        "http_status": 200, "latency_ms": 0, "detail": "accepted (200)",
    }  # fmt: skip
    assert keyed_upstream.app[LISTED] == [GOOD]


async def test_keys_check_exits_2_on_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[health]\ninterval_s = -5\n")
    done = await keys_check("--config", str(config))
    assert done.exit_code == 2
    assert "health.interval_s: a number of seconds of 0 or more, got -5" in done.stderr
    missing = await keys_check("--config", str(tmp_path / "none.toml"))
    assert missing.exit_code == 2 and "file not found" in missing.stderr


# --- a running gateway: POST /gateway/keys/check, restarts, [health] -------------------------


@pytest.fixture
async def started(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Gateway]]]:
    """Start gateways on one database (a restart is a second start); all stopped at the end."""
    gateways: list[Gateway] = []

    async def start(settings: Settings) -> Gateway:
        gateway = await start_gateway(settings, tmp_path / "health.db")
        gateways.append(gateway)
        return gateway

    yield start
    for gateway in gateways:
        await gateway.stop()


def one_key(upstream: TestServer, secret: str, **health: Any) -> Settings:
    provider = {"name": "mock", "kind": "openai", "base_url": str(upstream.make_url("/v1")),
                "api_keys": [secret]}  # fmt: skip
    return make_settings(providers=[provider], models=[model("mock", "ok:text=hi")], health=health)


async def ask(gateway: Gateway) -> str:
    async with openai.AsyncOpenAI(
        base_url=gateway.base_url, api_key=API_KEY, max_retries=0
    ) as client:
        reply = await client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "hello"}]
        )
    return reply.choices[0].message.content or ""


async def post_check(gateway: Gateway) -> dict[str, Any]:
    url = gateway.base_url.removesuffix("/v1") + "/gateway/keys/check"
    async with aiohttp.ClientSession() as session:
        async with session.post(url) as refused:
            assert refused.status == 401  # the admin API wants the gateway's key
        async with session.post(url, headers=AUTH) as resp:
            assert resp.status == 200
            text = await resp.text()
    assert BAD not in text and GOOD not in text
    body: dict[str, Any] = json.loads(text)
    return body


async def test_a_key_refused_in_traffic_returns_once_a_check_passes_and_not_before(
    started: Callable[..., Awaitable[Gateway]], keyed_upstream: TestServer
) -> None:
    gateway = await started(one_key(keyed_upstream, BAD))
    with pytest.raises(openai.APIStatusError):  # its only key was refused
        await ask(gateway)
    keys = gateway.state.keys
    assert keys.all_invalid("mock")

    failed = await post_check(gateway)  # the upstream still refuses it
    assert [(c["key_id"], c["status"], c["http_status"]) for c in failed["checks"]] == [
        ("mock#1", "invalid", 401)
    ]
    assert failed["keys"]["mock"][0]["status"] == "invalid" and keys.all_invalid("mock")
    with pytest.raises(openai.APIStatusError):
        await ask(gateway)

    events: list[Event] = []
    gateway.state.subscribe(events.append, kinds=(KeyRestored,))
    del keyed_upstream.app[REFUSED_KEYS][BAD]  # the user fixed the key upstream
    passed = await post_check(gateway)
    assert [(c["status"], c["masked"]) for c in passed["checks"]] == [("ok", "sk-rev…vuts")]
    assert passed["keys"]["mock"][0]["status"] == "ok"
    assert events == [KeyRestored("mock#1", "sk-rev…vuts", "mock", provider_back=True)]
    assert await ask(gateway) == " ".join(["hi"] * 8)


async def saved_row(db_path: Path) -> dict[str, Any]:
    async with aiosqlite.connect(db_path) as db:
        query = "SELECT value FROM saved_state WHERE key = ?"
        async with db.execute(query, (INVALID_KEYS,)) as cursor:
            row = await cursor.fetchone()
    assert row is not None
    value: dict[str, Any] = json.loads(row[0])
    return value


async def test_an_invalid_key_stays_out_across_a_restart_until_its_secret_changes(
    started: Callable[..., Awaitable[Gateway]], keyed_upstream: TestServer, tmp_path: Path
) -> None:
    gateway = await started(one_key(keyed_upstream, BAD))
    with pytest.raises(openai.APIStatusError):
        await ask(gateway)
    before = gateway.state.keys.rejection("mock#1")
    await gateway.stop()
    saved = await saved_row(tmp_path / "health.db")
    assert saved == {"mock#1": {"provider": "mock", "hash": secret_hash(BAD),
                                "reason": "Incorrect API key provided", "status": 401,
                                "since": before.since}}  # type: ignore[union-attr]  # fmt: skip

    again = await started(one_key(keyed_upstream, BAD))
    assert again.state.keys.rejection("mock#1") == before
    sent = len(keyed_upstream.app[RECEIVED])
    with pytest.raises(openai.APIStatusError):  # not sent: the provider has no valid key
        await ask(again)
    assert len(keyed_upstream.app[RECEIVED]) == sent
    await again.stop()

    changed = await started(one_key(keyed_upstream, NEW))  # a new key under the same name
    assert changed.state.keys.rejection("mock#1") is None
    assert await ask(changed) == " ".join(["hi"] * 8)
    await changed.stop()
    assert await saved_row(tmp_path / "health.db") == {}  # the stale entry is gone too


async def until(condition: Callable[[], bool], *, within_s: float = 5.0) -> None:
    """Wait (in small steps) until `condition` holds; fail after `within_s`."""
    async with asyncio.timeout(within_s):
        while not condition():
            await asyncio.sleep(0.01)


async def test_health_checks_bring_an_invalid_key_back_without_calling_the_valid_ones(
    started: Callable[..., Awaitable[Gateway]], keyed_upstream: TestServer
) -> None:
    provider = {"name": "mock", "kind": "openai", "base_url": str(keyed_upstream.make_url("/v1")),
                "api_keys": [GOOD, BAD]}  # fmt: skip
    settings = make_settings(
        providers=[provider], models=[model("mock", "ok")], health={"interval_s": 0.05}
    )
    gateway = await started(settings)
    gateway.state.reject_key("mock#2", status=401, reason="Incorrect API key provided")
    listed = keyed_upstream.app[LISTED]
    await until(lambda: listed.count(BAD) >= 2)  # refused each round: still out
    assert gateway.state.keys.rejection("mock#2") is not None
    del keyed_upstream.app[REFUSED_KEYS][BAD]
    await until(lambda: gateway.state.keys.rejection("mock#2") is None)
    assert GOOD not in listed  # scope `invalid`: a key in use is left alone


async def test_a_round_checks_what_its_scope_says_and_a_changed_secret_once_at_start(
    started: Callable[..., Awaitable[Gateway]], keyed_upstream: TestServer
) -> None:
    gateway = await started(one_key(keyed_upstream, BAD))
    gateway.state.reject_key("mock#1", status=401, reason="Incorrect API key provided")
    await gateway.stop()
    listed = keyed_upstream.app[LISTED]

    # The secret changed, and checks are on (an hour apart): the new key is checked at start.
    changed = await started(one_key(keyed_upstream, NEW, interval_s=3600))
    await until(lambda: not changed.state.key_health.recheck)  # checked, and found ok
    assert listed == [NEW] and changed.state.key_health.due("invalid") == []
    assert await changed.app[KEY_CHECKS].scheduled() == []  # nothing due: no call
    assert listed == [NEW]
    await changed.stop()

    every = await started(one_key(keyed_upstream, GOOD, interval_s=3600, scope="all"))
    await until(lambda: listed == [NEW, GOOD])  # scope `all`: a valid key is checked too
    [check] = await every.app[KEY_CHECKS].scheduled()
    assert (check.key_id, check.status) == ("mock#1", "ok") and listed == [NEW, GOOD, GOOD]


async def test_check_keys_checks_every_key_at_once_each_under_the_timeout(
    keyed_upstream: TestServer,
) -> None:
    slow = [f"{SLOW}{n}" for n in range(3)]
    keyed_upstream.app[SLOW_KEYS].update(dict.fromkeys(slow, 5.0))
    settings = make_settings(
        providers=[
            {"name": "mock", "kind": "openai", "base_url": str(keyed_upstream.make_url("/v1")),
             "api_keys": [*slow, GOOD]},
            {"name": "sim", "kind": "simulated"},
        ],
        models=[model("mock", "ok")],
    )  # fmt: skip
    async with aiohttp.ClientSession() as session:
        started = asyncio.get_running_loop().time()
        checks = await check_keys(settings, session, timeout_s=0.4)
        took = asyncio.get_running_loop().time() - started
        only = await check_keys(settings, session, timeout_s=0.4, only={"mock#4"})
    assert [(c.key_id, c.status) for c in checks] == [
        ("mock#1", "timeout"), ("mock#2", "timeout"), ("mock#3", "timeout"), ("mock#4", "ok"),
        ("sim#1", "ok"),
    ]  # fmt: skip
    assert took < 1.0  # one after the other, the three slow keys alone would take 1.2 s
    assert [c.key_id for c in only] == ["mock#4"]
