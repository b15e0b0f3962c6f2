"""One record per request: a `Flow` on the injected clock, indexed by the state, copied out."""

from __future__ import annotations

import dataclasses
import random

import msgspec
import pytest

from tests.factories import FakeClock, make_settings, model
from tui_gateway.domain.errors import ErrorKind, Unavailable, UpstreamError
from tui_gateway.domain.events import (
    AttemptFailed,
    ControlsChanged,
    Event,
    RequestBegan,
    RequestFinished,
)
from tui_gateway.domain.state import GatewayState
from tui_gateway.domain.views import Snapshot


def make_state(clock: FakeClock, ids: random.Random | None = None) -> GatewayState:
    settings = make_settings(
        providers=[{"name": "a", "kind": "simulated"}, {"name": "b", "kind": "simulated"}],
        models=[model("a", "1"), model("b", "2")],
    )
    return GatewayState(settings, clock=clock, ids=ids)


def test_a_request_s_whole_life_is_timed_on_the_injected_clock() -> None:
    clock = FakeClock()
    state = make_state(clock)
    flow = state.begin_request(session="s", requested_model="auto", stream=True)
    state.begin_attempt(flow, model="a/1", provider="a")
    clock.advance(2.0)
    attempt = flow.attempt_failed(Unavailable("boom", status=502))
    assert attempt.latency_ms == 2000.0 and attempt.started == flow.started
    state.begin_attempt(flow, model="b/2", provider="b")
    clock.advance(0.5)
    flow.first_byte_seen()
    flow.chunks_relayed(4)
    clock.advance(1.5)
    flow.attempt_succeeded()
    assert state.finish_request(flow)
    assert flow.ttfb_ms == 2500.0 and flow.latency_ms == 4000.0
    assert [(a.model, a.latency_ms, a.ttfb_ms) for a in flow.attempts] == [
        ("a/1", 2000.0, None),
        ("b/2", 2000.0, 500.0),
    ]
    assert flow.timeline == [(clock() - 1.5, 4)]


def test_the_state_indexes_the_same_record_the_log_would_write() -> None:
    clock = FakeClock()
    state = make_state(clock)
    flow = state.begin_request(session="s", requested_model="auto", stream=False)
    assert state.active == {flow.id: flow}
    state.begin_attempt(flow, model="a/1", provider="a")
    flow.attempt_succeeded()
    assert state.finish_request(flow)
    assert not state.finish_request(flow)  # once only
    assert state.active == {} and list(state.recent) == [flow]
    assert flow.status == 200 and flow.phase == "done" and flow.finished_at == clock()


def test_an_attempt_left_open_is_closed_when_the_request_finishes() -> None:
    state = make_state(FakeClock())
    flow = state.begin_request(session="s", requested_model="auto", stream=True)
    state.begin_attempt(flow, model="a/1", provider="a")
    state.finish_request(flow)
    assert [a.error_kind for a in flow.attempts] == [str(ErrorKind.SHUTDOWN)]


def test_events_carry_what_changed() -> None:
    clock = FakeClock()
    state = make_state(clock)
    heard: list[Event] = []
    state.subscribe(heard.append)
    flow = state.begin_request(session="s", requested_model="auto", stream=False)
    state.begin_attempt(flow, model="a/1", provider="a")
    exc = Unavailable("boom", status=502)
    decision = state.decide("a/1", exc.kind, after_first_byte=False)
    state.record_failure(
        flow, flow.attempt_failed(exc), kind=exc.kind, key_id=None, decision=decision,
        reason=exc.describe(),
    )  # fmt: skip
    flow.fail(502, exc.kind, "all failed")
    state.finish_request(flow)
    state.ban_model("b/2")
    began, failed, finished, changed = (
        next(e for e in heard if isinstance(e, kind))
        for kind in (RequestBegan, AttemptFailed, RequestFinished, ControlsChanged)
    )
    assert began == RequestBegan(flow.id, "s")
    assert (failed.request_id, failed.model, failed.kind) == (flow.id, "a/1", "5xx")
    assert finished.error_kind == "5xx" and finished.status == 502
    assert finished.text == f"{flow.id} 502 5xx via a/1"
    assert changed.text == "b/2 banned"


def test_a_plain_success_is_announced_without_a_line() -> None:
    state = make_state(FakeClock())
    heard: list[Event] = []
    state.subscribe(heard.append, kinds=[RequestFinished])
    flow = state.begin_request(session="s", requested_model="auto", stream=False)
    state.begin_attempt(flow, model="a/1", provider="a")
    flow.attempt_succeeded()
    state.finish_request(flow)
    assert [(type(e), e.text) for e in heard] == [(RequestFinished, "")]


def test_nobody_listening_builds_no_event() -> None:
    state = make_state(FakeClock())
    assert not state.bus.wants(RequestBegan)
    state.subscribe(lambda _e: None, kinds=[ControlsChanged])
    assert not state.bus.wants(RequestBegan) and state.bus.wants(ControlsChanged)


def test_a_snapshot_is_a_frozen_copy_and_taking_it_changes_nothing() -> None:
    clock = FakeClock()
    state = make_state(clock)
    flow = state.begin_request(session="s", requested_model="auto", stream=True)
    state.begin_attempt(flow, model="a/1", provider="a")
    bases_before = dict(state.router.score_bases.totals)
    snapshot = state.snapshot()
    assert state.router.score_bases.totals == bases_before  # no routing cache filled
    view = snapshot.active[0]
    with pytest.raises(AttributeError):
        view.chunks = 99  # type: ignore[misc]
    flow.chunks_relayed(3)
    assert view.chunks == 0 and state.snapshot().active[0].chunks == 3


def test_the_state_endpoint_s_json_decodes_back_into_a_snapshot() -> None:
    state = make_state(FakeClock())
    flow = state.begin_request(session="s", requested_model="auto", stream=True)
    state.begin_attempt(flow, model="a/1", provider="a")
    encoded = msgspec.json.encode(state.snapshot())
    decoded = msgspec.json.decode(encoded, type=Snapshot)
    assert decoded == state.snapshot()
    raw = msgspec.json.decode(encoded)
    assert raw["active"][0]["state"] == "waiting" and raw["pools"]["balanced"][0]["model"] == "a/1"


def test_a_request_detail_is_a_copy_not_the_live_record() -> None:
    state = make_state(FakeClock())
    flow = state.begin_request(session="s", requested_model="auto", stream=True, body={"x": 1})
    state.begin_attempt(flow, model="a/1", provider="a")
    flow.chunks_relayed(2)
    detail = state.find_request(flow.id)
    assert detail is not None and detail.timeline == ((flow.timeline[0]),)
    flow.chunks_relayed(5)
    assert detail.view.chunks == 2 and len(detail.timeline) == 1
    assert state.find_request("nope") is None
    assert not dataclasses.is_dataclass(detail)  # a Struct: frozen like the snapshot


def test_a_race_keeps_both_attempts_in_the_order_they_began() -> None:
    clock = FakeClock()
    state = make_state(clock)
    flow = state.begin_request(session="s", requested_model="auto", stream=True)
    state.begin_attempt(flow, model="a/1", provider="a")
    clock.advance(1.0)
    state.begin_attempt(flow, model="b/2", provider="b", hedge=True)
    assert flow.attempt == 2 and flow.phase == "hedging" and flow.model == "a/1"
    assert state.snapshot().active[0].racer == "b/2"
    clock.advance(0.25)
    flow.hedge_read()  # the racer's first events: it wins
    flow.attempt_failed(UpstreamError("late, and b/2 sent content first", kind=ErrorKind.OUTRUN))
    state.hedge_won(flow)
    assert (flow.model, flow.provider, flow.attempt) == ("b/2", "b", 2)
    assert state.flows.busy_providers() == ["b"]  # the concurrency guard follows the winner
    clock.advance(0.5)
    won = flow.attempt_succeeded()
    assert won.attempt == 2 and won.ttfb_ms == 250.0 and won.latency_ms == 750.0
    assert [(a.attempt, a.model, a.error_kind) for a in flow.attempts] == [
        (1, "a/1", "outrun"),
        (2, "b/2", None),
    ]


def test_a_racer_that_loses_is_logged_before_the_winner_ends_yet_listed_after_it() -> None:
    clock = FakeClock()
    state = make_state(clock)
    flow = state.begin_request(session="s", requested_model="auto", stream=True)
    state.begin_attempt(flow, model="a/1", provider="a")
    state.begin_attempt(flow, model="b/2", provider="b", hedge=True)
    flow.hedge_failed(UpstreamError("a/1 sent content first", kind=ErrorKind.HEDGED))
    assert flow.hedge is None and flow.attempt == 2 and flow.phase == "waiting"
    flow.attempt_succeeded()
    assert [a.attempt for a in flow.attempts] == [1, 2]
    assert [a.model for a in flow.attempts] == ["a/1", "b/2"]


def test_a_request_ending_mid_race_closes_the_racer_too() -> None:
    state = make_state(FakeClock())
    flow = state.begin_request(session="s", requested_model="auto", stream=True)
    state.begin_attempt(flow, model="a/1", provider="a")
    state.begin_attempt(flow, model="b/2", provider="b", hedge=True)
    state.finish_request(flow)
    assert flow.hedge is None and flow.current is None
    assert [a.error_kind for a in flow.attempts] == ["shutdown", "shutdown"]


def test_request_ids_sort_by_the_second_and_neighbours_look_nothing_alike() -> None:
    # The log's tables are keyed by the id: in order of the second, each row lands at the end
    # of the index. On the screen, two rows' short ids (the last six digits) differ in each.
    clock = FakeClock(1_796_000_000.0)
    state = make_state(clock)
    ids = []
    for _ in range(3):
        for _ in range(500):
            ids.append(state.begin_request(session="s", requested_model="auto", stream=False).id)
        clock.advance(1.0)
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in ids)
    seconds = [int(i[:8], 16) for i in ids]
    assert seconds == sorted(seconds) and seconds[0] == 1_796_000_000
    for before, after in zip(ids, ids[1:], strict=False):
        assert all(a != b for a, b in zip(before[-6:], after[-6:], strict=True)), (before, after)


def test_two_runs_sharing_a_log_in_the_same_second_make_different_ids() -> None:
    clock = FakeClock(1_796_000_000.0)
    first, second = make_state(clock), make_state(clock)
    made = [
        {s.begin_request(session="s", requested_model="auto", stream=False).id for _ in range(2000)}
        for s in (first, second)
    ]
    assert len(made[0]) == len(made[1]) == 2000
    assert not made[0] & made[1]
