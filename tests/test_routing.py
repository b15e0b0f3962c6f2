"""Routing rules with a fake clock and a seeded rng: plan order, exclusions, retries, learning."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.factories import FakeClock, make_settings, model
from tui_gateway.domain.attempts import AttemptPlan
from tui_gateway.domain.catalog import Target
from tui_gateway.domain.errors import ErrorKind, UpstreamError
from tui_gateway.domain.planning import plan_candidates
from tui_gateway.domain.posteriors import Outcome
from tui_gateway.domain.protection import decide
from tui_gateway.domain.routing import Candidate
from tui_gateway.domain.state import GatewayState
from tui_gateway.domain.sticky import SessionEntry

PROVIDERS = [
    {"name": "a", "kind": "simulated", "protection": "provider-ban"},
    {"name": "b", "kind": "simulated", "protection": "model-skip"},
    {"name": "c", "kind": "openai", "base_url": "http://x", "api_keys": ["k1", "k2"]},
]
MODELS = [model("a", "1"), model("a", "2"), model("b", "3"), model("c", "4")]


def make_state(strategy: str = "ordered", **routing: Any) -> GatewayState:
    settings = make_settings(
        providers=PROVIDERS, models=MODELS, routing={"strategy": strategy, **routing}
    )
    return GatewayState(settings, clock=FakeClock(), rng=random.Random(5))


def plan(
    state: GatewayState,
    session: SessionEntry | None = None,
    preferred: str | None = None,
    n: int = 9,
) -> list[Candidate]:
    return plan_candidates(
        state.router,
        Target("balanced", preferred),
        session=session,
        rng=state.rng,
        max_attempts=n,
    )


def models_of(candidates: list[Candidate]) -> list[str]:
    return [c.model for c in candidates]


def open_session(state: GatewayState, key: str = "s1") -> SessionEntry:
    return state.sessions.open(key, mode="auto", preview="hi", now=state.clock())


def fail(state: GatewayState, key: str, kind: ErrorKind, session: str = "s1", **extra: Any) -> None:
    request = state.begin_request(session=session, requested_model="auto", stream=False)
    state.begin_attempt(request, model=key, provider=key.split("/")[0])
    decision = state.decide(key, kind, after_first_byte=False)
    attempt = request.attempt_failed(UpstreamError(str(kind), kind=kind))
    state.record_failure(
        request, attempt, key_id=extra.pop("key_id", f"{key.split('/')[0]}#1"),
        kind=kind, decision=decision, reason=str(kind), **extra,
    )  # fmt: skip


def test_named_then_sticky_then_the_chain() -> None:
    state = make_state()
    session = open_session(state)
    state.sessions.pin("s1", "b/3", "b#1", state.clock())
    candidates = plan(state, session, preferred="c/4")
    assert [(c.model, c.reason) for c in candidates] == [
        ("c/4", "named"),
        ("b/3", "sticky"),
        ("a/1", "pool"),
        ("a/2", "pool"),
    ]
    assert candidates[0].preferred and candidates[1].preferred and not candidates[2].preferred


def test_a_cooling_sticky_model_is_dropped_for_that_request() -> None:
    state = make_state()
    session = open_session(state)
    state.sessions.pin("s1", "b/3", "b#1", state.clock())
    fail(state, "b/3", ErrorKind.SERVER, session="other")
    assert "b/3" not in models_of(plan(state, session))
    state.clock.advance(15.0)  # type: ignore[attr-defined]
    assert models_of(plan(state, session))[0] == "b/3"  # back as soon as the cooldown ends


def test_a_provider_ban_holds_for_its_session_only_and_expires() -> None:
    state = make_state(provider_ban_ttl_s=180)
    mine, theirs = open_session(state, "s1"), open_session(state, "s2")
    fail(state, "a/1", ErrorKind.STALL)
    assert not {"a/1", "a/2"} & set(models_of(plan(state, mine)))
    assert "a/2" in models_of(plan(state, theirs))
    state.clock.advance(181.0)  # type: ignore[attr-defined]
    state.clock.advance(0)  # type: ignore[attr-defined]
    assert "a/2" in models_of(
        plan(state, state.sessions.open("s1", mode="auto", preview="", now=state.clock()))
    )


def test_model_skip_clears_the_sticky_pin_but_bans_nothing() -> None:
    state = make_state()
    session = open_session(state)
    state.sessions.pin("s1", "b/3", "b#1", state.clock())
    fail(state, "b/3", ErrorKind.WRAPPED)
    assert session.model is None
    assert state.sessions.banned_providers("s1", state.clock()) == set()


def test_client_disconnects_and_rejected_requests_teach_nothing() -> None:
    state = make_state()
    open_session(state)
    for kind in (ErrorKind.CLIENT_CLOSED, ErrorKind.SHUTDOWN, ErrorKind.REJECTED):
        fail(state, "a/1", kind)
    assert not state.book.posterior("a/1").seen
    assert state.cooldowns.entries(state.clock()) == []
    assert state.sessions.banned_providers("s1", state.clock()) == set()


def test_a_429_cools_one_key_and_the_other_key_takes_over() -> None:
    state = make_state()
    fail(state, "c/4", ErrorKind.RATE_LIMITED, key_id="c#1", retry_after_s=30.0)
    assert state.other_key_free("c/4", "c#1")
    assert state.pick_key("c/4") == ("c#2", "k2")
    assert state.pick_key("c/4") == ("c#2", "k2")
    assert "c/4" in models_of(plan(state))  # one key left: the model is still a candidate
    fail(state, "c/4", ErrorKind.RATE_LIMITED, key_id="c#2")
    assert "c/4" not in models_of(plan(state))


def test_never_zero_candidates_tries_the_cooldown_that_ends_first() -> None:
    state = make_state()
    for key, kind in (
        ("a/1", ErrorKind.SERVER),
        ("a/2", ErrorKind.SERVER),
        ("b/3", ErrorKind.SERVER),
    ):
        fail(state, key, kind, session="x")
        state.clock.advance(1.0)  # type: ignore[attr-defined]
    state.set_enabled("c/4", False)
    [only] = plan(state)
    assert (only.model, only.reason) == ("a/1", "cooling")


def test_disabled_and_banned_models_are_never_planned_even_when_nothing_else_is_left() -> None:
    state = make_state()
    for key in ("a/1", "a/2", "b/3"):
        state.set_enabled(key, False)
    state.ban_provider("c")
    assert plan(state) == []


@given(
    disabled=st.sets(st.sampled_from([m["provider"] + "/" + m["id"] for m in MODELS])),
    banned=st.sets(st.sampled_from([m["provider"] + "/" + m["id"] for m in MODELS])),
    banned_providers=st.sets(st.sampled_from(["a", "b", "c"])),
    cooling=st.sets(st.sampled_from([m["provider"] + "/" + m["id"] for m in MODELS])),
    strategy=st.sampled_from(["ordered", "thompson"]),
)
def test_a_banned_or_disabled_model_is_never_tried(
    disabled: set[str],
    banned: set[str],
    banned_providers: set[str],
    cooling: set[str],
    strategy: str,
) -> None:
    state = make_state(strategy)
    for key in disabled:
        state.set_enabled(key, False)
    for key in banned:
        state.ban_model(key)
    for provider in banned_providers:
        state.ban_provider(provider)
    for key in cooling:
        fail(state, key, ErrorKind.SERVER, session="x")
    allowed = {
        k for k in state.catalog.models
        if k not in disabled | banned and k.split("/")[0] not in banned_providers
    }  # fmt: skip
    planned = models_of(plan(state))
    assert set(planned) <= allowed
    assert len(planned) == len(set(planned))
    if allowed:
        assert planned, "never zero candidates while an allowed model exists"
        if allowed - cooling:
            assert not set(planned) & cooling


def test_a_new_conversation_steps_around_a_busy_provider_ban_provider() -> None:
    state = make_state()
    busy = state.begin_request(session="other", requested_model="auto", stream=True)
    state.begin_attempt(busy, model="a/1", provider="a")
    fresh = open_session(state, "new")
    assert models_of(plan(state, fresh))[:2] == ["b/3", "c/4"]
    returning = open_session(state, "old")
    returning.turns = 3
    assert models_of(plan(state, returning))[0] == "a/1"  # only new conversations are steered


def test_thompson_prefers_the_healthy_model_and_the_head_of_the_chain() -> None:
    state = make_state("thompson")
    now = state.clock()
    for _ in range(30):
        state.book.record(Outcome("a/1", now, False))
        state.book.record(Outcome("b/3", now, True))
    firsts = Counter(models_of(plan(state))[0] for _ in range(2000))
    assert firsts["b/3"] > firsts["a/2"] > firsts["a/1"]
    before = firsts["c/4"]
    state.move_in_pool("c/4", -9)
    after = Counter(models_of(plan(state))[0] for _ in range(2000))["c/4"]
    assert after > before


def test_each_candidate_carries_the_terms_of_its_score() -> None:
    state = make_state("thompson")
    for candidate in plan(state):
        assert candidate.terms is not None
        assert 0.0 <= candidate.terms.sample <= 1.0
        assert candidate.terms.total >= candidate.terms.sample


def chain(*specs: tuple[str, str]) -> list[Candidate]:
    return [Candidate(model, model.split("/")[0], reason) for model, reason in specs]


def walk(
    attempts: AttemptPlan, outcomes: list[tuple[ErrorKind, dict[str, Any]]]
) -> list[tuple[str, float]]:
    tried = []
    for kind, extra in outcomes:
        step = attempts.next()
        if step is None:
            break
        candidate, wait = step
        tried.append((candidate.model, wait))
        protection = extra.pop("protection", "model-skip")
        attempts.failed(candidate, kind, decide(protection, kind, after_first_byte=False), **extra)
    return tried


def test_the_preferred_model_gets_one_retry_after_a_5xx_and_waits_out_a_short_retry_after() -> None:
    attempts = AttemptPlan(
        chain(("a/1", "named"), ("b/3", "pool")), max_attempts=9, max_retry_after_wait_s=3
    )
    tried = walk(attempts, [(ErrorKind.SERVER, {}), (ErrorKind.SERVER, {}), (ErrorKind.SERVER, {})])
    assert tried == [("a/1", 0.0), ("a/1", 0.0), ("b/3", 0.0)]
    attempts = AttemptPlan(
        chain(("a/1", "sticky"), ("b/3", "pool")), max_attempts=9, max_retry_after_wait_s=3
    )
    tried = walk(attempts, [(ErrorKind.RATE_LIMITED, {"retry_after_s": 2.0})] * 3)
    assert tried == [("a/1", 0.0), ("a/1", 2.0), ("b/3", 0.0)]
    attempts = AttemptPlan(
        chain(("a/1", "sticky"), ("b/3", "pool")), max_attempts=9, max_retry_after_wait_s=3
    )
    tried = walk(attempts, [(ErrorKind.RATE_LIMITED, {"retry_after_s": 10.0})] * 2)
    assert tried == [("a/1", 0.0), ("b/3", 0.0)]


def test_pool_models_get_no_retry_but_another_key_is_tried_at_once() -> None:
    attempts = AttemptPlan(chain(("a/1", "pool"), ("b/3", "pool")), max_attempts=9)
    assert walk(attempts, [(ErrorKind.SERVER, {})] * 2) == [("a/1", 0.0), ("b/3", 0.0)]
    attempts = AttemptPlan(chain(("c/4", "pool"), ("b/3", "pool")), max_attempts=9)
    tried = walk(
        attempts,
        [
            (ErrorKind.RATE_LIMITED, {"other_key_free": True}),
            (ErrorKind.RATE_LIMITED, {}),
            (ErrorKind.SERVER, {}),
        ],
    )
    assert tried == [("c/4", 0.0), ("c/4", 0.0), ("b/3", 0.0)]


def test_a_provider_ban_skips_the_rest_of_that_provider_and_max_attempts_bounds_it_all() -> None:
    attempts = AttemptPlan(
        chain(("a/1", "pool"), ("a/2", "pool"), ("b/3", "pool"), ("c/4", "pool")), max_attempts=9
    )
    tried = walk(
        attempts,
        [
            (ErrorKind.TIMEOUT, {"protection": "provider-ban"}),
            (ErrorKind.SERVER, {}),
            (ErrorKind.SERVER, {}),
        ],
    )
    assert tried == [("a/1", 0.0), ("b/3", 0.0), ("c/4", 0.0)]
    attempts = AttemptPlan(
        chain(("a/1", "named"), ("b/3", "pool"), ("c/4", "pool")), max_attempts=2
    )
    assert len(walk(attempts, [(ErrorKind.SERVER, {})] * 5)) == 2


def test_saved_controls_restore_and_keep_only_what_differs_from_the_config() -> None:
    state = make_state()
    state.move_in_pool("c/4", -3)
    state.set_enabled("a/2", False)
    state.ban_model("b/3")
    state.set_protection("c", "off")
    saved = state.controls.saved()
    assert saved["enabled"] == {"a/2": False} and saved["protection"] == {"c": "off"}
    fresh = make_state()
    fresh.restore_controls(saved | {"banned_models": ["b/3", "gone/model"]})
    assert fresh.chain("balanced") == ["c/4", "a/1", "a/2", "b/3"]
    assert not fresh.is_usable("a/2") and not fresh.is_usable("b/3")
    assert fresh.controls.protection["c"] == "off"
    assert fresh.controls.banned_models == {"b/3"}


def test_the_lazily_ranked_rest_sees_bans_and_cooldowns_since_the_plan_was_made() -> None:
    state = make_state()
    session = open_session(state)
    state.sessions.pin("s1", "b/3", "b#1", state.clock())
    head, rest = state.plan(Target("balanced"), session)
    assert [c.model for c in head] == ["b/3"]
    # While the sticky model is being tried, the user bans one model and another cools down.
    state.ban_model("a/1")
    fail(state, "c/4", ErrorKind.SERVER)
    state.clock.advance(1.0)  # type: ignore[attr-defined]
    assert [c.model for c in rest()] == ["a/2"]
