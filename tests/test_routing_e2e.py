"""The routing brain through real sockets: stickiness, cooldowns, bans, chain order, restarts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from scripts.mock_upstream import RECEIVED
from tests.conftest import GatewayFactory
from tests.factories import API_KEY, make_settings, model, start_gateway
from tui_gateway.server import Gateway

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def ask(first: str, *later: str) -> list[dict[str, str]]:
    messages = [{"role": "user", "content": first}]
    for text in later:
        messages += [{"role": "assistant", "content": "ok"}, {"role": "user", "content": text}]
    return messages


async def chat(
    gateway: Gateway, messages: list[dict[str, str]], model: str = "auto"
) -> tuple[int, str]:
    """Send one request; returns (status, the X-Gateway-Model that served it)."""
    async with aiohttp.ClientSession(headers=AUTH) as session:
        async with session.post(
            gateway.base_url + "/chat/completions", json={"model": model, "messages": messages}
        ) as resp:
            await resp.read()
            return resp.status, resp.headers.get("X-Gateway-Model", "")


async def admin(gateway: Gateway, method: str, path: str, body: Any = None) -> Any:
    async with aiohttp.ClientSession(headers=AUTH) as session:
        url = gateway.base_url.removesuffix("/v1") + path
        async with session.request(method, url, json=body) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()


def received(mock_upstream: Any) -> Counter[str]:
    return Counter(r.model for r in mock_upstream.app[RECEIVED])


def two_providers(mock_url: str, *, flaky_protection: str = "provider-ban") -> list[dict[str, Any]]:
    return [
        {
            "name": "flaky",
            "kind": "openai",
            "base_url": mock_url,
            "api_keys": ["f"],
            "protection": flaky_protection,
        },
        {"name": "other", "kind": "openai", "base_url": mock_url, "api_keys": ["o"]},
    ]


async def test_a_conversation_stays_on_one_model_across_turns(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    models = [model("mock", f"ok:text=m{n}") for n in range(4)]
    gateway = await gateway_factory(
        make_settings(mock_url, models, routing={"strategy": "thompson", "seed": 3})
    )
    served = {(await chat(gateway, ask("fix my parser", *["more"] * turn)))[1] for turn in range(5)}
    assert len(served) == 1
    sticky = (await admin(gateway, "GET", "/gateway/state"))["sticky"]
    assert [s["model"] for s in sticky] == list(served) and sticky[0]["turns"] == 5


async def test_after_a_500_other_conversations_skip_that_model_while_it_cools(
    gateway_factory: GatewayFactory, mock_url: str, mock_upstream: Any
) -> None:
    models = [model("mock", "error-500"), model("mock", "ok:text=b")]
    gateway = await gateway_factory(
        make_settings(mock_url, models, routing={"strategy": "ordered"})
    )
    assert await chat(gateway, ask("first conversation")) == (200, "mock/ok:text=b")
    assert await chat(gateway, ask("second conversation")) == (200, "mock/ok:text=b")
    assert received(mock_upstream)["error-500"] == 1
    [cooldown] = (await admin(gateway, "GET", "/gateway/state"))["cooldowns"]
    assert cooldown["model"] == "mock/error-500" and cooldown["reason"] == "5xx"
    await admin(gateway, "DELETE", "/gateway/cooldowns")
    await chat(gateway, ask("third conversation"))
    assert received(mock_upstream)["error-500"] == 2  # tried again once its cooldown ended


async def test_provider_ban_excludes_the_provider_for_that_conversation_only(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    models = [model("flaky", "error-500"), model("flaky", "ok:text=f"), model("other", "ok:text=o")]
    settings = make_settings(
        providers=two_providers(mock_url), models=models, routing={"strategy": "ordered"}
    )
    gateway = await gateway_factory(settings)
    assert await chat(gateway, ask("conversation one")) == (200, "other/ok:text=o")
    assert await chat(gateway, ask("conversation two")) == (200, "flaky/ok:text=f")
    sessions = {s["preview"]: s for s in (await admin(gateway, "GET", "/gateway/state"))["sticky"]}
    assert list(sessions["conversation one"]["banned"]) == ["flaky"]
    assert sessions["conversation two"]["banned"] == {}
    await admin(gateway, "DELETE", f"/gateway/sessions/{sessions['conversation one']['key']}")
    await admin(gateway, "DELETE", "/gateway/cooldowns")


async def test_model_skip_only_skips_the_failing_model(
    gateway_factory: GatewayFactory, mock_url: str
) -> None:
    models = [model("flaky", "error-500"), model("flaky", "ok:text=f"), model("other", "ok:text=o")]
    providers = two_providers(mock_url, flaky_protection="model-skip")
    gateway = await gateway_factory(
        make_settings(providers=providers, models=models, routing={"strategy": "ordered"})
    )
    assert await chat(gateway, ask("conversation one")) == (200, "flaky/ok:text=f")


async def test_preferred_model_gets_one_retry_after_a_first_5xx(
    gateway_factory: GatewayFactory, mock_url: str, mock_upstream: Any
) -> None:
    models = [model("mock", "error-500"), model("mock", "ok:text=b")]
    gateway = await gateway_factory(
        make_settings(mock_url, models, routing={"strategy": "ordered"})
    )
    assert await chat(gateway, ask("hi"), model="mock/error-500") == (200, "mock/ok:text=b")
    assert received(mock_upstream)["error-500"] == 2


async def test_short_retry_after_on_the_preferred_model_is_waited_out(
    gateway_factory: GatewayFactory, mock_url: str, mock_upstream: Any
) -> None:
    models = [
        model("mock", "error-429:retry_after=0"),
        model("mock", "error-429:retry_after=30"),
        model("mock", "ok"),
    ]
    gateway = await gateway_factory(
        make_settings(mock_url, models, routing={"strategy": "ordered"})
    )
    await chat(gateway, ask("a"), model="mock/error-429:retry_after=0")
    assert received(mock_upstream)["error-429:retry_after=0"] == 2  # waited 0 s, retried it
    await chat(gateway, ask("b"), model="mock/error-429:retry_after=30")
    assert received(mock_upstream)["error-429:retry_after=30"] == 1  # too long: fell over at once


async def test_a_rate_limited_key_gives_way_to_another_key_of_the_provider(
    gateway_factory: GatewayFactory, mock_url: str, mock_upstream: Any
) -> None:
    providers = [{"name": "mock", "kind": "openai", "base_url": mock_url, "api_keys": ["a", "b"]}]
    models = [model("mock", "error-429"), model("mock", "ok")]
    gateway = await gateway_factory(
        make_settings(providers=providers, models=models, routing={"strategy": "ordered"})
    )
    assert await chat(gateway, ask("hi")) == (200, "mock/ok")
    tried = [(r.model, r.headers["Authorization"]) for r in mock_upstream.app[RECEIVED]]
    assert tried[:2] == [("error-429", "Bearer a"), ("error-429", "Bearer b")]
    cooling = (await admin(gateway, "GET", "/gateway/state"))["cooldowns"]
    assert sorted(c["key_id"] for c in cooling) == ["mock#1", "mock#2"]


async def test_never_zero_candidates_tries_the_model_that_cools_first(
    gateway_factory: GatewayFactory, mock_url: str, mock_upstream: Any
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "error-503")]))
    assert (await chat(gateway, ask("one")))[0] == 502
    assert (await chat(gateway, ask("two")))[0] == 502
    assert received(mock_upstream)["error-503"] == 2  # cooling, but the only one: tried anyway


async def test_moving_a_model_to_the_head_shifts_traffic_toward_it(
    gateway_factory: GatewayFactory,
) -> None:
    providers = [{"name": "sim", "kind": "simulated"}]
    fast = {"first_token_ms": 0, "tokens_per_s": 10000, "reply_tokens": 3}
    models = [model("sim", name, simulate=fast) for name in ("a", "b", "c", "d")]
    gateway = await gateway_factory(
        make_settings(
            providers=providers, models=models, routing={"strategy": "thompson", "seed": 7}
        )
    )

    async def shares(n: int, tag: str) -> Counter[str]:
        return Counter([(await chat(gateway, ask(f"{tag} question {i}")))[1] for i in range(n)])

    before = await shares(200, "before")
    await admin(gateway, "POST", "/gateway/models/sim/d/move", {"position": 0})
    after = await shares(200, "after")
    # The head of the chain is favoured, though a model with a longer good record keeps its
    # share: the posteriors still count.
    assert after["sim/d"] > before["sim/d"] + 20, (before, after)
    # Moving d up does not starve the model with the longest good record.
    leader = before.most_common(1)[0][0]
    assert leader != "sim/d" and after[leader] > 0, (before, after)


async def test_admin_changes_survive_a_restart(tmp_path: Path, mock_url: str) -> None:
    providers = two_providers(mock_url)
    models = [model("flaky", "x"), model("flaky", "y"), model("other", "z")]
    settings = make_settings(providers=providers, models=models)
    db = tmp_path / "restart.db"
    first = await start_gateway(settings, db)
    await admin(first, "POST", "/gateway/models/flaky/y/move", {"delta": -1})
    await admin(first, "POST", "/gateway/models/other/z/enabled", {"enabled": False})
    await admin(first, "POST", "/gateway/models/flaky/x/ban")
    await admin(first, "POST", "/gateway/providers/other/ban")
    await admin(first, "POST", "/gateway/providers/flaky/protection", {"protection": "off"})
    await first.stop()
    second = await start_gateway(settings, db)
    try:
        state = await admin(second, "GET", "/gateway/state")
        balanced = state["pools"]["balanced"]
        assert [m["model"] for m in balanced] == ["flaky/y", "flaky/x", "other/z"]
        assert [m["enabled"] for m in balanced] == [True, True, False]
        assert state["bans"] == {"models": ["flaky/x"], "providers": ["other"]}
        assert state["protection"]["flaky"] == "off"
    finally:
        await second.stop()


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/gateway/models/nope/x/ban", None, 404),
        ("POST", "/gateway/providers/nope/ban", None, 404),
        ("POST", "/gateway/models/mock/ok/move", {"delta": "up"}, 400),
        ("POST", "/gateway/models/mock/ok/enabled", {"enabled": "no"}, 400),
        ("POST", "/gateway/providers/mock/protection", {"protection": "max"}, 400),
        ("DELETE", "/gateway/sessions/unknown", None, 404),
    ],
)
async def test_admin_mistakes_are_clear_errors(
    gateway_factory: GatewayFactory, mock_url: str, method: str, path: str, body: Any, status: int
) -> None:
    gateway = await gateway_factory(make_settings(mock_url, [model("mock", "ok")]))
    async with aiohttp.ClientSession(headers=AUTH) as session:
        url = gateway.base_url.removesuffix("/v1") + path
        async with session.request(method, url, json=body) as resp:
            assert resp.status == status
            assert set((await resp.json())["error"]) == {"message", "type", "param", "code"}
