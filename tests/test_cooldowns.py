"""Shared cooldowns: transient model cooldowns, key-level rate limits, expiry edges."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tui_gateway.domain.cooldowns import CooldownEntry, Cooldowns
from tui_gateway.domain.errors import ErrorKind

T0 = 1_000_000.0
M = "p/model"
KEYS = ["k1", "k2", "k3"]


def fail(
    c: Cooldowns,
    kind: str,
    now: float,
    *,
    model: str = M,
    key_id: str | None = "k1",
    retry_after_s: float | None = None,
) -> CooldownEntry | None:
    return c.record_failure(
        model=model,
        provider=model.split("/")[0],
        kind=kind,
        key_id=key_id,
        now=now,
        retry_after_s=retry_after_s,
    )


@pytest.mark.parametrize("kind", ["5xx", "connection", "timeout", "stall", ErrorKind.SERVER])
def test_transient_failure_cools_the_whole_model(kind: str) -> None:
    c = Cooldowns(transient_s=15.0)
    entry = fail(c, kind, T0)
    assert entry == CooldownEntry(
        model=M,
        provider="p",
        key_id=None,
        reason=str(kind),
        started=T0,
        expires=T0 + 15.0,
        failures=1,
    )
    assert c.is_cooling(M, T0)
    assert c.usable_keys(M, KEYS, T0) == KEYS  # no key is singled out


@pytest.mark.parametrize(
    "kind",
    [
        "client_error",
        "wrapped",
        "truncated",
        "client_closed",
        "shutdown",
        "no_candidate",
        "invalid_request",
        "teapot",
    ],
)
def test_other_failures_cool_nothing(kind: str) -> None:
    c = Cooldowns()
    assert fail(c, kind, T0) is None
    assert not c.is_cooling(M, T0)
    assert c.entries(T0) == []


@pytest.mark.parametrize(
    ("offset", "cooling"),
    [(14.999, True), (15.0, False), (15.001, False)],
    ids=["just-before", "at", "after"],
)
def test_transient_cooldown_ends_after_transient_s(offset: float, cooling: bool) -> None:
    c = Cooldowns(transient_s=15.0)
    fail(c, "5xx", T0)
    assert c.is_cooling(M, T0 + offset) is cooling
    assert c.available_at(M, KEYS, T0 + offset) == (T0 + 15.0 if cooling else T0 + offset)


def test_refailing_while_cooling_extends_and_counts() -> None:
    c = Cooldowns(transient_s=15.0)
    fail(c, "5xx", T0)
    entry = fail(c, "timeout", T0 + 10)
    assert entry is not None
    assert (entry.started, entry.expires, entry.failures, entry.reason) == (
        T0,
        T0 + 25.0,
        2,
        "timeout",
    )
    assert c.is_cooling(M, T0 + 24.9)
    assert not c.is_cooling(M, T0 + 25.0)


def test_failure_after_expiry_starts_a_new_cooldown_but_keeps_counting() -> None:
    c = Cooldowns(transient_s=15.0)
    fail(c, "5xx", T0)
    entry = fail(c, "5xx", T0 + 100)
    assert entry is not None
    assert (entry.started, entry.expires, entry.failures) == (T0 + 100, T0 + 115, 2)


def test_success_resets_the_count_but_the_cooldown_runs_out() -> None:
    c = Cooldowns(transient_s=15.0)
    fail(c, "5xx", T0)
    fail(c, "5xx", T0 + 1)
    c.record_success(model=M, key_id="k1", now=T0 + 2)
    assert c.is_cooling(M, T0 + 2)
    entry = fail(c, "5xx", T0 + 3)
    assert entry is not None and entry.failures == 1
    assert entry.started == T0  # still the same running cooldown


def test_success_resets_the_key_count_too() -> None:
    c = Cooldowns()
    fail(c, "rate_limited", T0, key_id="k1")
    c.record_success(model=M, key_id="k1", now=T0 + 1)
    entry = fail(c, "rate_limited", T0 + 2, key_id="k1")
    assert entry is not None and entry.failures == 1


def test_rate_limit_cools_only_that_key_for_that_model() -> None:
    c = Cooldowns(rate_limit_s=60.0)
    entry = fail(c, "rate_limited", T0, key_id="k2")
    assert entry is not None and (entry.key_id, entry.expires, entry.reason) == (
        "k2",
        T0 + 60.0,
        "rate_limited",
    )
    assert not c.is_cooling(M, T0)
    assert c.usable_keys(M, KEYS, T0) == ["k1", "k3"]
    assert c.usable_keys("p/other", KEYS, T0) == KEYS
    assert c.available_at(M, KEYS, T0) == T0


@pytest.mark.parametrize(
    ("retry_after", "expires"),
    [
        (None, T0 + 60.0),
        (5.0, T0 + 5.0),
        (120.0, T0 + 120.0),
        (float("nan"), T0 + 60.0),
        (float("inf"), T0 + 60.0),
    ],
    ids=["default", "short", "long", "nan-ignored", "inf-ignored"],
)
def test_retry_after_overrides_the_default_rate_limit(
    retry_after: float | None, expires: float
) -> None:
    c = Cooldowns(rate_limit_s=60.0)
    entry = fail(c, "rate_limited", T0, retry_after_s=retry_after)
    assert entry is not None and entry.expires == expires


@pytest.mark.parametrize("retry_after", [0.0, -3.0])
def test_retry_after_zero_means_no_cooldown(retry_after: float) -> None:
    c = Cooldowns()
    assert fail(c, "rate_limited", T0, retry_after_s=retry_after) is None
    assert c.usable_keys(M, KEYS, T0) == KEYS


def test_retry_after_is_ignored_for_transient_failures() -> None:
    entry = fail(Cooldowns(transient_s=15.0), "5xx", T0, retry_after_s=300.0)
    assert entry is not None and entry.expires == T0 + 15.0


@pytest.mark.parametrize(
    ("offset", "usable"),
    [(59.999, ["k2"]), (60.0, ["k1", "k2"]), (60.001, ["k1", "k2"])],
    ids=["just-before", "at", "after"],
)
def test_rate_limited_key_comes_back_after_its_time(offset: float, usable: list[str]) -> None:
    c = Cooldowns(rate_limit_s=60.0)
    fail(c, "rate_limited", T0, key_id="k1")
    assert c.usable_keys(M, ["k1", "k2"], T0 + offset) == usable


def test_a_shorter_retry_after_never_shortens_a_running_cooldown() -> None:
    c = Cooldowns()
    fail(c, "rate_limited", T0, retry_after_s=60.0)
    entry = fail(c, "rate_limited", T0 + 1, retry_after_s=2.0)
    assert entry is not None and entry.expires == T0 + 60.0 and entry.failures == 2


def test_rate_limit_without_a_key_cools_the_whole_model() -> None:
    c = Cooldowns(rate_limit_s=60.0)
    entry = fail(c, "rate_limited", T0, key_id=None, retry_after_s=30.0)
    assert entry is not None and entry.key_id is None
    assert c.is_cooling(M, T0 + 29.9)
    assert c.available_at(M, [], T0) == T0 + 30.0


def test_available_at_is_the_earliest_key_end_when_all_keys_are_limited() -> None:
    c = Cooldowns()
    fail(c, "rate_limited", T0, key_id="k1", retry_after_s=40.0)
    fail(c, "rate_limited", T0, key_id="k2", retry_after_s=20.0)
    assert c.available_at(M, ["k1", "k2"], T0) == T0 + 20.0
    assert c.available_at(M, ["k1", "k2", "k3"], T0) == T0  # k3 is free
    assert c.available_at(M, ["k1"], T0) == T0 + 40.0


@pytest.mark.parametrize(
    ("transient_s", "key_s", "expected"),
    [(15.0, 20.0, T0 + 20.0), (30.0, 20.0, T0 + 30.0)],
    ids=["keys-later", "transient-later"],
)
def test_available_at_takes_the_later_of_model_and_keys(
    transient_s: float, key_s: float, expected: float
) -> None:
    c = Cooldowns(transient_s=transient_s)
    fail(c, "5xx", T0)
    fail(c, "rate_limited", T0, key_id="k1", retry_after_s=key_s)
    assert c.available_at(M, ["k1"], T0) == expected


def test_available_at_ignores_key_limits_when_there_are_no_keys() -> None:
    c = Cooldowns()
    fail(c, "rate_limited", T0, key_id="k1")
    assert c.available_at(M, [], T0) == T0


def test_entries_are_active_only_soonest_first() -> None:
    c = Cooldowns(transient_s=15.0, rate_limit_s=60.0)
    fail(c, "rate_limited", T0, key_id="k1")
    fail(c, "5xx", T0, model="q/a")
    fail(c, "rate_limited", T0, model="q/a", key_id="k9", retry_after_s=5.0)
    assert [(e.model, e.key_id) for e in c.entries(T0)] == [("q/a", "k9"), ("q/a", None), (M, "k1")]
    assert [(e.model, e.key_id) for e in c.entries(T0 + 15.0)] == [(M, "k1")]
    assert c.entries(T0 + 60.0) == []


def test_clear_one_model_leaves_the_others() -> None:
    c = Cooldowns()
    fail(c, "5xx", T0)
    fail(c, "rate_limited", T0, key_id="k1")
    fail(c, "5xx", T0, model="q/a")
    assert c.clear(M) == 2
    assert not c.is_cooling(M, T0) and c.usable_keys(M, KEYS, T0) == KEYS
    assert c.is_cooling("q/a", T0)
    entry = fail(c, "5xx", T0 + 1)
    assert entry is not None and entry.failures == 1  # the count was cleared too


def test_clear_all() -> None:
    c = Cooldowns()
    fail(c, "5xx", T0)
    fail(c, "5xx", T0, model="q/a")
    assert c.clear() == 2
    assert c.entries(T0) == []


def test_entry_as_json_counts_down() -> None:
    entry = fail(Cooldowns(transient_s=15.0), "5xx", T0)
    assert entry is not None
    assert entry.as_json(T0 + 5) == {
        "model": M,
        "provider": "p",
        "key_id": None,
        "reason": "5xx",
        "started": T0,
        "expires": T0 + 15.0,
        "remaining_s": 10.0,
        "duration_s": 15.0,
        "failures": 1,
    }
    assert entry.remaining(T0 + 100) == 0.0


def test_negative_durations_are_refused() -> None:
    with pytest.raises(ValueError):
        Cooldowns(transient_s=-1.0)


failures = st.lists(
    st.tuples(
        st.sampled_from(["5xx", "timeout", "rate_limited", "client_error"]),
        st.sampled_from([None, "k1", "k2"]),
        st.floats(min_value=0.0, max_value=30.0),
        st.one_of(st.none(), st.floats(min_value=-5.0, max_value=500.0)),
    ),
    min_size=1,
    max_size=30,
)


@settings(database=None, deadline=None)
@given(ops=failures, probe=st.floats(min_value=0.0, max_value=1_000.0))
def test_remaining_is_never_negative_nor_above_the_duration(
    ops: list[tuple[str, str | None, float, float | None]], probe: float
) -> None:
    c = Cooldowns(transient_s=15.0, rate_limit_s=60.0)
    now, longest = T0, 60.0
    for kind, key_id, step, retry_after in ops:
        now += step
        longest = max(longest, retry_after or 0.0)
        entry = fail(c, kind, now, key_id=key_id, retry_after_s=retry_after)
        if entry is not None:
            assert 0.0 <= entry.remaining(now) <= longest + 1e-6  # epoch-sized floats round
        for e in c.entries(now):
            assert 0.0 <= e.remaining(now + probe) <= e.expires - e.started


@settings(database=None, deadline=None)
@given(ops=failures)
def test_the_model_is_usable_at_available_at(
    ops: list[tuple[str, str | None, float, float | None]],
) -> None:
    c = Cooldowns(transient_s=15.0, rate_limit_s=60.0)
    now = T0
    for kind, key_id, step, retry_after in ops:
        now += step
        fail(c, kind, now, key_id=key_id, retry_after_s=retry_after)
    at = c.available_at(M, ["k1", "k2"], now)
    assert at >= now
    if at > now:  # not a moment before (probed first: reading a later time prunes)
        before = max(now, at - 1e-6)
        assert c.is_cooling(M, before) or not c.usable_keys(M, ["k1", "k2"], before)
    assert not c.is_cooling(M, at) and c.usable_keys(M, ["k1", "k2"], at)
