"""Thread protection: the whole (level x kind x first byte) matrix, row by row."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tui_gateway.config import PROTECTION_LEVELS
from tui_gateway.domain.errors import ErrorKind
from tui_gateway.domain.protection import MATRIX, Decision, decide

# Written out independently of the module's table: (ban_provider, skip_model, clear_sticky).
BAN = (True, True, True)
SKIP_CLEAR = (False, True, True)
SKIP = (False, True, False)
NONE = (False, False, False)

# kind: {level: (before first byte, after first byte)}
EXPECTED: dict[str, dict[str, tuple[tuple[bool, bool, bool], tuple[bool, bool, bool]]]] = {
    "5xx":             {"provider-ban": (BAN, BAN), "model-skip": (SKIP_CLEAR, SKIP_CLEAR), "off": (SKIP, SKIP)},
    "connection":      {"provider-ban": (BAN, BAN), "model-skip": (SKIP_CLEAR, SKIP_CLEAR), "off": (SKIP, SKIP)},
    "timeout":         {"provider-ban": (BAN, BAN), "model-skip": (SKIP_CLEAR, SKIP_CLEAR), "off": (SKIP, SKIP)},
    "stall":           {"provider-ban": (BAN, BAN), "model-skip": (SKIP_CLEAR, SKIP_CLEAR), "off": (SKIP, SKIP_CLEAR)},
    "truncated":       {"provider-ban": (BAN, BAN), "model-skip": (SKIP_CLEAR, SKIP_CLEAR), "off": (SKIP, SKIP_CLEAR)},
    "wrapped":         {"provider-ban": (BAN, BAN), "model-skip": (SKIP_CLEAR, SKIP_CLEAR), "off": (SKIP, SKIP)},
    "outrun":          {"provider-ban": (BAN, BAN), "model-skip": (SKIP_CLEAR, SKIP_CLEAR), "off": (SKIP, SKIP)},
    "rate_limited":    {"provider-ban": (SKIP, SKIP), "model-skip": (SKIP, SKIP), "off": (SKIP, SKIP)},
    "quota":           {"provider-ban": (SKIP, SKIP), "model-skip": (SKIP, SKIP), "off": (SKIP, SKIP)},
    "client_error":    {"provider-ban": (SKIP_CLEAR, SKIP_CLEAR), "model-skip": (SKIP_CLEAR, SKIP_CLEAR), "off": (SKIP, SKIP)},
    "client_closed":   {"provider-ban": (NONE, NONE), "model-skip": (NONE, NONE), "off": (NONE, NONE)},
    "shutdown":        {"provider-ban": (NONE, NONE), "model-skip": (NONE, NONE), "off": (NONE, NONE)},
    "no_candidate":    {"provider-ban": (NONE, NONE), "model-skip": (NONE, NONE), "off": (NONE, NONE)},
    "invalid_request": {"provider-ban": (NONE, NONE), "model-skip": (NONE, NONE), "off": (NONE, NONE)},
    "rejected":        {"provider-ban": (NONE, NONE), "model-skip": (NONE, NONE), "off": (NONE, NONE)},
    "key_rejected":    {"provider-ban": (NONE, NONE), "model-skip": (NONE, NONE), "off": (NONE, NONE)},
    "unaligned":       {"provider-ban": (NONE, NONE), "model-skip": (NONE, NONE), "off": (NONE, NONE)},
    "hedged":          {"provider-ban": (NONE, NONE), "model-skip": (NONE, NONE), "off": (NONE, NONE)},
    "skipped":         {"provider-ban": (SKIP_CLEAR, SKIP_CLEAR), "model-skip": (SKIP_CLEAR, SKIP_CLEAR), "off": (SKIP_CLEAR, SKIP_CLEAR)},
}  # fmt: skip

CASES = [
    pytest.param(
        level,
        kind,
        after,
        cells[level][after],
        id=f"{level}-{kind}-{'after' if after else 'before'}",
    )
    for kind, cells in EXPECTED.items()
    for level in PROTECTION_LEVELS
    for after in (False, True)
]


def as_tuple(d: Decision) -> tuple[bool, bool, bool]:
    return (d.ban_provider, d.skip_model, d.clear_sticky)


def test_expected_table_covers_every_error_kind() -> None:
    assert set(EXPECTED) == {k.value for k in ErrorKind}


def test_matrix_is_total() -> None:
    assert set(MATRIX) == {
        (level, kind, after)
        for level in PROTECTION_LEVELS
        for kind in ErrorKind
        for after in (False, True)
    }


@pytest.mark.parametrize(("level", "kind", "after", "expected"), CASES)
def test_decision_matches_the_table(
    level: str, kind: str, after: bool, expected: tuple[bool, bool, bool]
) -> None:
    assert as_tuple(decide(level, kind, after_first_byte=after)) == expected
    assert decide(level, ErrorKind(kind), after_first_byte=after) == decide(
        level, kind, after_first_byte=after
    )


@pytest.mark.parametrize("level", PROTECTION_LEVELS)
@pytest.mark.parametrize("after", [False, True])
def test_unknown_kind_is_treated_like_5xx(level: str, after: bool) -> None:
    assert decide(level, "teapot", after_first_byte=after) == decide(
        level, "5xx", after_first_byte=after
    )


def test_unknown_level_is_refused_with_the_valid_ones_named() -> None:
    with pytest.raises(ValueError, match="provider-ban, model-skip, off"):
        decide("paranoid", "5xx", after_first_byte=False)


def test_a_ban_always_skips_the_model_and_clears_the_pin() -> None:
    for decision in MATRIX.values():
        if decision.ban_provider:
            assert decision.skip_model and decision.clear_sticky


@pytest.mark.parametrize(
    ("decision", "text"),
    [
        (
            Decision(ban_provider=True, skip_model=True, clear_sticky=True),
            "ban provider for this session",
        ),
        (
            Decision(ban_provider=False, skip_model=True, clear_sticky=True),
            "skip model for this request, clear sticky model",
        ),
        (
            Decision(ban_provider=False, skip_model=True, clear_sticky=False),
            "skip model for this request",
        ),
        (Decision(ban_provider=False, skip_model=False, clear_sticky=True), "clear sticky model"),
        (Decision(ban_provider=False, skip_model=False, clear_sticky=False), "no action"),
    ],
)
def test_describe_reads_as_a_short_phrase(decision: Decision, text: str) -> None:
    assert decision.describe() == text


kinds = st.one_of(st.sampled_from([k.value for k in ErrorKind]), st.text(max_size=12))


@settings(database=None)
@given(level=st.sampled_from(PROTECTION_LEVELS), kind=kinds, after=st.booleans())
def test_decide_is_total_over_any_kind(level: str, kind: str, after: bool) -> None:
    assert isinstance(decide(level, kind, after_first_byte=after), Decision)


@settings(database=None)
@given(
    level=st.sampled_from(PROTECTION_LEVELS),
    kind=st.sampled_from([ErrorKind.CLIENT_CLOSED, ErrorKind.SHUTDOWN]),
    after=st.booleans(),
)
def test_nobody_is_punished_when_the_client_left_or_the_gateway_stops(
    level: str, kind: ErrorKind, after: bool
) -> None:
    assert decide(level, kind, after_first_byte=after) == Decision(False, False, False)


@settings(database=None)
@given(
    level=st.sampled_from(PROTECTION_LEVELS),
    kind=st.sampled_from([ErrorKind.STALL, ErrorKind.TRUNCATED]),
)
def test_breaking_off_mid_answer_always_clears_the_pin(level: str, kind: ErrorKind) -> None:
    assert decide(level, kind, after_first_byte=True).clear_sticky


@settings(database=None)
@given(level=st.sampled_from(PROTECTION_LEVELS), after=st.booleans())
def test_a_rate_limit_never_bans_a_provider(level: str, after: bool) -> None:
    assert not decide(level, ErrorKind.RATE_LIMITED, after_first_byte=after).ban_provider


def test_only_provider_ban_level_ever_bans() -> None:
    assert {level for (level, _, _), d in MATRIX.items() if d.ban_provider} == {"provider-ban"}
