"""Sticky sessions: TTL, LRU cap, pins and per-session provider bans, with explicit clocks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tui_gateway.domain.sticky import SessionEntry, StickySessions, provider_of

T0 = 1_000_000.0


def make(*, ttl_s: float = 100.0, cap: int = 10, ban_ttl_s: float = 30.0) -> StickySessions:
    return StickySessions(ttl_s=ttl_s, cap=cap, ban_ttl_s=ban_ttl_s)


def open_(s: StickySessions, key: str, now: float, mode: str = "auto") -> SessionEntry:
    return s.open(key, mode=mode, preview=f"hello {key}", now=now)


def test_open_creates_a_fresh_session() -> None:
    s = make()
    e = open_(s, "k", T0)
    assert (e.key, e.mode, e.preview, e.created, e.last_used) == ("k", "auto", "hello k", T0, T0)
    assert (e.model, e.api_key_id, e.turns, e.banned) == (None, None, 0, {})
    assert len(s) == 1


def test_open_again_returns_the_same_session_and_marks_it_used() -> None:
    s = make()
    first = open_(s, "k", T0)
    again = s.open("k", mode="other", preview="other", now=T0 + 10)
    assert again is first
    assert (again.created, again.last_used, again.mode) == (T0, T0 + 10, "auto")


@pytest.mark.parametrize(
    ("offset", "alive"),
    [(99.999, True), (100.0, False), (100.001, False)],
    ids=["just-before", "at", "after"],
)
def test_session_expires_ttl_after_last_use(offset: float, alive: bool) -> None:
    s = make(ttl_s=100.0)
    open_(s, "k", T0)
    assert (s.get("k", T0 + offset) is not None) is alive
    assert len(s) == (1 if alive else 0)  # an expired one is dropped on read


def test_get_does_not_extend_the_ttl() -> None:
    s = make(ttl_s=100.0)
    open_(s, "k", T0)
    assert s.get("k", T0 + 60) is not None
    assert s.get("k", T0 + 100) is None


def test_open_extends_the_ttl_from_the_last_use() -> None:
    s = make(ttl_s=100.0)
    open_(s, "k", T0)
    open_(s, "k", T0 + 60)
    assert s.get("k", T0 + 159.9) is not None
    assert s.get("k", T0 + 160) is None


def test_open_after_expiry_starts_a_new_session() -> None:
    s = make(ttl_s=100.0)
    s.pin(open_(s, "k", T0).key, "p/m", "key1", T0 + 1)
    fresh = open_(s, "k", T0 + 500)
    assert (fresh.created, fresh.model, fresh.turns) == (T0 + 500, None, 0)


def test_get_of_unknown_key_is_none() -> None:
    assert make().get("nope", T0) is None


def test_cap_evicts_least_recently_opened() -> None:
    s = make(cap=3)
    for i, key in enumerate("abc"):
        open_(s, key, T0 + i)
    open_(s, "d", T0 + 3)
    assert [e.key for e in s.entries(T0 + 4)] == ["d", "c", "b"]


def test_reopening_protects_a_session_from_eviction() -> None:
    s = make(cap=3)
    for i, key in enumerate("abc"):
        open_(s, key, T0 + i)
    open_(s, "a", T0 + 3)  # a is now the most recently used; b is the oldest
    open_(s, "d", T0 + 4)
    assert [e.key for e in s.entries(T0 + 5)] == ["d", "a", "c"]


def test_pin_counts_as_use_for_eviction() -> None:
    s = make(cap=2)
    open_(s, "a", T0)
    open_(s, "b", T0 + 1)
    s.pin("a", "p/m", None, T0 + 2)
    open_(s, "c", T0 + 3)
    assert {e.key for e in s.entries(T0 + 4)} == {"a", "c"}


def test_get_does_not_change_the_eviction_order() -> None:
    s = make(cap=2)
    open_(s, "a", T0)
    open_(s, "b", T0 + 1)
    s.get("a", T0 + 2)
    open_(s, "c", T0 + 3)
    assert {e.key for e in s.entries(T0 + 4)} == {"b", "c"}


def test_open_prunes_expired_sessions_at_the_old_end() -> None:
    s = make(ttl_s=100.0)
    open_(s, "a", T0)
    open_(s, "b", T0 + 50)
    open_(s, "c", T0 + 120)  # a expired at T0+100; b is still live
    assert len(s) == 2


def test_pin_sets_the_sticky_model_and_counts_a_turn() -> None:
    s = make()
    open_(s, "k", T0)
    s.pin("k", "p/m", "key1", T0 + 5)
    s.pin("k", "q/n", "key2", T0 + 9)
    e = s.get("k", T0 + 10)
    assert e is not None
    assert (e.model, e.api_key_id, e.turns, e.last_used) == ("q/n", "key2", 2, T0 + 9)


def test_pin_extends_the_ttl_even_past_expiry_of_a_long_answer() -> None:
    s = make(ttl_s=100.0)
    open_(s, "k", T0)
    s.pin("k", "p/m", None, T0 + 150)  # the answer took longer than the TTL
    assert s.get("k", T0 + 249) is not None


def test_pin_does_not_revive_a_cleared_session() -> None:
    s = make()
    open_(s, "k", T0)
    assert s.clear("k")
    s.pin("k", "p/m", None, T0 + 1)
    assert s.get("k", T0 + 2) is None
    assert len(s) == 0


def test_unpin_forgets_the_model_but_keeps_bans_and_turns() -> None:
    s = make()
    open_(s, "k", T0)
    s.pin("k", "p/m", "key1", T0)
    s.ban_provider("k", "q", T0)
    s.unpin("k")
    e = s.get("k", T0 + 1)
    assert e is not None
    assert (e.model, e.api_key_id, e.turns) == (None, None, 1)
    assert s.banned_providers("k", T0 + 1) == {"q"}


@pytest.mark.parametrize(
    ("offset", "banned"),
    [(29.999, {"p"}), (30.0, set()), (30.001, set())],
    ids=["just-before", "at", "after"],
)
def test_provider_ban_lasts_ban_ttl(offset: float, banned: set[str]) -> None:
    s = make(ban_ttl_s=30.0)
    open_(s, "k", T0)
    s.ban_provider("k", "p", T0)
    assert s.banned_providers("k", T0 + offset) == banned


def test_expired_bans_are_pruned_from_the_session() -> None:
    s = make(ban_ttl_s=30.0)
    e = open_(s, "k", T0)
    s.ban_provider("k", "p", T0)
    s.ban_provider("k", "q", T0 + 20)
    assert s.banned_providers("k", T0 + 31) == {"q"}
    assert set(e.banned) == {"q"}


def test_banning_again_restarts_the_ban() -> None:
    s = make(ban_ttl_s=30.0)
    open_(s, "k", T0)
    s.ban_provider("k", "p", T0)
    s.ban_provider("k", "p", T0 + 20)
    assert s.banned_providers("k", T0 + 45) == {"p"}


def test_banning_the_pinned_provider_unpins() -> None:
    s = make()
    open_(s, "k", T0)
    s.pin("k", "p/org/model", "key1", T0)
    e = s.get("k", T0)
    assert e is not None
    s.ban_provider("k", "q", T0)
    assert e.model == "p/org/model"
    s.ban_provider("k", "p", T0)
    after = s.get("k", T0)
    assert after is e and (after.model, after.api_key_id) == (None, None)


def test_bans_of_an_expired_session_are_gone() -> None:
    s = make(ttl_s=100.0, ban_ttl_s=500.0)
    open_(s, "k", T0)
    s.ban_provider("k", "p", T0)
    assert s.banned_providers("k", T0 + 100) == set()


def test_verbs_on_unknown_sessions_do_nothing() -> None:
    s = make()
    s.pin("x", "p/m", None, T0)
    s.unpin("x")
    s.ban_provider("x", "p", T0)
    assert s.banned_providers("x", T0) == set()
    assert not s.clear("x")
    assert len(s) == 0


def test_clear_all_reports_how_many_were_forgotten() -> None:
    s = make()
    for key in "abc":
        open_(s, key, T0)
    assert s.clear_all() == 3
    assert len(s) == 0 and s.entries(T0) == []


def test_entries_are_live_most_recent_first_and_prune_expired() -> None:
    s = make(ttl_s=100.0)
    open_(s, "a", T0)
    open_(s, "b", T0 + 10)
    open_(s, "c", T0 + 20)
    open_(s, "a", T0 + 30)
    assert [e.key for e in s.entries(T0 + 30)] == ["a", "c", "b"]
    assert [e.key for e in s.entries(T0 + 115)] == ["a", "c"]
    assert len(s) == 2


def test_as_json_shows_seconds_left_for_session_and_bans() -> None:
    s = make(ttl_s=100.0, ban_ttl_s=30.0)
    e = open_(s, "k", T0, mode="auto-smart")
    s.pin("k", "p/m", "key1", T0)
    s.ban_provider("k", "q", T0)
    s.ban_provider("k", "r", T0 - 40)  # already over
    assert e.as_json(T0 + 10, ttl_s=100.0, ban_ttl_s=30.0) == {
        "key": "k",
        "mode": "auto-smart",
        "preview": "hello k",
        "model": "p/m",
        "source": "history",
        "api_key_id": "key1",
        "turns": 1,
        "banned": {"q": 20.0},
        "expires_in": 90.0,
    }
    assert e.as_json(T0 + 500, ttl_s=100.0, ban_ttl_s=30.0)["expires_in"] == 0.0


def test_provider_of_keeps_slashes_in_the_model_id() -> None:
    assert provider_of("openrouter/meta-llama/llama-3") == "openrouter"


@pytest.mark.parametrize(
    "kwargs", [{"ttl_s": 0.0}, {"cap": 0}, {"ban_ttl_s": -1.0}], ids=["ttl", "cap", "ban-ttl"]
)
def test_invalid_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        StickySessions(**kwargs)  # type: ignore[arg-type]


opens = st.lists(
    st.tuples(st.sampled_from("abcdefghij"), st.floats(min_value=0.0, max_value=50.0)),
    max_size=60,
)


@settings(database=None, deadline=None)
@given(cap=st.integers(min_value=1, max_value=5), ops=opens)
def test_never_more_sessions_than_cap(cap: int, ops: list[tuple[str, float]]) -> None:
    s = make(ttl_s=100.0, cap=cap)
    now = T0
    for key, step in ops:
        now += step
        open_(s, key, now)
        assert len(s) <= cap


@settings(database=None, deadline=None)
@given(cap=st.integers(min_value=1, max_value=5), ops=opens)
def test_the_most_recently_opened_session_is_always_live_and_first(
    cap: int, ops: list[tuple[str, float]]
) -> None:
    s = make(ttl_s=100.0, cap=cap)
    now = T0
    for key, step in ops:
        now += step
        open_(s, key, now)
        entries = s.entries(now)
        assert entries[0].key == key
        assert len({e.key for e in entries}) == len(entries)
        assert [e.last_used for e in entries] == sorted(
            (e.last_used for e in entries), reverse=True
        )
