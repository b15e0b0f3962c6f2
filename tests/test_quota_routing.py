"""Routing under quotas (`limits`, issue 13), on a fake clock: what is planned, which key goes.

A model whose every key is at one of its limits is left out as a cooling one is, and said so;
a key at its limit is passed over for the next; with nothing else left the model that frees
first is planned, marked `quota`. A 429 from a key with limits cools the key but charges the
model's posterior nothing.
"""

from __future__ import annotations

import random
from typing import Any

from tests.factories import FakeClock, make_settings, model
from tui_gateway.domain.catalog import Target
from tui_gateway.domain.errors import ErrorKind, UpstreamError
from tui_gateway.domain.planning import plan_candidates
from tui_gateway.domain.protection import decide
from tui_gateway.domain.routing import Candidate
from tui_gateway.domain.state import GatewayState

KEYS = {"name": "c", "kind": "openai", "base_url": "http://x", "api_keys": ["k1", "k2"]}
FREE = {"name": "f", "kind": "simulated"}
SLOW_DOWN = UpstreamError("slow down", status=429, kind=ErrorKind.QUOTA, retry_after_s=30.0)


def make_state(
    *models: dict[str, Any], providers: list[dict[str, Any]] | None = None
) -> GatewayState:
    settings = make_settings(providers=providers or [KEYS, FREE], models=list(models))
    return GatewayState(settings, clock=FakeClock(), rng=random.Random(5))


def plan(state: GatewayState, tokens: int = 0) -> list[Candidate]:
    return plan_candidates(
        state.router, Target("balanced", None), session=None, rng=state.rng, max_attempts=5,
        tokens=tokens,
    )  # fmt: skip


def use(state: GatewayState, key_id: str, model_key: str, times: int = 1, tokens: int = 0) -> None:
    for _ in range(times):
        state.reserve_quota(key_id, model_key, tokens)


def test_a_model_at_its_limit_on_every_key_is_left_out_and_said_so() -> None:
    state = make_state(model("c", "1", limits={"rpm": 2}), model("f", "2"))
    assert [c.model for c in plan(state)] == ["c/1", "f/2"]
    use(state, "c#1", "c/1", 2)
    assert [c.model for c in plan(state)] == ["c/1", "f/2"]  # c#2 still has room
    use(state, "c#2", "c/1", 2)
    flow = state.begin_request(session="s", requested_model="auto", stream=False)
    head, rest = state.plan(state.catalog.resolve("auto"), None, flow)
    assert [c.model for c in head + rest()] == ["f/2"]
    [note] = flow.passed_over
    assert note.startswith("c/1: at its quota (rpm 2/2 on c#1, rpm 2/2 on c#2); frees in 6")


def test_the_key_at_its_limit_is_passed_over_for_the_next() -> None:
    state = make_state(model("c", "1", limits={"rpm": 1}))
    use(state, "c#1", "c/1")
    assert state.pick_key("c/1") == ("c#2", "k2")
    assert state.pick_key("c/1") == ("c#2", "k2")
    assert state.other_key_free("c/1", "c#1")
    use(state, "c#2", "c/1")
    assert state.pick_key("c/1") is None
    assert not state.other_key_free("c/1", "c#1")


def test_a_token_limit_counts_the_request_estimate() -> None:
    state = make_state(model("c", "1", limits={"tpm": 1000}), model("f", "2"))
    use(state, "c#1", "c/1", tokens=900)
    use(state, "c#2", "c/1", tokens=900)
    assert [c.model for c in plan(state, tokens=50)] == ["c/1", "f/2"]
    assert [c.model for c in plan(state, tokens=200)] == ["f/2"]
    assert state.pick_key("c/1", 50) is not None
    assert state.pick_key("c/1", 200) is None


def test_with_nothing_else_left_the_quota_that_frees_first_is_planned() -> None:
    providers = [KEYS, {"name": "d", "kind": "openai", "base_url": "http://y", "api_keys": ["k"]}]
    state = make_state(
        model("c", "1", limits={"rpm": 1}), model("d", "2", limits={"rpm": 1}), providers=providers
    )
    clock: FakeClock = state.clock  # type: ignore[assignment]
    use(state, "d#1", "d/2")
    clock.advance(10)
    use(state, "c#1", "c/1")
    use(state, "c#2", "c/1")
    [candidate] = plan(state)
    assert (candidate.model, candidate.reason) == ("d/2", "quota")
    assert state.available_at("d/2", clock()) < state.available_at("c/1", clock())


def test_a_cooling_model_and_one_at_quota_free_at_whichever_is_later_per_key() -> None:
    state = make_state(model("c", "1", limits={"rpm": 1}))
    clock: FakeClock = state.clock  # type: ignore[assignment]
    now = clock()
    use(state, "c#1", "c/1")  # c#1 frees in about a minute
    state.cooldowns.record_failure(
        model="c/1", provider="c", kind=ErrorKind.RATE_LIMITED, key_id="c#2", now=now,
        retry_after_s=300.0,
    )  # fmt: skip
    frees = state.available_at("c/1", now)
    assert 60 <= frees - now <= 61  # c#1's quota, not c#2's longer cooldown


def test_a_429_on_a_key_with_limits_cools_the_key_and_charges_no_posterior() -> None:
    state = make_state(model("c", "1", limits={"rpm": 10}), model("f", "2"))
    flow = state.begin_request(session="s", requested_model="auto", stream=False)
    state.begin_attempt(flow, model="c/1", provider="c")
    quota = state.reserve_quota("c#1", "c/1", 0)
    state.record_failure(
        flow, flow.attempt_failed(SLOW_DOWN), kind=ErrorKind.QUOTA, key_id="c#1",
        decision=decide("provider-ban", ErrorKind.QUOTA, after_first_byte=False),
        reason="429", retry_after_s=30.0, quota=quota,
    )  # fmt: skip
    assert not state.book.posterior("c/1").seen
    [entry] = state.cooldowns.entries(state.clock())
    assert entry.key_id == "c#1"
    view = state.quotas.view("c#1", "c/1", state.clock())
    assert view is not None
    [rpm] = view.windows
    assert (rpm.used, rpm.limit, rpm.lowered) == (0, 1, True)  # the refused one given back
    assert any("rpm lowered to 1" in d for d in flow.decisions)


def test_without_limits_nothing_of_quotas_is_consulted() -> None:
    state = make_state(model("c", "1"), model("f", "2"))
    assert not state.quotas
    assert state.reserve_quota("c#1", "c/1", 100) is None
    assert [c.model for c in plan(state, tokens=10**9)] == ["c/1", "f/2"]
