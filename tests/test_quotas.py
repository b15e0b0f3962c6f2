"""Free-tier quotas (issue 13): rolling and daily windows, reservations, learning from 429s.

Time is injected: each test passes `now`, moved step by step on a `FakeClock` where it reads
better, from T0, a UTC midnight (a whole minute), so a request at T0 + whole seconds sits exactly
on a bucket boundary. No sleeps.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from tests.factories import FakeClock
from tui_gateway.domain.changes import Change
from tui_gateway.domain.quota_windows import DailyReset
from tui_gateway.domain.quotas import Limits, QuotaPolicy, Quotas

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 5, tzinfo=UTC).timestamp()
M = "p/m"
M2 = "p/other"


def quotas(scope: str = "key", reset: str | None = None, **limits: int) -> Quotas:
    policy = QuotaPolicy(
        Limits(**limits),
        provider="p",
        scope=scope,  # type: ignore[arg-type]
        daily_reset=None if reset is None else DailyReset.parse(reset),
    )
    return Quotas({M: policy, M2: policy})


def window(q: Quotas, name: str, now: float, model: str = M, key: str = "k1") -> tuple[int, int]:
    view = q.view(key, model, now)
    assert view is not None
    found = next(w for w in view.windows if w.name == name)
    return found.used, found.limit


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


# --- every window ------------------------------------------------------------------------------


def test_rpm_refuses_the_request_past_the_limit_until_the_first_leaves_at_60_s(
    clock: FakeClock,
) -> None:
    q = quotas(rpm=3)
    for _ in range(3):
        assert q.allows("k1", M, clock())
        q.reserve("k1", M, clock())
        clock.advance(10)
    assert not q.allows("k1", M, clock())
    assert q.frees_at("k1", M, clock()) == T0 + 60
    clock.advance(29.999)
    assert not q.allows("k1", M, clock())
    clock.advance(0.001)
    assert clock() == T0 + 60
    assert q.allows("k1", M, clock())  # exactly 60 s later the first has left
    assert q.frees_at("k1", M, clock()) is None
    assert window(q, "rpm", clock()) == (2, 3)


def test_a_request_between_buckets_never_leaves_the_minute_early() -> None:
    q = quotas(rpm=1)
    q.reserve("k1", M, T0 + 0.5)
    assert not q.allows("k1", M, T0 + 60.5)  # counted until the next whole second, never less
    assert q.frees_at("k1", M, T0 + 60.5) == T0 + 61
    assert q.allows("k1", M, T0 + 61)


def test_rpd_counts_a_rolling_24_h_that_frees_exactly_a_day_later(clock: FakeClock) -> None:
    q = quotas(rpm=100, rpd=2)
    q.reserve("k1", M, clock())
    clock.advance(3600)
    q.reserve("k1", M, clock())
    clock.advance(3600)
    assert not q.allows("k1", M, clock())  # the minute is free, the day is not
    assert window(q, "rpm", clock()) == (0, 100)
    assert q.frees_at("k1", M, clock()) == T0 + 86_400
    clock.advance(86_400 - 7200 - 0.1)
    assert not q.allows("k1", M, clock())
    clock.advance(0.1)
    assert q.allows("k1", M, clock())
    assert window(q, "rpd", clock()) == (1, 2)


def test_tpm_refuses_a_request_whose_estimate_does_not_fit() -> None:
    q = quotas(tpm=1000)
    q.reserve("k1", M, T0, estimated_tokens=600)
    assert q.allows("k1", M, T0 + 1, estimated_tokens=400)
    assert not q.allows("k1", M, T0 + 1, estimated_tokens=401)
    assert q.frees_at("k1", M, T0 + 1, estimated_tokens=401) == T0 + 60
    q.reserve("k1", M, T0 + 1, estimated_tokens=400)
    assert not q.allows("k1", M, T0 + 2)  # full: even a request with no estimate uses a token
    assert q.allows("k1", M, T0 + 60, estimated_tokens=600)


def test_tpd_holds_tokens_for_the_day_after_the_minute_has_passed() -> None:
    q = quotas(tpm=5000, tpd=5000)
    q.reserve("k1", M, T0, estimated_tokens=4000)
    assert q.allows("k1", M, T0 + 120, estimated_tokens=1000)
    assert not q.allows("k1", M, T0 + 120, estimated_tokens=1001)
    assert q.frees_at("k1", M, T0 + 120, estimated_tokens=1001) == T0 + 86_400


def test_a_request_blocked_by_two_windows_frees_when_both_have() -> None:
    q = quotas(rpm=1, tpd=100)
    q.reserve("k1", M, T0, estimated_tokens=100)
    assert q.frees_at("k1", M, T0 + 1) == T0 + 86_400  # the minute frees first; the day rules


def test_a_model_without_limits_is_never_refused_and_costs_nothing() -> None:
    q = Quotas({M: QuotaPolicy(Limits(), provider="p")})
    handle = q.reserve("k1", M, T0, estimated_tokens=10**9)
    q.settle(handle, 5)
    assert q.allows("k1", M, T0) and q.allows("k1", "p/unknown", T0)
    assert q.frees_at("k1", M, T0) is None
    assert not q.limited(M) and q.view("k1", M, T0) is None and q.footprint() == 0


def test_limits_must_be_whole_numbers_above_zero() -> None:
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="rpm"):
            Limits(rpm=bad)  # type: ignore[arg-type]


# --- reservation and correction --------------------------------------------------------------


def test_an_overestimate_is_given_back_when_settled() -> None:
    q = quotas(tpm=1000, tpd=10_000)
    handle = q.reserve("k1", M, T0, estimated_tokens=800)
    assert not q.allows("k1", M, T0, estimated_tokens=800)
    q.settle(handle, 200)
    assert window(q, "tpm", T0) == (200, 1000)
    assert window(q, "tpd", T0) == (200, 10_000)
    assert q.allows("k1", M, T0, estimated_tokens=800)


def test_an_underestimate_is_charged_in_full_when_settled() -> None:
    q = quotas(tpm=1000)
    handle = q.reserve("k1", M, T0, estimated_tokens=100)
    q.settle(handle, 900)
    assert window(q, "tpm", T0 + 5) == (900, 1000)
    assert not q.allows("k1", M, T0 + 5, estimated_tokens=101)


def test_settling_without_usage_keeps_the_estimate_and_a_second_settle_does_nothing() -> None:
    q = quotas(tpm=1000)
    handle = q.reserve("k1", M, T0, estimated_tokens=300)
    q.settle(handle, None)
    q.settle(handle, 5)
    q.release(handle)
    assert window(q, "tpm", T0) == (300, 1000)


def test_a_correction_for_a_bucket_that_left_the_window_is_dropped() -> None:
    q = quotas(tpm=1000, tpd=10_000)
    handle = q.reserve("k1", M, T0, estimated_tokens=500)
    q.settle(handle, 900)  # settled after the minute: only the day still holds it
    assert window(q, "tpm", T0 + 61) == (0, 1000)
    late = q.reserve("k1", M, T0 + 61, estimated_tokens=500)
    assert window(q, "tpm", T0 + 200) == (0, 1000)
    q.settle(late, 100)
    assert window(q, "tpm", T0 + 200) == (0, 1000)  # never negative
    assert window(q, "tpd", T0 + 200) == (1000, 10_000)


def test_a_released_reservation_counts_neither_request_nor_tokens() -> None:
    q = quotas(rpm=1, tpm=1000)
    handle = q.reserve("k1", M, T0, estimated_tokens=700)
    q.release(handle)
    assert window(q, "rpm", T0) == (0, 1) and window(q, "tpm", T0) == (0, 1000)
    assert q.allows("k1", M, T0, estimated_tokens=1000)


# --- scope -------------------------------------------------------------------------------------


def test_scope_provider_shares_one_count_across_the_models_of_a_key() -> None:
    q = quotas(scope="provider", rpm=2)
    q.reserve("k1", M, T0)
    q.reserve("k1", M2, T0 + 1)
    assert not q.allows("k1", M, T0 + 2) and not q.allows("k1", M2, T0 + 2)
    assert q.allows("k2", M, T0 + 2)  # another key has its own quota
    views = q.views(T0 + 2)
    assert [(v.key_id, v.model) for v in views] == [("k1", None), ("k2", None)]


def test_scope_key_counts_each_model_on_its_own() -> None:
    q = quotas(rpm=1)
    q.reserve("k1", M, T0)
    assert not q.allows("k1", M, T0 + 1)
    assert q.allows("k1", M2, T0 + 1) and q.allows("k2", M, T0 + 1)


# --- daily reset -------------------------------------------------------------------------------


def test_a_daily_reset_in_utc_empties_the_day_at_midnight() -> None:
    q = quotas(reset="00:00 UTC", rpd=2, tpd=1000)
    evening = T0 + 86_400 - 30  # 23:59:30
    q.reserve("k1", M, evening - 3600, estimated_tokens=10)
    q.reserve("k1", M, evening, estimated_tokens=10)
    assert not q.allows("k1", M, evening + 10)
    assert q.frees_at("k1", M, evening + 10) == T0 + 86_400
    view = q.view("k1", M, evening)
    assert view is not None and view.blocked
    assert [w.frees_in_s for w in view.windows] == [30.0, 30.0]
    assert q.allows("k1", M, T0 + 86_400)  # midnight: not 24 h after each request
    assert window(q, "rpd", T0 + 86_400) == (0, 2)
    assert q.footprint() == 2  # the minute's bucket and the day's one counter


def test_a_daily_reset_in_another_zone_comes_at_its_local_time() -> None:
    reset = DailyReset.parse("09:30 Asia/Kolkata")  # UTC+05:30, no DST: 04:00 UTC
    assert reset.next_after(T0) == T0 + 4 * 3600
    assert reset.next_after(T0 + 4 * 3600) == T0 + 28 * 3600  # strictly after


def test_a_settle_after_the_reset_does_not_touch_the_new_day() -> None:
    q = quotas(reset="00:00 UTC", tpd=1000)
    handle = q.reserve("k1", M, T0 + 86_399, estimated_tokens=100)
    q.reserve("k1", M, T0 + 86_401, estimated_tokens=50)
    q.settle(handle, 900)
    assert window(q, "tpd", T0 + 86_401) == (50, 1000)


def test_a_daily_reset_follows_daylight_saving_time() -> None:
    try:
        zoneinfo.ZoneInfo("America/New_York")
    except zoneinfo.ZoneInfoNotFoundError:
        pytest.skip("no tz database here")
    reset = DailyReset.parse("00:00 America/New_York")
    before = dt.datetime(2026, 3, 7, 12, tzinfo=UTC).timestamp()
    first = reset.next_after(before)
    second = reset.next_after(first)
    assert first == dt.datetime(2026, 3, 8, 5, tzinfo=UTC).timestamp()  # midnight EST
    assert second == dt.datetime(2026, 3, 9, 4, tzinfo=UTC).timestamp()  # midnight EDT
    assert second - first == 23 * 3600


@pytest.mark.parametrize("text", ["noon", "24:00 UTC", "12:60 UTC", "12:00", "12:00 Mars/Base"])
def test_a_daily_reset_that_is_not_a_time_and_zone_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        DailyReset.parse(text)


# --- learning from a 429 -----------------------------------------------------------------------


def test_a_429_under_the_limit_lowers_it_to_what_the_key_took() -> None:
    q = quotas(rpm=10)
    for i in range(4):
        q.settle(q.reserve("k1", M, T0 + i), None)
    refused = q.reserve("k1", M, T0 + 4)
    assert q.rate_limited("k1", M, T0 + 4, refused=refused) == "rpm"
    assert window(q, "rpm", T0 + 4) == (4, 4)  # the refused attempt was taken back
    assert not q.allows("k1", M, T0 + 5)
    assert q.frees_at("k1", M, T0 + 5) == T0 + 60
    view = q.view("k1", M, T0 + 5)
    assert view is not None
    assert (view.windows[0].configured, view.windows[0].lowered) == (10, True)
    assert q.allows("k2", M, T0 + 5)  # only that key learned it


def test_a_429_at_the_limit_teaches_nothing() -> None:
    q = quotas(rpm=2)
    q.reserve("k1", M, T0)
    q.reserve("k1", M, T0)
    assert q.rate_limited("k1", M, T0 + 1) is None
    assert window(q, "rpm", T0 + 1) == (2, 2)


def test_the_window_nearest_its_limit_is_the_one_lowered() -> None:
    q = quotas(rpm=100, rpd=10)
    for i in range(5):
        q.reserve("k1", M, T0 + 60 * i)
    assert q.rate_limited("k1", M, T0 + 300) == "rpd"  # 5/10 of the day, 0/100 of the minute
    assert window(q, "rpd", T0 + 300) == (5, 5) and window(q, "rpm", T0 + 300) == (0, 100)


def test_a_429_with_nothing_counted_lowers_to_one_never_zero() -> None:
    q = quotas(rpm=5)
    refused = q.reserve("k1", M, T0)
    assert q.rate_limited("k1", M, T0, refused=refused) == "rpm"
    assert window(q, "rpm", T0) == (0, 1)
    assert q.allows("k1", M, T0)
    q.reserve("k1", M, T0)
    assert q.rate_limited("k1", M, T0 + 1) is None  # at 1 of 1: the count explains it


def test_a_lowered_limit_recovers_a_step_per_ten_successes_up_to_the_configured() -> None:
    q = quotas(rpm=20)
    for i in range(4):
        q.reserve("k1", M, T0 + i)
    q.rate_limited("k1", M, T0 + 4)
    assert window(q, "rpm", T0 + 4)[1] == 4
    for _ in range(9):
        q.succeeded("k1", M, T0 + 5)
    assert window(q, "rpm", T0 + 5)[1] == 4
    q.succeeded("k1", M, T0 + 5)
    assert window(q, "rpm", T0 + 5)[1] == 5  # +5% of 20 = 1
    for _ in range(10 * 20):
        q.succeeded("k1", M, T0 + 6)
    view = q.view("k1", M, T0 + 6)
    assert view is not None
    assert (view.windows[0].limit, view.windows[0].lowered) == (20, False)  # never above


def test_learned_limits_are_reported_and_applied_on_another_gateway() -> None:
    q, other = quotas(rpm=20), quotas(rpm=20)
    seen: list[Change] = []
    q.listener = seen.append
    for i in range(3):
        q.reserve("k1", M, T0 + i)
    q.rate_limited("k1", M, T0 + 3)
    learned = [c for c in seen if c.part == "quota"]  # the counts go as `quota_use`
    assert learned == [Change("quota", "k1|p/m", {"rpm": 3})]
    assert q.changes(T0 + 3) == learned
    other.apply(learned[0])
    assert window(other, "rpm", T0 + 3) == (0, 3)
    for _ in range(10 * 20):
        q.succeeded("k1", M, T0 + 4)
    assert seen[-1] == Change("quota", "k1|p/m", None)
    other.apply(seen[-1])
    assert window(other, "rpm", T0 + 4) == (0, 20)


# --- the screen's view, and memory -------------------------------------------------------------


def test_the_view_says_used_limit_and_when_each_window_next_frees() -> None:
    q = quotas(rpm=2, rpd=100, tpm=1000)
    q.reserve("k1", M, T0, estimated_tokens=300)
    q.reserve("k1", M, T0 + 20, estimated_tokens=300)
    view = q.view("k1", M, T0 + 30)
    assert view is not None and view.blocked and view.model == M
    shown = {w.name: (w.used, w.limit, w.frees_in_s) for w in view.windows}
    assert shown == {
        "rpm": (2, 2, 30.0),  # full: one more fits in 30 s
        "tpm": (600, 1000, 30.0),  # not full: the count next drops in 30 s
        "rpd": (2, 100, 86_370.0),
    }
    assert q.view("k9", M, T0 + 30) is not None  # a key with nothing counted yet
    empty = q.view("k9", M, T0 + 30)
    assert empty is not None and all(w.frees_in_s is None for w in empty.windows)


def test_a_day_of_traffic_stays_within_a_bucket_per_second_and_per_minute() -> None:
    q = quotas(rpm=1000, rpd=1_000_000, tpd=10**9)
    for second in range(86_400):
        now = T0 + second + 0.25
        q.settle(q.reserve("k1", M, now, estimated_tokens=50), 40)
    assert q.footprint() <= 61 + 1441
    end = T0 + 86_400
    assert window(q, "rpm", end) == (60, 1000)
    assert window(q, "rpd", end)[0] >= 86_400 - 60  # at most one minute's bucket has left


def test_a_clock_going_back_counts_in_the_latest_bucket() -> None:
    q = quotas(rpm=1)
    q.reserve("k1", M, T0 + 10)
    q.reserve("k1", M, T0 + 5)
    assert q.footprint() == 2  # one minute bucket (the later), one day bucket
    assert q.frees_at("k1", M, T0 + 11) == T0 + 70


def test_an_estimate_larger_than_the_limit_never_fits_and_waits_for_an_empty_window() -> None:
    q = quotas(tpm=1000)
    q.reserve("k1", M, T0, estimated_tokens=10)
    q.reserve("k1", M, T0 + 5, estimated_tokens=10)
    assert not q.allows("k1", M, T0 + 6, estimated_tokens=1001)
    assert q.frees_at("k1", M, T0 + 6, estimated_tokens=1001) == T0 + 65
    assert not q.allows("k1", M, T0 + 65, estimated_tokens=1001)
