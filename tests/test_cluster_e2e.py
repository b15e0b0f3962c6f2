"""Several gateways, one shared state (issue 12): two real gateways on one real redis-server.

Each test starts its own `redis-server` (tests/redis_server.py) and two gateways with the same
config and `[cluster] redis_url`; what one learns or is told, the other knows within a second.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable, Iterable
from typing import Any

import pytest
import redis.asyncio
from aiohttp.test_utils import TestServer

from tests.conftest import GatewayFactory, SdkFactory
from tests.factories import make_settings, model
from tests.logged import logged
from tests.redis_server import RedisServer
from tests.test_continuation_e2e import FULL, TIMERS, streamed, styles
from tests.test_routing_e2e import admin, ask, chat, received
from tui_gateway.cluster.echoes import Echoes
from tui_gateway.cluster.layout import Layout
from tui_gateway.domain.changes import Change
from tui_gateway.domain.events import ClusterHealthChanged, ControlsChanged, Event
from tui_gateway.server import Gateway


async def eventually(check: Callable[[], bool], *, within_s: float = 1.0) -> None:
    """Wait until `check()` holds, for at most `within_s` (an assertion error past it)."""
    try:
        async with asyncio.timeout(within_s):
            while not check():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"not true within {within_s} s") from None


async def readyz(gateway: Gateway) -> tuple[int, dict[str, str]]:
    import aiohttp

    async with aiohttp.ClientSession() as http:  # no key: a supervisor's probe
        async with http.get(gateway.base_url.removesuffix("/v1") + "/readyz") as response:
            return response.status, await response.json()


async def pair(
    gateway_factory: GatewayFactory, redis: RedisServer, mock_url: str,
    models: list[dict[str, Any]], **sections: dict[str, Any],
) -> tuple[Gateway, Gateway]:  # fmt: skip
    settings = make_settings(mock_url, models, cluster={"redis_url": redis.url}, **sections)
    a = await gateway_factory(settings)
    b = await gateway_factory(settings)
    assert a.state.cluster.connected and b.state.cluster.connected
    return a, b


async def test_a_model_failing_on_one_gateway_is_not_tried_by_the_other(
    redis_server: RedisServer, gateway_factory: GatewayFactory, mock_url: str,
    mock_upstream: TestServer,
) -> None:  # fmt: skip
    a, b = await pair(
        gateway_factory, redis_server, mock_url,
        [model("mock", "error-500"), model("mock", "ok:text=b")],
    )  # fmt: skip
    assert await chat(a, ask("first conversation")) == (200, "mock/ok:text=b")
    assert received(mock_upstream)["error-500"] == 1
    await eventually(lambda: b.state.cooldowns.is_cooling("mock/error-500", b.state.clock()))
    assert await chat(b, ask("second conversation")) == (200, "mock/ok:text=b")
    assert received(mock_upstream)["error-500"] == 1  # B never sent it the request
    [row] = await logged(b.request_log)
    assert [attempt.model for attempt in row.attempts] == ["mock/ok:text=b"]
    # What A learned of both models counts in B's posteriors too (hourly buckets in Redis).
    await eventually(lambda: b.state.book.posterior("mock/error-500").failures == 1)
    state = await admin(b, "GET", "/gateway/state")
    assert state["cluster"] == {"url": redis_server.url, "connected": True, "last_error": None}
    assert [c["model"] for c in state["cooldowns"]] == ["mock/error-500"]


async def test_turn_two_on_the_other_gateway_stays_on_the_model_of_turn_one(
    redis_server: RedisServer, gateway_factory: GatewayFactory, mock_url: str, sdk: SdkFactory
) -> None:
    a, b = await pair(
        gateway_factory, redis_server, mock_url, [model("mock", f"ok:text=m{n}") for n in range(3)]
    )
    first = [{"role": "user", "content": "fix my parser"}]
    turn1 = await sdk(a).chat.completions.with_raw_response.create(model="auto", messages=first)
    assert turn1.headers["X-Gateway-Model"] == "mock/ok:text=m0"
    # Now B's own routing would pick m1 first: only the shared session keeps the turn on m0.
    await admin(b, "POST", "/gateway/models/mock/ok:text=m0/move", {"delta": 2})
    await eventually(lambda: any(s.model for s in b.state.sessions.entries(b.state.clock())))
    reply = turn1.parse().choices[0].message.content
    later = [*first, {"role": "assistant", "content": reply}, {"role": "user", "content": "go on"}]
    turn2 = await sdk(b).chat.completions.with_raw_response.create(model="auto", messages=later)
    assert turn2.headers["X-Gateway-Model"] == "mock/ok:text=m0"
    new = await sdk(b).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "another conversation"}]
    )
    assert new.headers["X-Gateway-Model"] == "mock/ok:text=m1"
    await eventually(  # B pins its turn as the reply ends, and A hears of it
        lambda: [s.turns for s in a.state.sessions.entries(a.state.clock())] == [1, 2]
    )


async def test_a_ban_and_a_new_pool_order_reach_the_other_gateway_within_a_second(
    redis_server: RedisServer, gateway_factory: GatewayFactory, mock_url: str
) -> None:
    a, b = await pair(
        gateway_factory, redis_server, mock_url,
        [model("mock", "ok:text=a"), model("mock", "ok:text=b"), model("mock", "ok:text=c")],
    )  # fmt: skip
    lines: list[str] = []
    a.state.subscribe(lambda event: lines.append(event.text))
    await admin(b, "POST", "/gateway/models/mock/ok:text=a/ban")
    await eventually(lambda: "mock/ok:text=a" in a.state.controls.banned_models)
    assert "mock/ok:text=a banned (on another gateway)" in lines
    assert await chat(a, ask("hello")) == (200, "mock/ok:text=b")
    await admin(a, "POST", "/gateway/models/mock/ok:text=c/move", {"delta": -2})
    chain = ["mock/ok:text=c", "mock/ok:text=a", "mock/ok:text=b"]
    await eventually(lambda: b.state.chain("balanced") == chain)
    await admin(a, "DELETE", "/gateway/models/mock/ok:text=a/ban")
    await eventually(lambda: not b.state.controls.banned_models)
    assert (await admin(b, "GET", "/gateway/state"))["bans"]["models"] == []


async def test_keys_pressed_on_two_gateways_at_once_leave_both_on_the_same_controls(
    redis_server: RedisServer, gateway_factory: GatewayFactory, mock_url: str
) -> None:
    """Each gateway sends its whole picture of the controls: two sent at once crossed, each
    gateway took the other's and kept it, and they disagreed until the next key. The feed's
    order decides now: the picture that went out last holds on both, and in the store."""
    a, b = await pair(
        gateway_factory, redis_server, mock_url,
        [model("mock", "ok:text=a"), model("mock", "ok:text=b"), model("mock", "ok:text=c")],
    )  # fmt: skip
    a.state.ban_model("mock/ok:text=a")  # in the same turn of the loop: neither has heard
    b.state.move_in_pool("mock/ok:text=c", -2)  # of the other's change when it sends its own
    await eventually(lambda: a.state.controls.saved() == b.state.controls.saved(), within_s=3)
    await asyncio.sleep(0.3)  # and it stays so: nothing is still on its way
    assert a.state.controls.saved() == b.state.controls.saved()
    # What a third gateway would load from the store is the same picture.
    store = redis.asyncio.from_url(redis_server.url)
    stored = json.loads(await store.get(Layout("tui-gateway").key("controls", "all")))
    await store.aclose()
    assert stored["picture"] == a.state.controls.saved()


async def test_a_cooldown_started_on_one_gateway_as_the_other_clears_it_ends_alike_on_both(
    redis_server: RedisServer, gateway_factory: GatewayFactory, mock_url: str
) -> None:
    """The same crossing for one key: A's cooldown and B's clear went out at once, and A kept
    B's clear while B kept A's cooldown, a model skipped on one gateway and not the other."""
    a, b = await pair(gateway_factory, redis_server, mock_url, [model("mock", "ok:text=a")])
    key, now = "mock/ok:text=a", a.state.clock()
    a.state.cooldowns.record_failure(model=key, provider="mock", kind="5xx", key_id=None, now=now)
    await eventually(lambda: b.state.cooldowns.is_cooling(key, now))

    def cooling() -> tuple[bool, bool]:
        return a.state.cooldowns.is_cooling(key, now), b.state.cooldowns.is_cooling(key, now)

    a.state.cooldowns.record_failure(model=key, provider="mock", kind="5xx", key_id=None, now=now)
    b.state.clear_cooldowns()  # in the same turn of the loop: they cross
    await eventually(lambda: len(set(cooling())) == 1, within_s=3)
    await asyncio.sleep(0.3)  # and it stays so
    assert len(set(cooling())) == 1


async def test_a_prefill_refusal_on_one_gateway_is_remembered_by_the_other(
    redis_server: RedisServer, gateway_factory: GatewayFactory, mock_url: str,
    mock_upstream: TestServer, sdk: SdkFactory,
) -> None:  # fmt: skip
    a, b = await pair(
        gateway_factory, redis_server, mock_url,
        [model("mock", "cut:chunks=3"), model("mock", "ok:prefill=refuse")], streaming=TIMERS,
    )  # fmt: skip
    await streamed(a, sdk)
    assert styles(mock_upstream) == [None, "prefill", "instruct"]
    # The conversation is pinned on B too; cleared (from B, for both), B's turn starts afresh.
    await eventually(lambda: any(s.model for s in b.state.sessions.entries(b.state.clock())))
    await admin(b, "DELETE", "/gateway/sessions")
    await eventually(lambda: not a.state.sessions.entries(a.state.clock()))
    await eventually(lambda: "mock/ok:prefill=refuse" in b.state.learner.prefill_refused)
    await streamed(b, sdk)
    assert styles(mock_upstream)[3:] == [None, "instruct"]  # B does not try the prefill again


async def test_redis_killed_mid_traffic_loses_no_request_and_the_gateways_resync(
    redis_server: RedisServer, gateway_factory: GatewayFactory, mock_url: str
) -> None:
    a, b = await pair(
        gateway_factory, redis_server, mock_url,
        [model("mock", "ok:text=a,delay_ms=5"), model("mock", "ok:text=b,delay_ms=5")],
    )  # fmt: skip
    said: list[Event] = []
    a.state.subscribe(said.append, kinds=(ClusterHealthChanged,))
    statuses: list[int] = []
    stop = asyncio.Event()

    async def traffic(gateway: Gateway, name: str) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            statuses.append((await chat(gateway, ask(f"{name} conversation {n}")))[0])

    clients = [asyncio.create_task(traffic(g, f"{g.port}-{i}")) for g in (a, b) for i in range(4)]
    await eventually(lambda: len(statuses) >= 40, within_s=5)
    redis_server.kill()
    await eventually(lambda: not a.state.cluster.connected and not b.state.cluster.connected)
    during = len(statuses)
    await eventually(lambda: len(statuses) >= during + 40, within_s=5)  # traffic goes on
    assert await readyz(a) == (200, {"status": "ready", "cluster": "unreachable"})
    await admin(a, "POST", "/gateway/models/mock/ok:text=a,delay_ms=5/ban")  # Redis is away
    await redis_server.start()  # same port, empty: it kept nothing
    await eventually(lambda: a.state.cluster.connected and b.state.cluster.connected, within_s=5)
    await eventually(lambda: "mock/ok:text=a,delay_ms=5" in b.state.controls.banned_models)
    assert await readyz(a) == (200, {"status": "ready", "cluster": "connected"})
    stop.set()
    await asyncio.gather(*clients)
    assert statuses and set(statuses) == {200}  # every request answered, none failed
    texts = [e.text for e in said]
    assert texts[0].startswith("cluster: redis unreachable (") and texts[0].endswith(
        "running on local state"
    )
    assert texts[-1] == f"cluster: redis at {redis_server.url} connected, shared state in sync"
    assert a.state.cluster.last_error is not None
    # After the resync a new cooldown still travels.
    a.state.cooldowns.record_failure(
        model="mock/ok:text=b,delay_ms=5", provider="mock", kind="5xx", key_id=None,
        now=a.state.clock(),
    )  # fmt: skip
    await eventually(
        lambda: b.state.cooldowns.is_cooling("mock/ok:text=b,delay_ms=5", b.state.clock())
    )


def test_without_a_cluster_redis_is_not_imported(tmp_path: Any) -> None:
    """A plain start (state, app, log, one request) leaves `redis` out of `sys.modules`."""
    code = f"""
import asyncio, sys
from pathlib import Path
from tests.factories import make_settings, model, start_gateway
from tui_gateway.config import settings_from_dict

async def main():
    settings = settings_from_dict({{
        "server": {{"api_key": "k", "port": 0}},
        "providers": [{{"name": "sim", "kind": "simulated"}}],
        "models": [{{"provider": "sim", "id": "quick"}}],
    }})
    gateway = await start_gateway(settings, Path({str(tmp_path / "log.db")!r}))
    await gateway.stop()
    assert "redis" not in sys.modules, "redis was imported"
    print("ok")

asyncio.run(main())
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd="."
    )
    assert done.stdout.strip() == "ok", done.stderr


async def test_a_ban_on_the_other_gateway_moves_a_request_in_flight_on_at_once(
    redis_server: RedisServer, gateway_factory: GatewayFactory, mock_url: str, sdk: SdkFactory
) -> None:
    long_timers = {"first_byte_timeout_s": 30, "stall_timeout_s": 30, "heartbeat_interval_s": 15}
    a, b = await pair(
        gateway_factory, redis_server, mock_url,
        [model("mock", "stall-after-first:after=3"), model("mock", "ok")],
        streaming=long_timers,
    )  # fmt: skip
    answer = asyncio.create_task(streamed(a, sdk))
    await eventually(lambda: any(f.chunks >= 3 for f in a.state.active.values()), within_s=5)
    await admin(b, "POST", "/gateway/models/mock/stall-after-first:after=3/ban")
    async with asyncio.timeout(5):  # well before A's own 30 s stall timer
        text, _ = await answer
    assert text == FULL  # continued on the other model, nothing twice
    [row] = await logged(a.request_log)
    assert [(x.model, x.error_kind) for x in row.attempts] == [
        ("mock/stall-after-first:after=3", "skipped"),
        ("mock/ok", None),
    ]


async def test_a_gateway_cut_off_learns_on_its_return_what_the_others_ended_meanwhile(
    redis_server: RedisServer,
) -> None:
    """Redis stays up; only gateway A is away (its mirror stopped) while B clears a session and
    a cooldown. B's clearing went out on the feed A did not hear: A's resync must see it."""
    from tui_gateway.cluster import Mirror
    from tui_gateway.cluster.layout import Layout
    from tui_gateway.config_cluster import ClusterSettings
    from tui_gateway.domain.catalog import Target
    from tui_gateway.domain.state import GatewayState

    settings = make_settings(
        providers=[{"name": "sim", "kind": "simulated"}],
        models=[model("sim", "x"), model("sim", "y")],
        cluster={"redis_url": redis_server.url},
    )
    a, b = GatewayState(settings), GatewayState(settings)
    cluster: ClusterSettings = settings.cluster
    mirrors = {"a": Mirror(a, cluster), "b": Mirror(b, cluster)}
    for mirror in mirrors.values():
        await mirror.start()
    try:
        target = Target(pool="balanced")
        a.open_session(("s1", "x-session-id"), target, [])
        a.sessions.pin("s1", "sim/x", None, a.clock())
        a.cooldowns.record_failure(model="sim/y", provider="sim", kind="5xx", key_id=None,
                                   now=a.clock())  # fmt: skip
        await eventually(lambda: b.sessions.get("s1", b.clock()) is not None)
        await eventually(lambda: b.cooldowns.is_cooling("sim/y", b.clock()))
        await mirrors["a"].close()  # A is cut off; Redis and B go on
        assert b.clear_sticky("s1") and b.clear_cooldowns("sim/y") == 1
        await gone_from_redis(redis_server, Layout(cluster.prefix).key("session", "s1"))
        assert a.sessions.get("s1", a.clock()) is not None  # A did not hear it
        mirrors["a"] = Mirror(a, cluster)
        await mirrors["a"].start()  # back: flush, load, and drop what the store no longer has
        assert a.sessions.get("s1", a.clock()) is None
        assert not a.cooldowns.is_cooling("sim/y", a.clock())
    finally:
        for mirror in mirrors.values():
            await mirror.close()


async def gone_from_redis(server: RedisServer, name: str) -> None:
    """Wait (at most a second) until the shared store no longer holds `name`."""
    import redis.asyncio as redis

    client = redis.Redis.from_url(server.url)
    try:
        async with asyncio.timeout(1):
            while await client.exists(name):
                await asyncio.sleep(0.01)
    finally:
        await client.aclose()


async def test_the_echo_of_a_ban_lifted_meanwhile_does_not_bring_it_back(
    redis_server: RedisServer, gateway_factory: GatewayFactory, mock_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A ban's echo came back after the user lifted it here but before the lift went out (it
    waits for the next batch); taking the ban again showed the model banned for that batch."""
    key = "mock/ok:text=a"
    settings = make_settings(
        mock_url, [model("mock", "ok:text=a")], cluster={"redis_url": redis_server.url}
    )
    gateway = await gateway_factory(settings)
    sending = Echoes.sending

    def then_lift(echoes: Echoes, changes: Iterable[Change]) -> None:
        sending(echoes, changes)
        if gateway.state.controls.banned_models:  # the ban is going out: lift it at once
            gateway.state.unban_model(key)

    monkeypatch.setattr(Echoes, "sending", then_lift)
    banned: list[bool] = []  # at each change of the controls, whether the model is banned
    gateway.state.bus.subscribe(
        lambda _: banned.append(key in gateway.state.controls.banned_models),
        kinds=[ControlsChanged],
    )
    gateway.state.ban_model(key)
    await asyncio.sleep(0.3)  # the ban goes out, its echo, the lift goes out, its echo
    assert banned[:2] == [True, False], banned
    assert not any(banned[2:]), f"the lifted ban came back: {banned}"
