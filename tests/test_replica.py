"""The seam between the state and the cluster (issue 12), without Redis: two states whose
replicas are wired back to back, and the mirror's pure parts (the write queue, the key layout)."""

from __future__ import annotations

import json
from dataclasses import asdict

from tests.factories import FakeClock, make_settings, model
from tests.test_domain import SIM
from tui_gateway.cluster.layout import Layout, decode_batch, encode_batch, mask_url
from tui_gateway.cluster.pending import Pending
from tui_gateway.domain.changes import Change
from tui_gateway.domain.posteriors import BucketRow, Outcome
from tui_gateway.domain.replica import Replica
from tui_gateway.domain.state import GatewayState

MODELS = (model("a", "x"), model("a", "y"), model("b", "z"))


def wired() -> tuple[GatewayState, GatewayState, list[Change]]:
    """State `a` reports to `b` (through JSON, as Redis would carry it); `b` reports nowhere."""
    clock = FakeClock(1_800_000_000.0)
    settings = make_settings(providers=SIM, models=MODELS)
    a, b = GatewayState(settings, clock=clock), GatewayState(settings, clock=clock)
    sent: list[Change] = []
    into_b = Replica(b)

    def carry(change: Change) -> None:
        sent.append(change)
        into_b.apply(Change(change.part, change.key, json.loads(json.dumps(change.value))))

    Replica(a).attach(carry)
    return a, b, sent


def test_a_cooldown_and_its_clearing_reach_the_other_state() -> None:
    a, b, _ = wired()
    now = a.clock()
    a.cooldowns.record_failure(model="a/x", provider="a", kind="5xx", key_id=None, now=now)
    assert b.cooldowns.is_cooling("a/x", now)
    assert b.cooldowns.entries(now) == a.cooldowns.entries(now)
    a.clear_cooldowns("a/x")
    assert not b.cooldowns.is_cooling("a/x", now)


def test_a_rate_limited_key_cools_on_the_other_state_and_its_other_key_does_not() -> None:
    a, b, _ = wired()
    now = a.clock()
    a.cooldowns.record_failure(
        model="a/x", provider="a", kind="rate_limited", key_id="a#1", now=now, retry_after_s=30
    )
    assert b.cooldowns.usable_keys("a/x", ["a#1", "a#2"], now) == ["a#2"]
    assert b.cooldowns.usable_keys("a/x", ["a#1"], now + 30) == ["a#1"]


def test_a_session_its_pin_and_its_ban_reach_the_other_state() -> None:
    a, b, _ = wired()
    now = a.clock()
    a.sessions.open("s1", mode="auto", preview="hello", now=now)
    a.sessions.pin("s1", "a/x", "a#1", now)
    a.sessions.ban_provider("s1", "b", now)
    theirs = b.sessions.get("s1", now)
    assert theirs is not None and theirs.model == "a/x" and theirs.turns == 1
    assert b.sessions.banned_providers("s1", now) == {"b"}
    a.clear_sticky("s1")
    assert b.sessions.get("s1", now) is None


def test_a_conversation_found_by_history_is_found_on_the_other_state() -> None:
    a, b, _ = wired()
    first = [{"role": "user", "content": "fix my parser"}]
    session = a.conversations.session_for("auto", first, a.clock())
    later = [*first, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "more"}]
    assert b.conversations.session_for("auto", later, b.clock()) == session


def test_controls_travel_whole_and_a_re_enabled_model_is_enabled_on_the_other_state() -> None:
    a, b, sent = wired()
    a.ban_model("a/x")
    a.set_enabled("a/y", False)
    a.move_in_pool("b/z", -2)
    a.set_protection("b", "off")
    assert b.controls.saved() == a.controls.saved()
    assert b.chain("balanced") == ["b/z", "a/x", "a/y"] and not b.is_usable("a/x")
    a.set_enabled("a/y", True)  # back to the config: absent from the saved picture
    assert "a/y" not in b.controls.pools.disabled
    assert sent[-1].value["line"] == "a/y enabled"


def test_a_prefill_refusal_reaches_the_other_state() -> None:
    a, b, _ = wired()
    a.refuse_prefill("a/x", "no prefill here")
    assert b.learner.prefill_refused == {"a/x": "no prefill here"}
    assert b.continuation("a/x") == "instruct"


def test_outcomes_counted_on_one_state_weigh_the_same_on_the_other() -> None:
    a, b, _ = wired()
    now = a.clock()
    for success in (True, True, False):
        a.book.record(Outcome("a/x", now - 10, success, ttfb_ms=100.0))
    ours, theirs = a.book.posterior("a/x"), b.book.posterior("a/x")
    assert (theirs.successes, theirs.failures) == (2, 1)
    assert theirs.alpha == ours.alpha and theirs.ttfb_ms == ours.ttfb_ms


def test_a_change_applied_from_elsewhere_is_not_reported_back() -> None:
    a, b, sent = wired()
    heard: list[Change] = []
    Replica(b).attach(heard.append)
    a.ban_model("a/x")
    a.sessions.open("s1", mode="auto", preview="hi", now=a.clock())
    assert len(sent) == 2 and heard == []


def test_the_whole_picture_seeds_an_empty_state() -> None:
    a, b, _ = wired()
    now = a.clock()
    a.cooldowns.record_failure(model="a/y", provider="a", kind="5xx", key_id=None, now=now)
    a.sessions.open("s1", mode="auto", preview="hi", now=now)
    a.ban_provider("b")
    fresh = GatewayState(make_settings(providers=SIM, models=MODELS), clock=a.clock)
    replica = Replica(fresh)
    for change in Replica(a).changes():
        replica.apply(change)
    assert fresh.cooldowns.is_cooling("a/y", now) and fresh.sessions.get("s1", now) is not None
    assert fresh.controls.banned_providers == {"b"}


def test_the_write_queue_keeps_the_newest_value_per_key_and_sums_outcomes() -> None:
    pending = Pending(cap=2)
    pending.add(Change("session", "s1", {"v": 1}))
    pending.add(Change("session", "s1", {"v": 2}))
    row = BucketRow("m", 3600.0, 1, 0, 100.0, 1, 0.0, 0)
    pending.add(Change("outcome", "m", asdict(row)))
    pending.add(Change("outcome", "m", asdict(row)))
    batch = pending.take()
    assert [c.value for c in batch.changes] == [{"v": 2}]
    assert batch.rows == [BucketRow("m", 3600.0, 2, 0, 200.0, 2, 0.0, 0)]
    assert not pending
    pending.add(Change("session", "s1", {"v": 3}))
    pending.give_back(batch)  # a failed write: queued again, under what is newer
    assert [c.value for c in pending.take().changes] == [{"v": 3}]
    for n in range(3):
        pending.add(Change("cooldown", str(n), {}))
    assert [c.key for c in pending.take().changes] == ["1", "2"] and pending.dropped == 1


def test_the_key_layout_reads_back_what_it_writes() -> None:
    layout = Layout("team:a")
    assert layout.parse(layout.key("cooldown", "mock/llama3:8b|mock#1")) == (
        "cooldown", "mock/llama3:8b|mock#1",
    )  # fmt: skip
    bucket = layout.bucket(BucketRow("mock/llama3:8b", 7200.0, 1, 0, 0.0, 0, 0.0, 0))
    assert layout.parse(bucket) is None and layout.parse(layout.epoch) is None
    assert layout.parse_bucket(bucket) == (7200.0, "mock/llama3:8b")
    origin, reload, changes = decode_batch(encode_batch("o1", [Change("prefill", "m", "why")]))
    assert (origin, reload, changes) == ("o1", False, [Change("prefill", "m", "why")])
    assert mask_url("redis://user:secret@host:6380/0") == "redis://user:***@host:6380/0"
    assert mask_url("redis://127.0.0.1:6379") == "redis://127.0.0.1:6379"
