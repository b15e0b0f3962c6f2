"""Pure logic: catalog lookups, pool chains, candidate plans, session keys, the state's verbs."""

from __future__ import annotations

import random

import pytest

from tests.factories import FakeClock, make_settings, model
from tui_gateway.domain.catalog import Target, UnknownModel
from tui_gateway.domain.events import AttemptBegan, Event, RequestBegan, RequestFinished
from tui_gateway.domain.planning import plan_candidates
from tui_gateway.domain.sessions import session_preview
from tui_gateway.domain.state import GatewayState
from tui_gateway.domain.sticky import SessionEntry

SIM = [{"name": "a", "kind": "simulated"}, {"name": "b", "kind": "simulated"}]


def make_state(
    *models: dict[str, object], clock: FakeClock | None = None, strategy: str = "ordered"
) -> GatewayState:
    settings = make_settings(providers=SIM, models=models, routing={"strategy": strategy})
    return GatewayState(settings, clock=clock or FakeClock(), rng=random.Random(1))


def plan(
    state: GatewayState, target: Target, session: SessionEntry | None = None, n: int = 9
) -> list[str]:
    candidates = plan_candidates(
        state.router, target, session=session, rng=state.rng, max_attempts=n
    )
    return [c.model for c in candidates]


def test_resolve_virtual_full_and_bare_names() -> None:
    state = make_state(model("a", "x", "fast"), model("b", "x", "smart"), model("b", "y"))
    catalog = state.catalog
    assert catalog.resolve("auto") == Target(pool="balanced")
    assert catalog.resolve("auto-smart") == Target(pool="smart")
    assert catalog.resolve("b/x") == Target(pool="smart", preferred="b/x")
    assert catalog.resolve("x") == Target(pool="fast", preferred="a/x")  # first in config order
    with pytest.raises(UnknownModel):
        catalog.resolve("gpt-9")


def test_move_in_pool_reorders_and_clamps_at_the_ends() -> None:
    state = make_state(model("a", "1"), model("a", "2"), model("a", "3"))
    assert state.move_in_pool("a/3", -1) == 1
    assert state.chain("balanced") == ["a/1", "a/3", "a/2"]
    assert state.move_in_pool("a/3", -5) == 0
    assert state.move_in_pool("a/2", +9) == 2
    assert state.chain("balanced") == ["a/3", "a/1", "a/2"]


def test_saved_order_keeps_new_models_at_the_end() -> None:
    state = make_state(model("a", "1"), model("a", "2"), model("a", "3"))
    state.controls.pools.set_order("balanced", ["a/3", "gone/model", "a/1"])
    assert state.chain("balanced") == ["a/3", "a/1", "a/2"]


def test_plan_puts_the_named_model_first_and_skips_disabled() -> None:
    state = make_state(
        model("a", "1"), model("a", "2", enabled=False), model("b", "3"), model("b", "4")
    )
    assert plan(state, Target("balanced")) == ["a/1", "b/3", "b/4"]
    assert plan(state, Target("balanced", "b/4")) == ["b/4", "a/1", "b/3"]
    assert plan(state, Target("balanced"), n=2) == ["a/1", "b/3"]
    state.set_enabled("a/2", True)
    state.set_enabled("a/1", False)
    assert plan(state, Target("balanced", "a/1")) == ["a/2", "b/3", "b/4"]


def test_plan_skips_providers_without_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    providers = [
        {"name": "a", "kind": "simulated"},
        {"name": "k", "kind": "openai", "base_url": "http://x", "api_keys": ["env:NO_SUCH_KEY"]},
    ]
    settings = make_settings(providers=providers, models=[model("k", "1"), model("a", "2")])
    state = GatewayState(settings)
    assert plan(state, Target("balanced", "k/1")) == ["a/2"]


def test_session_preview_shows_the_first_words_of_the_first_user_message() -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "fix the "}, {"type": "text", "text": "bug"}],
        },
    ]
    assert session_preview(messages, words=2) == "fix the …"


def test_session_preview_skips_the_blocks_an_assistant_puts_before_the_users_words() -> None:
    claude = [{"role": "user", "content": [
        {"type": "text", "text": "<system-reminder>\nAs you answer, use these tools\n</system-reminder>"},
        {"type": "text", "text": "Fix the flaky test"},
    ]}]  # fmt: skip
    codex = [
        {
            "role": "user",
            "content": "<environment_context>\n<cwd>/src</cwd>\n</environment_context>",
        },
        {"role": "user", "content": "Rename the module"},
    ]
    assert session_preview(claude) == "Fix the flaky test"
    assert session_preview(codex) == "Rename the module"


def test_requests_enter_and_leave_the_active_set_exactly_once() -> None:
    clock = FakeClock()
    state = make_state(model("a", "1"), clock=clock)
    events: list[Event] = []
    state.subscribe(events.append)
    request = state.begin_request(session="s", requested_model="auto", stream=True)
    state.begin_attempt(request, model="a/1", provider="a")
    clock.advance(0.25)
    request.chunks_relayed(3)
    snapshot = state.snapshot().active[0]
    assert snapshot.ttfb_ms == 250.0 and snapshot.chunks == 3 and snapshot.state == "streaming"
    state.finish_request(request)
    state.finish_request(request)  # a second call changes nothing
    assert state.active == {} and state.finished_count == 1
    assert [type(e) for e in events] == [RequestBegan, AttemptBegan, RequestFinished]


def test_unknown_model_in_a_verb_is_a_key_error() -> None:
    state = make_state(model("a", "1"))
    with pytest.raises(KeyError):
        state.set_enabled("a/404", False)


def test_the_screen_hears_every_event_that_can_have_a_line() -> None:
    """The screen subscribes to `WITH_LINES` only; an event kind left out must never have a line."""
    from tui_gateway.domain import events

    kinds = {
        k for k in vars(events).values()
        if isinstance(k, type) and issubclass(k, events.Event) and k is not events.Event
    }  # fmt: skip
    silent = kinds - set(events.WITH_LINES)
    assert silent == {events.RequestBegan, events.AttemptBegan}
    for kind in silent:
        assert kind.text.fget is events.Event.text.fget  # type: ignore[attr-defined]
