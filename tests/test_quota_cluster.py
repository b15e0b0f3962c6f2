"""Quotas shared by several gateways through Redis (issue 13, `[cluster]`): two real gateways on
one real redis-server count one key's quota together, and a gateway that joins later loads it."""

from __future__ import annotations

from typing import Any

import redis.asyncio as redis
from aiohttp.test_utils import TestServer

from tests.conftest import GatewayFactory
from tests.factories import make_settings, model
from tests.redis_server import RedisServer
from tests.test_cluster_e2e import eventually
from tests.test_quotas_e2e import FIRST, SECOND, ask, client, received
from tui_gateway.config import Settings
from tui_gateway.server import Gateway


def shared(mock_url: str, redis_url: str, *, first: str = FIRST, rpm: int = 5) -> Settings:
    provider = {"name": "mock", "kind": "openai", "base_url": mock_url, "api_keys": ["k1"]}
    models = [model("mock", first, limits={"rpm": rpm}), model("mock", SECOND)]
    return make_settings(mock_url, models, providers=[provider], cluster={"redis_url": redis_url})


def used(gateway: Gateway, name: str = f"mock/{FIRST}") -> int:
    view = gateway.state.quotas.view("mock#1", name, gateway.state.clock())
    assert view is not None
    return view.windows[0].used


async def serve(gateway: Gateway, n: int) -> list[str]:
    sdk = client(gateway)
    try:
        return [await ask(sdk, i) for i in range(n)]
    finally:
        await sdk.close()


async def stored_requests(redis_url: str) -> int:
    """The requests the shared store counted for the key, over all its minute buckets."""
    store: Any = redis.Redis.from_url(redis_url)
    try:
        names = [n async for n in store.scan_iter(match="tui-gateway:quota_use:*|minute|*")]
        return sum([int(await store.hget(n, "r") or 0) for n in names])
    finally:
        await store.aclose()


async def test_two_gateways_share_one_keys_quota(
    redis_server: RedisServer, gateway_factory: GatewayFactory, mock_url: str,
    mock_upstream: TestServer,
) -> None:  # fmt: skip
    settings = shared(mock_url, redis_server.url)
    a = await gateway_factory(settings)
    b = await gateway_factory(settings)
    assert await serve(a, 3) == [FIRST] * 3
    await eventually(lambda: used(b) == 3)
    # B knows A used 3 of the 5: it sends the limited model 2 more, the rest go on.
    assert await serve(b, 4) == [FIRST] * 2 + [SECOND] * 2
    assert received(mock_upstream).count(FIRST) == 5, "5 a minute, across both gateways"
    await eventually(lambda: used(a) == 5)
    assert await serve(a, 1) == [SECOND]
    assert await stored_requests(redis_server.url) == 5  # written: each gateway waited for it
    # A gateway that starts later, with a log of its own, loads the shared count.
    c = await gateway_factory(settings)
    assert used(c) == 5
    assert await serve(c, 1) == [SECOND]


async def test_a_limit_lowered_by_a_429_on_one_gateway_holds_on_the_other(
    redis_server: RedisServer, gateway_factory: GatewayFactory, mock_url: str,
    mock_upstream: TestServer,
) -> None:  # fmt: skip
    refusing = "error-429:retry_after=30"
    settings = shared(mock_url, redis_server.url, first=refusing)
    a = await gateway_factory(settings)
    b = await gateway_factory(settings)
    assert await serve(a, 1) == [SECOND]

    def lowered_on_b() -> bool:
        view = b.state.quotas.view("mock#1", f"mock/{refusing}", b.state.clock())
        return view is not None and view.windows[0].lowered and view.windows[0].limit == 1

    await eventually(lowered_on_b)


def test_counts_from_elsewhere_land_in_their_bucket_and_leave_with_it() -> None:
    from tui_gateway.domain.quota_windows import Rolling

    minute = Rolling(60.0, 1.0)
    minute.add(110.0, 1, 10)
    minute.absorb(105.0, 2, 20, now=110.0)  # older than what is held: kept in order
    assert minute.used(110.0) == (3, 30)
    assert minute.used(165.5) == (1, 10), "the bucket at 105 left at 165, the one at 110 not"
    minute.absorb(100.0, 5, 5, now=165.5)  # already out of its window: nothing to add
    assert minute.used(165.5) == (1, 10)


def test_queued_counts_of_one_bucket_are_summed_into_one_increment() -> None:
    from tui_gateway.cluster.pending import Pending
    from tui_gateway.domain.changes import Change
    from tui_gateway.domain.quotas import Quotas

    pending = Pending()
    seen: list[Change] = []
    quotas = Quotas({"p/m": _policy()})
    quotas.listener = seen.append
    handle = quotas.reserve("p#1", "p/m", 1000.0, 40)
    quotas.settle(handle, 55)
    for change in seen:
        pending.add(change)
    uses = {c.key: c.value for c in pending.take().uses}
    assert {k: (v["r"], v["t"]) for k, v in uses.items()} == {
        "p#1|p/m|minute|1000": (1, 55),
        "p#1|p/m|day|1020": (1, 55),
    }
    assert uses["p#1|p/m|minute|1000"]["ttl"] == 60.0


def _policy() -> Any:
    from tui_gateway.domain.quotas import Limits, QuotaPolicy

    return QuotaPolicy(Limits(rpm=5, tpd=1000), provider="p")
