"""The screen attached to a gateway elsewhere (issue 12): `GET /gateway/events`, the request
detail endpoint, `RemoteGateway` under the real app, and `tui-gateway attach`'s target and check.

Every gateway here is real, on 127.0.0.1 port 0, with `simulated` providers; the attached app
talks to it only over HTTP, as from another machine.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from openai import AsyncOpenAI
from textual.app import App
from textual.widgets import Static

from tests.factories import API_KEY, make_settings, model, start_gateway
from tests.test_tui import ScreenClock, until
from tui_gateway.attach import AttachError, check, target
from tui_gateway.config import ServerSettings
from tui_gateway.domain.views import FlowDetail, Snapshot
from tui_gateway.proxy.watch import WATCHERS
from tui_gateway.remote.gateway import RemoteGateway
from tui_gateway.server import Gateway, bind_socket
from tui_gateway.tui.app import GatewayApp
from tui_gateway.tui.screens import RequestDetailScreen
from tui_gateway.tui.widgets import PoolsPane, RequestsPane
from tui_gateway.tui.widgets.status import StatusBar

AUTH = {"Authorization": f"Bearer {API_KEY}"}
SIM = [{"name": "a", "kind": "simulated"}, {"name": "b", "kind": "simulated"}]
SLOW = {"first_token_ms": 0, "tokens_per_s": 40, "reply_tokens": 30}
"""About 0.75 s a reply: long enough to be seen in flight."""


def settings_with(port: int = 0) -> Any:
    return make_settings(
        providers=SIM,
        models=[model("a", "1", simulate=SLOW), model("b", "2", simulate=SLOW)],
        server={"port": port},
    )


async def events(gateway: Gateway, query: str = "", *, until: str) -> list[tuple[str, bytes]]:
    """The feed's server-sent events, as (name, data), up to the first named `until`."""
    root = gateway.base_url.removesuffix("/v1")
    seen: list[tuple[str, bytes]] = []
    async with aiohttp.ClientSession(headers=AUTH) as http:
        async with http.get(f"{root}/gateway/events{query}") as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/event-stream"
            buffer = b""
            async with asyncio.timeout(5):
                async for chunk in response.content.iter_any():
                    buffer += chunk
                    *done, buffer = buffer.split(b"\n\n")
                    for raw in done:
                        name, _, data = raw.partition(b"\ndata: ")
                        seen.append((name.removeprefix(b"event: ").decode(), data))
                    if any(name == until for name, _ in seen):
                        return seen
    return seen


async def test_the_feed_says_hello_then_sends_whole_snapshots_and_the_event_log(
    tmp_path: Path,
) -> None:
    gateway = await start_gateway(settings_with(), tmp_path / "log.db")
    try:
        feed = asyncio.create_task(events(gateway, "?interval_s=0.1", until="line"))
        await asyncio.sleep(0.15)
        gateway.state.note("hello from the gateway")
        seen = await feed
    finally:
        await gateway.stop()
    names = [name for name, _ in seen]
    assert names[0] == "hello" and names[1] == "snapshot"
    assert names.count("snapshot") >= 2  # one a tick: 0.1 s here
    hello = json.loads(seen[0][1])
    assert hello == {"demo": False, "streaming": {
        "first_byte_timeout_s": 10.0, "stall_timeout_s": 20.0, "heartbeat_interval_s": 10.0,
    }}  # fmt: skip
    snapshot = msgspec.json.decode(seen[1][1], type=Snapshot)
    assert [e.model for e in snapshot.pools["balanced"]] == ["a/1", "b/2"]
    lines = [json.loads(data)["text"] for name, data in seen if name == "line"]
    assert lines == ["hello from the gateway"]


async def test_the_feed_takes_the_key_and_a_sane_interval(tmp_path: Path) -> None:
    gateway = await start_gateway(settings_with(), tmp_path / "log.db")
    root = gateway.base_url.removesuffix("/v1")
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{root}/gateway/events") as response:
                assert response.status == 401
                assert (await response.json())["error"]["code"] == "invalid_api_key"
            for bad in ("0", "nan", "fast", "11"):
                url = f"{root}/gateway/events?interval_s={bad}"
                async with http.get(url, headers=AUTH) as response:
                    assert response.status == 400, bad
                    error = (await response.json())["error"]
                    assert error["param"] == "interval_s"
    finally:
        await gateway.stop()


async def test_one_request_up_close_from_memory_and_from_the_log(tmp_path: Path) -> None:
    gateway = await start_gateway(settings_with(), tmp_path / "log.db")
    root = gateway.base_url.removesuffix("/v1")
    try:
        async with AsyncOpenAI(base_url=gateway.base_url, api_key=API_KEY, max_retries=0) as sdk:
            raw = await sdk.chat.completions.with_raw_response.create(
                model="auto", messages=[{"role": "user", "content": "hi"}]
            )
        request_id = raw.headers["X-Request-Id"]
        async with aiohttp.ClientSession(headers=AUTH) as http:
            async with http.get(f"{root}/gateway/requests/{request_id}") as response:
                assert response.status == 200
                detail = msgspec.json.decode(await response.read(), type=FlowDetail)
            async with http.get(f"{root}/gateway/requests/000000000000") as response:
                assert response.status == 404
                assert (await response.json())["error"]["code"] == "request_not_found"
        assert detail.view.id == request_id and detail.view.model == "a/1"
        assert [a.model for a in detail.attempts] == ["a/1"] and not detail.from_log
    finally:
        await gateway.stop()


def status_text(app: GatewayApp) -> str:
    return str(app.query_one(StatusBar).render())


async def test_an_attached_screen_shows_requests_come_and_go_and_its_ban_reaches_the_gateway(
    tmp_path: Path,
) -> None:
    gateway = await start_gateway(settings_with(), tmp_path / "log.db")
    remote = RemoteGateway(gateway.base_url, API_KEY, interval_s=0.1)
    clock = ScreenClock(remote.state.clock)
    app = GatewayApp(remote, clock=clock)
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            await until(pilot, lambda: "attached" in status_text(app))
            pane = app.query_one(RequestsPane)
            async with AsyncOpenAI(
                base_url=gateway.base_url, api_key=API_KEY, max_retries=0
            ) as sdk:
                hello = [{"role": "user", "content": "hello"}]
                stream = await sdk.chat.completions.create(
                    model="auto", messages=hello, stream=True
                )
                [flow] = gateway.state.active.values()
                await until(pilot, lambda: flow.id in pane.request_ids)  # in flight, on screen
                pane.focus()
                await pilot.press("enter")  # its detail, fetched from the gateway, kept live
                detail = app.screen
                assert isinstance(detail, RequestDetailScreen)
                await until(pilot, lambda: detail.request is not None)
                first = detail.request
                assert first is not None and first.view.id == flow.id
                chunks = [c async for c in stream]
                assert chunks[-1].choices[0].finish_reason == "stop"
                await until(pilot, lambda: header(detail).startswith(f"{flow.id}"))
                await until(pilot, lambda: "status 200" in header(detail))
                await pilot.press("escape")
                await until(pilot, lambda: remote.state.finished_count == 1)
                clock.at = remote.state.clock() + 60  # long past the linger
                await until(pilot, lambda: flow.id not in pane.request_ids)
                clock.at = None

                pools = app.query_one(PoolsPane)
                pools.focus()
                pools.move_cursor(row=0)
                assert pools.cursor_key() == "a/1"
                await pilot.press("b")
                await until(pilot, lambda: "a/1" in gateway.state.controls.banned_models)
                again = [{"role": "user", "content": "a new conversation"}]
                raw = await sdk.chat.completions.with_raw_response.create(
                    model="auto", messages=again
                )
                assert raw.headers["X-Gateway-Model"] == "b/2"  # the ban reached the gateway
            await until(pilot, lambda: "a/1 banned" in event_lines(app))
    finally:
        await gateway.stop()


def header(screen: RequestDetailScreen) -> str:
    return str(screen.query_one("#detail-header", Static).render())


def event_lines(app: GatewayApp) -> str:
    from textual.widgets import RichLog

    return "\n".join(str(line.text) for line in app.query_one("#events", RichLog).lines)


async def test_a_dropped_gateway_is_said_and_the_screen_reattaches_when_it_is_back(
    tmp_path: Path,
) -> None:
    first = await start_gateway(settings_with(), tmp_path / "log.db")
    port = first.port
    remote = RemoteGateway(first.base_url, API_KEY, interval_s=0.1)
    await remote.start()
    try:
        await wait_for(lambda: remote.link() == "attached")
        await first.stop()
        await wait_for(lambda: remote.link().startswith("disconnected"))
        before = remote.state.snapshot()
        assert [e.model for e in before.pools["balanced"]] == ["a/1", "b/2"]  # kept
        second = await start_gateway_on(port, tmp_path)
        try:
            await wait_for(lambda: remote.link() == "attached", seconds=10)
        finally:
            await second.stop()
    finally:
        await remote.stop()


async def start_gateway_on(port: int, tmp_path: Path) -> Gateway:
    sock: socket.socket = bind_socket("127.0.0.1", port)
    gateway = Gateway(settings_with(port), api_key=API_KEY, db_path=tmp_path / "2.db", sock=sock)
    await gateway.start()
    return gateway


async def wait_for(condition: Any, *, seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.02)


def test_the_local_gateway_is_the_default_target_with_its_own_key() -> None:
    server = ServerSettings(port=4999, api_key="local-key")
    assert target(None, None, server) == ("http://127.0.0.1:4999", "local-key")
    assert target(None, None, server, port=5000) == ("http://127.0.0.1:5000", "local-key")
    assert target("localhost:4999/v1/", None, server) == ("http://localhost:4999", "local-key")
    assert target("http://10.0.0.5:4141", "theirs", server) == ("http://10.0.0.5:4141", "theirs")
    with pytest.raises(AttachError, match="port is 0"):
        target(None, None, ServerSettings(port=0))
    with pytest.raises(AttachError, match="pass --key"):
        target("http://10.0.0.5:4141", None, ServerSettings(port=4141))


async def test_a_wrong_port_or_key_is_one_clear_line(tmp_path: Path) -> None:
    gateway = await start_gateway(settings_with(), tmp_path / "log.db")
    root = gateway.base_url.removesuffix("/v1")
    try:
        with pytest.raises(AttachError, match="refused the key"):
            await asyncio.to_thread(check, root, "wrong")
        await asyncio.to_thread(check, root, API_KEY)  # the right one is taken
    finally:
        await gateway.stop()
    with pytest.raises(AttachError, match="cannot reach the gateway at"):
        await asyncio.to_thread(check, root, API_KEY)


async def test_several_screens_attach_at_once_and_each_follows(tmp_path: Path) -> None:
    gateway = await start_gateway(settings_with(), tmp_path / "log.db")
    screens = [RemoteGateway(gateway.base_url, API_KEY, interval_s=0.1) for _ in range(3)]
    try:
        for screen in screens:
            await screen.start()
        await wait_for(lambda: all(s.link() == "attached" for s in screens))
        gateway.state.ban_model("b/2")
        await wait_for(lambda: all(s.state.snapshot().bans.models == ("b/2",) for s in screens))
        assert len(gateway.app[WATCHERS]) == 3
        await screens[0].stop()
        await wait_for(lambda: len(gateway.app[WATCHERS]) == 2)  # its feed ended with it
    finally:
        for screen in screens:
            await screen.stop()
        await gateway.stop()


async def test_attaching_to_a_busy_gateway_does_not_count_its_history_as_the_last_minute(
    tmp_path: Path,
) -> None:
    from tui_gateway.remote.state import empty_snapshot

    class Bar(App[None]):
        def compose(self) -> Any:
            yield StatusBar("http://gw/v1", "k…", id="status")

    app = Bar()
    async with app.run_test():
        bar = app.query_one(StatusBar)
        placeholder = empty_snapshot(1000.0)
        bar.link = "connecting"
        bar.show(placeholder)  # nothing yet: no count
        busy = msgspec.structs.replace(
            placeholder,
            now=1001.0,
            totals=msgspec.structs.replace(placeholder.totals, finished=5000),
        )
        bar.link = "attached"
        bar.show(busy)
        assert " 0 req/min" in str(bar.render())  # not the 5,000 done before we looked
        later = msgspec.structs.replace(
            busy, now=1002.0, totals=msgspec.structs.replace(busy.totals, finished=5010)
        )
        bar.show(later)
        assert " 10 req/min" in str(bar.render())


async def test_the_status_line_says_when_the_shared_state_is_out_of_reach() -> None:
    from tui_gateway.domain.views import ClusterView
    from tui_gateway.remote.state import empty_snapshot

    class Bar(App[None]):
        def compose(self) -> Any:
            yield StatusBar("http://gw/v1", "k…", id="status")

    async with Bar().run_test() as pilot:
        bar = pilot.app.query_one(StatusBar)
        alone = empty_snapshot(1000.0)
        bar.show(alone)
        assert "cluster" not in str(bar.render())  # no [cluster]: nothing to say
        down = ClusterView(url="redis://127.0.0.1:6379", connected=False, last_error="refused")
        bar.show(msgspec.structs.replace(alone, cluster=down))
        assert "cluster: local only (Redis unreachable)" in str(bar.render())
        up = msgspec.structs.replace(down, connected=True)
        bar.show(msgspec.structs.replace(alone, cluster=up))
        assert "cluster" not in str(bar.render())
