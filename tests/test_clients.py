"""Team use (issue 12): named client keys on the screen and in the log, and what a gateway
other machines can reach asks of the config."""

from __future__ import annotations

import hmac
import json
import os
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from openai import AsyncOpenAI, OpenAI
from typer.testing import CliRunner

from tests.conftest import GatewayFactory
from tests.factories import API_KEY, SIM_PROVIDER, make_settings, model, start_gateway
from tests.logged import logged
from tui_gateway.cli import app
from tui_gateway.config import (
    ConfigError,
    Settings,
    parse_settings,
    settings_from_dict,
    warnings_for,
)
from tui_gateway.config_clients import is_loopback
from tui_gateway.domain.views import FlowDetail, FlowView
from tui_gateway.server import Gateway
from tui_gateway.store.schema import MIGRATIONS
from tui_gateway.tui.screens.detail_text import header_text
from tui_gateway.tui.widgets.request_rows import Timeouts, haystack, row_cells

ALICE_KEY = "alice-secret-1"
BOB_KEY = "bob-secret-2"
HELLO = [{"role": "user", "content": "hello"}]


def team_settings(
    mock_url: str, *, api_key: str | None = API_KEY, scenario: str = "ok:chunks=3,text=hey"
) -> Settings:
    """Two named keys, alice's from the environment and bob's literal, beside `api_key`."""
    raw: dict[str, Any] = {
        "server": {"port": 0, "shutdown_grace_s": 1.0},
        "routing": {"strategy": "ordered"},
        "providers": [{"name": "mock", "kind": "openai", "base_url": mock_url, "api_keys": ["k1"]}],
        "models": [model("mock", scenario)],
        "clients": [{"name": "alice", "key": "env:ALICE_KEY"}, {"name": "bob", "key": BOB_KEY}],
    }
    if api_key is not None:
        raw["server"]["api_key"] = api_key
    return settings_from_dict(raw, source="team.toml", environ={"ALICE_KEY": ALICE_KEY})


def client(gateway: Gateway, key: str) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=gateway.base_url, api_key=key, max_retries=0)


async def state(gateway: Gateway, key: str) -> dict[str, Any]:
    root = gateway.base_url.removesuffix("/v1")
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{root}/gateway/state", headers=headers) as resp,
    ):
        assert resp.status == 200
        return dict(await resp.json())


async def ask(gateway: Gateway, key: str, *, stream: bool) -> None:
    async with client(gateway, key) as sdk:
        if stream:
            chunks = await sdk.chat.completions.create(model="auto", messages=HELLO, stream=True)
            text = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
        else:
            reply = await sdk.chat.completions.create(model="auto", messages=HELLO)
            text = reply.choices[0].message.content or ""
    assert text == "hey hey hey"


# --- named keys, end to end -------------------------------------------------------------------


async def test_each_named_key_is_logged_and_shown_with_its_name(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(team_settings(mock_url))
    for key in (ALICE_KEY, BOB_KEY, API_KEY):
        for stream in (False, True):
            await ask(gateway, key, stream=stream)
    recent = (await state(gateway, BOB_KEY))["recent"]
    assert [r["client"] for r in recent] == ["alice", "alice", "bob", "bob", None, None]
    rows = await logged(gateway.request_log)
    assert sorted((r.client or "", r.streamed) for r in rows) == [
        ("", False), ("", True), ("alice", False), ("alice", True), ("bob", False), ("bob", True)
    ]  # fmt: skip


async def test_a_request_in_flight_shows_whose_it_is(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    slow = "ok:chunks=4,delay_ms=200,text=hey"  # in flight long enough to look at it
    gateway = await gateway_factory(team_settings(mock_url, scenario=slow))
    async with client(gateway, ALICE_KEY) as alice:
        chunks = await alice.chat.completions.create(model="auto", messages=HELLO, stream=True)
        stream = chunks.__aiter__()
        await stream.__anext__()  # under way: the rest is still coming
        active = (await state(gateway, API_KEY))["active"]
        assert [(r["client"], r["state"]) for r in active] == [("alice", "streaming")]
        [c async for c in stream]


async def test_a_named_key_sent_as_x_api_key_is_named_too(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(team_settings(mock_url))
    body = {"model": "auto", "max_tokens": 50, "messages": HELLO}
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            gateway.base_url + "/messages", json=body, headers={"x-api-key": BOB_KEY}
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()
    [row] = await logged(gateway.request_log)
    assert (row.dialect, row.client) == ("messages", "bob")


async def test_a_wrong_key_gets_the_same_401_as_before(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    team = await gateway_factory(team_settings(mock_url))
    single = await gateway_factory(make_settings(mock_url, [model("mock", "ok")]))
    answers = []
    for gateway in (team, single):
        async with client(gateway, "alice-secret-3") as wrong:
            with pytest.raises(openai.AuthenticationError) as caught:
                await wrong.chat.completions.create(model="auto", messages=HELLO)
        answers.append((caught.value.status_code, caught.value.body))
    assert answers[0] == answers[1]
    assert answers[0][0] == 401
    assert answers[0][1] == {
        "message": "incorrect API key in the Authorization header; use the key tui-gateway"
        " printed at start",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
    [row] = await logged(team.request_log)
    assert (row.status, row.client) == (401, None)


async def test_a_named_request_refused_before_routing_is_still_named(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    gateway = await gateway_factory(team_settings(mock_url))
    async with client(gateway, ALICE_KEY) as alice:
        with pytest.raises(openai.BadRequestError):
            await alice.chat.completions.create(model="auto", messages=[])
    [row] = await logged(gateway.request_log)
    assert (row.status, row.client) == (400, "alice")


async def test_the_single_server_key_works_as_before(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    """No `[[clients]]`: the one key, requests with no name, the same JSON plus `client: null`."""
    gateway = await gateway_factory(
        make_settings(mock_url, [model("mock", "ok:chunks=3,text=hey")])
    )
    await ask(gateway, API_KEY, stream=True)
    [recent] = (await state(gateway, API_KEY))["recent"]
    assert recent["client"] is None
    [row] = await logged(gateway.request_log)
    assert row.status == 200 and row.client is None


async def test_the_generated_key_works_beside_named_ones(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    """`start_gateway` passes API_KEY as the key a gateway without `server.api_key` generates."""
    gateway = await gateway_factory(team_settings(mock_url, api_key=None))
    await ask(gateway, API_KEY, stream=False)
    await ask(gateway, ALICE_KEY, stream=False)
    assert sorted(r.client or "" for r in await logged(gateway.request_log)) == ["", "alice"]


async def test_every_key_is_compared_on_every_request_whichever_matches(
    gateway_factory: GatewayFactory, mock_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Constant time: no early exit, so how long auth takes says nothing of whose key it was."""
    gateway = await gateway_factory(team_settings(mock_url))
    compared: list[bytes] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)  # as auth.py calls it
    counts = []
    for key in (API_KEY, ALICE_KEY, BOB_KEY, "wrong"):
        compared.clear()
        async with client(gateway, key) as sdk:
            try:
                await sdk.models.list()
            except openai.AuthenticationError:
                assert key == "wrong"
        counts.append(len(compared))
        # both headers (one of them empty) against each of the three keys
        assert sorted(set(compared)) == sorted(k.encode() for k in (API_KEY, ALICE_KEY, BOB_KEY))
    assert counts == [6, 6, 6, 6]


# --- the screen -------------------------------------------------------------------------------


def view(**changes: Any) -> FlowView:
    fields: dict[str, Any] = {
        "id": "0123456789ab", "session": "5e55105e", "requested_model": "auto", "model": "a/1",
        "provider": "a", "attempt": 1, "state": "streaming", "stream": True, "dialect": "chat",
        "started": 1000.0, "ttfb_ms": 5.0, "chunks": 3, "heartbeats": 0, "last_chunk_at": 1000.5,
        "failures": (), "finished_at": None, "status": None, "error_kind": None,
    }  # fmt: skip
    return FlowView(**{**fields, **changes})


def test_the_requests_pane_shows_the_name_where_the_session_would_be() -> None:
    named, unnamed = view(client="alice"), view()
    assert row_cells(named, 1001.0, Timeouts())[1] == ("alice", "bold")
    assert row_cells(unnamed, 1001.0, Timeouts())[1] == ("5e5510", "")
    assert "alice" in haystack(named) and "5e55105e" in haystack(named)


def test_the_detail_header_says_whose_request_it_is() -> None:
    def header(v: FlowView) -> str:
        detail = FlowDetail(v, (), None, None, None, None)
        return header_text(detail, now=1001.0).plain.splitlines()[0]

    assert "session 5e55105e  from alice  stream" in header(view(client="alice"))
    assert "from" not in header(view())


# --- the config -------------------------------------------------------------------------------

SERVER = '[server]\napi_key = "owner-key"\n'


def clients_error(text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_settings(text, source="team.toml", environ=environ or {})
    return str(caught.value)


def test_clients_load_with_env_and_literal_keys() -> None:
    text = SERVER + (
        '[[clients]]\nname = "alice"\nkey = "env:ALICE_KEY"\n'
        '[[clients]]\nname = "bob"\nkey = "bob-secret"\n'
    )
    settings = parse_settings(text, source="team.toml", environ={"ALICE_KEY": "from-env"})
    assert [(c.name, c.key) for c in settings.clients] == [
        ("alice", "from-env"),
        ("bob", "bob-secret"),
    ]
    assert settings.own_key and parse_settings("").own_key is False


@pytest.mark.parametrize(
    ("clients", "message"),
    [
        (
            [("alice", "k1"), ("alice", "k2")],
            "clients[1].name: a unique name ('alice' repeats)",
        ),
        (
            [("alice", "same-secret"), ("bob", "same-secret")],
            "clients[1].key: a key of its own (clients[0].key is the same)",
        ),
        (
            [("alice", "owner-key")],
            "clients[0].key: a key of its own (server.api_key is the same)",
        ),
        ([("alice", None)], "clients[0].key: a value (this key is required)"),
        ([(None, "k1")], "clients[0].name: a value (this key is required)"),
        ([("alice", "env:ALICE_KEY")], "clients[0].key: environment variable ALICE_KEY to be set"),
        ([("alice", "env:EMPTY")], "clients[0].key: environment variable EMPTY to be set"),
        ([("al ice", "k1")], "clients[0].name: a non-empty name without spaces, got 'al ice'"),
        ([("alice", " ")], "clients[0].key: a non-empty key, got ' '"),
    ],
)
def test_client_mistakes_name_the_file_and_the_key(
    clients: list[tuple[str | None, str | None]], message: str
) -> None:
    text = SERVER
    for name, key in clients:
        text += "[[clients]]\n"
        text += "" if name is None else f"name = {json.dumps(name)}\n"
        text += "" if key is None else f"key = {json.dumps(key)}\n"
    error = clients_error(text, {"EMPTY": ""})
    assert error == f"config error in team.toml: {message}"
    assert "same-secret" not in error and "owner-key" not in error  # never the key itself


def test_an_unknown_client_key_is_refused_with_the_known_ones() -> None:
    error = clients_error('[[clients]]\nname = "alice"\nsecret = "k"\n')
    assert error == (
        "config error in team.toml: clients[0].secret: a known key (one of: key, name)"
    )


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("localhost", True),
        ("LocalHost", True), ("::ffff:127.0.0.1", True), ("0.0.0.0", False), ("::", False),
        ("10.0.0.5", False), ("192.168.1.20", False), ("gateway.lan", False), ("", False),
    ],
)  # fmt: skip
def test_loopback_is_127_0_0_0_8_ipv6_one_and_localhost(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


# --- the command line -------------------------------------------------------------------------

SIM = SIM_PROVIDER
TEAM = f'[[clients]]\nname = "alice"\nkey = "{ALICE_KEY}"\n' + SIM


def cli(tmp_path: Path, config_text: str, *args: str) -> subprocess.Popen[str]:
    """`python -m tui_gateway --headless --config F ARGS` with a HOME and data dir of its own."""
    config = tmp_path / "team.toml"
    config.write_text(config_text)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "TUI_GATEWAY_API_KEY"}
    env |= {"HOME": str(home), "XDG_DATA_HOME": str(home / "data")}
    env |= {"XDG_CONFIG_HOME": str(home / "config")}
    command = [sys.executable, "-m", "tui_gateway", "--headless", "--config", str(config)]
    return subprocess.Popen(
        [*command, "--db", str(tmp_path / "log.db"), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def test_a_host_beyond_loopback_without_a_key_of_its_own_refuses_to_start(
    tmp_path: Path,
) -> None:
    with cli(tmp_path, SIM, "--host", "0.0.0.0", "--port", "0") as proc:
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert out == ""
    config = tmp_path / "team.toml"
    assert err == (
        "tui-gateway: host 0.0.0.0 can be reached from other machines, so it needs a key you"
        " chose: set [server] api_key or add a [[clients]] entry (name, key) in"
        f" {config}; the generated key alone is enough only on loopback\n"
    )


@pytest.mark.parametrize(
    "config_text",
    [
        SIM,  # the generated key alone
        '[server]\napi_key = "env:TUI_GATEWAY_API_KEY"\n' + SIM,  # a key the environment lacks
    ],
)
def test_only_a_key_the_config_sets_opens_the_gateway_to_the_network(
    tmp_path: Path, config_text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TUI_GATEWAY_API_KEY", raising=False)
    config = tmp_path / "c.toml"
    config.write_text(config_text)
    args = ["--config", str(config), "--host", "192.168.1.20", "--port", "0", "--headless"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "tui-gateway: host 192.168.1.20 can be reached from other machines" in result.output
    assert "Traceback" not in result.output


def test_with_a_named_key_it_listens_beyond_loopback_and_warns_of_plain_http(
    tmp_path: Path,
) -> None:
    with cli(tmp_path, TEAM, "--host", "0.0.0.0", "--port", "0") as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            first = proc.stdout.readline().strip()
            assert first.startswith("tui-gateway listening on http://0.0.0.0:"), first
            port = int(first.rsplit(":", 1)[1].removesuffix("/v1"))
            with OpenAI(
                base_url=f"http://127.0.0.1:{port}/v1", api_key=ALICE_KEY, max_retries=0
            ) as sdk:
                reply = sdk.chat.completions.create(model="auto", messages=HELLO)
                assert reply.model == "quick"
        finally:
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert err.splitlines()[0] == (
        "warning: listening on 0.0.0.0, beyond this machine: keys, prompts and answers travel as"
        " plain HTTP; use it on a network you trust, or put a TLS proxy in front"
    )
    with closing(sqlite3.connect(tmp_path / "log.db")) as db:
        assert db.execute("SELECT client, status FROM requests").fetchall() == [("alice", 200)]


def test_the_plain_http_warning_is_only_for_a_host_beyond_loopback() -> None:
    team = parse_settings(TEAM)
    assert warnings_for(team) == []
    for host in ("0.0.0.0", "10.0.0.5"):
        [warning] = warnings_for(replace(team, server=replace(team.server, host=host)))
        assert warning.startswith(f"listening on {host}, beyond this machine:")


# --- the log across a restart -----------------------------------------------------------------


def version_7_log(path: Path) -> None:
    """A log as the gateway wrote it before migration 8 (no `client`), with one request."""
    with closing(sqlite3.connect(path)) as db:
        for number, script in enumerate(MIGRATIONS[:7], start=1):
            if isinstance(script, str):
                db.executescript(f"BEGIN; {script} PRAGMA user_version = {number}; COMMIT;")
            else:  # a backfill: nothing to fill in an empty log
                db.execute(f"PRAGMA user_version = {number}")
        db.execute(
            "INSERT INTO requests (id, started, session, requested_model, status, latency_ms,"
            " streamed) VALUES ('0000000000aa', 1.0, 's', 'auto', 200, 5.0, 0)"
        )
        db.commit()


async def test_the_log_keeps_the_name_across_a_restart_of_an_old_log(
    tmp_path: Path, mock_url: str
) -> None:
    path = tmp_path / "old.db"
    version_7_log(path)
    settings = team_settings(mock_url)
    first = await start_gateway(settings, path)
    try:
        await ask(first, ALICE_KEY, stream=True)
        [named] = [r for r in await logged(first.request_log) if r.client]
    finally:
        await first.stop()
    again = await start_gateway(settings, path)
    try:
        detail = await again.request_detail(named.id)
        assert detail is not None and detail.from_log
        assert detail.view.client == "alice"
        old = await again.request_detail("0000000000aa")
        assert old is not None and old.view.client is None
        root = again.base_url.removesuffix("/v1")
        headers = {"Authorization": f"Bearer {BOB_KEY}"}
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{root}/gateway/requests/{named.id}", headers=headers) as resp,
        ):
            assert (await resp.json())["view"]["client"] == "alice"
    finally:
        await again.stop()
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


async def test_the_headless_log_says_whose_assistant_sent_each_request(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    import io

    from tui_gateway.headless_log import HeadlessLog

    gateway = await gateway_factory(team_settings(mock_url))
    stream = io.StringIO()
    HeadlessLog(gateway.state, level="info", stream=stream).attach()
    await ask(gateway, ALICE_KEY, stream=True)
    await ask(gateway, API_KEY, stream=False)
    alice, nobody = stream.getvalue().splitlines()
    assert " client=alice" in alice
    assert "client=" not in nobody  # the one server key: no name to say
