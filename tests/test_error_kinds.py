"""Error kinds classify themselves, once, and every consumer follows (issue 10).

The expectations are written out here, independently of `errors.TRAITS`; each consumer
(statistics, the log's reload, cooldowns, thread protection, the client's error) is then asked
about every `ErrorKind` member, so a kind added without a classification fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tui_gateway.config import PROTECTION_LEVELS
from tui_gateway.domain.cooldowns import Cooldowns
from tui_gateway.domain.errors import TRAITS, Blame, ErrorKind, Stalled, UpstreamError
from tui_gateway.domain.posteriors import attempt_outcome
from tui_gateway.domain.protection import MATRIX, Decision
from tui_gateway.domain.records import AttemptRecord, RequestRecord
from tui_gateway.proxy.outcomes import mid_stream_error
from tui_gateway.store.log import RequestLog
from tui_gateway.store.stats import load_buckets

NEUTRAL, TRANSIENT, STALL, BROKE_OFF = "neutral", "transient", "stall", "broke_off"
UNCHARGED = "uncharged"
"""Not neutral (it cools and skips), yet no failure in the posterior: a key's spent quota."""
EXPECTED: dict[str, tuple[Blame, set[str]]] = {
    "5xx":             (Blame.PROVIDER, {TRANSIENT}),
    "connection":      (Blame.PROVIDER, {TRANSIENT}),
    "timeout":         (Blame.PROVIDER, {TRANSIENT, STALL}),
    "stall":           (Blame.PROVIDER, {TRANSIENT, STALL, BROKE_OFF}),
    "truncated":       (Blame.PROVIDER, {BROKE_OFF}),
    "wrapped":         (Blame.PROVIDER, set()),
    "outrun":          (Blame.PROVIDER, set()),
    "rate_limited":    (Blame.CAPACITY, set()),
    "quota":           (Blame.QUOTA, {UNCHARGED}),
    "client_error":    (Blame.MODEL, set()),
    "rejected":        (Blame.NOBODY, {NEUTRAL}),
    "key_rejected":    (Blame.KEY, {NEUTRAL}),
    "client_closed":   (Blame.NOBODY, {NEUTRAL}),
    "shutdown":        (Blame.NOBODY, {NEUTRAL}),
    "no_candidate":    (Blame.NOBODY, {NEUTRAL}),
    "invalid_request": (Blame.NOBODY, {NEUTRAL}),
    "unaligned":       (Blame.NOBODY, {NEUTRAL}),
    "hedged":          (Blame.NOBODY, {NEUTRAL}),
    "skipped":         (Blame.USER, {NEUTRAL}),
}  # fmt: skip
KINDS = list(ErrorKind)
NOTHING = Decision(ban_provider=False, skip_model=False, clear_sticky=False)


def has(kind: ErrorKind, trait: str) -> bool:
    return trait in EXPECTED[kind.value][1]


def test_every_kind_has_traits_and_an_expectation() -> None:
    assert set(TRAITS) == set(ErrorKind)
    assert set(EXPECTED) == {k.value for k in ErrorKind}


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_the_kind_knows_its_traits(kind: ErrorKind) -> None:
    blame, traits = EXPECTED[kind.value]
    assert kind.blame is blame
    assert {t for t in (NEUTRAL, TRANSIENT, STALL, BROKE_OFF) if getattr(kind, t)} | (
        {UNCHARGED} if not kind.charges and not kind.neutral else set()
    ) == traits


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_statistics_count_every_kind_but_the_neutral_ones_as_a_failure(kind: ErrorKind) -> None:
    a = AttemptRecord(1, "p", "p/m", 1000.0, 900.0, error_kind=kind.value, ttfb_ms=100.0)
    outcome = attempt_outcome(a, streamed=True, tokens_out=10)
    if has(kind, NEUTRAL) or has(kind, UNCHARGED):
        assert outcome is None
    else:
        assert outcome is not None and not outcome.success


async def test_the_reload_counts_what_the_live_path_counts_for_every_kind(tmp_path: Path) -> None:
    log = RequestLog(tmp_path / "log.db")
    await log.open()
    for n, kind in enumerate(KINDS):
        a = AttemptRecord(1, "p", f"p/{kind.value}", 1000.0, 900.0, error_kind=kind.value)
        log.append(RequestRecord(f"r{n}", 1000.0, "s", "auto", True, 502, 900.0, attempts=(a,)))
    try:
        await log.flush()
        rows = await load_buckets(log.db, now=2000.0, window_s=86400.0, bucket_s=3600.0)
    finally:
        await log.close()
    failed = {r.model.removeprefix("p/") for r in rows if r.failures == 1 and r.successes == 0}
    assert failed == {k.value for k in KINDS if not has(k, NEUTRAL) and not has(k, UNCHARGED)}
    assert len(rows) == len(failed)


@pytest.mark.parametrize("kind", [*KINDS, "teapot"], ids=str)
def test_cooldowns_cool_the_model_for_transient_kinds_and_the_key_for_a_rate_limit(
    kind: ErrorKind | str,
) -> None:
    entry = Cooldowns().record_failure(model="p/m", provider="p", kind=kind, key_id="k", now=0.0)
    if isinstance(kind, ErrorKind) and has(kind, TRANSIENT):
        assert entry is not None and entry.key_id is None
    elif kind in (ErrorKind.RATE_LIMITED, ErrorKind.QUOTA):  # a 429: that key waits
        assert entry is not None and entry.key_id == "k"
    else:
        assert entry is None


@pytest.mark.parametrize("kind", KINDS, ids=str)
@pytest.mark.parametrize("level", PROTECTION_LEVELS)
def test_protection_has_a_cell_for_every_kind_and_spares_the_neutral_ones(
    kind: ErrorKind, level: str
) -> None:
    before, after = MATRIX[level, kind, False], MATRIX[level, kind, True]
    if kind is ErrorKind.SKIPPED:  # the user moved on: leave the model, learn nothing about it
        assert before == after and before.skip_model and before.clear_sticky
        assert not before.ban_provider
    elif has(kind, NEUTRAL):
        assert before == after == NOTHING
    else:
        assert before.skip_model
    assert after.clear_sticky == (before.clear_sticky or has(kind, BROKE_OFF))


def test_rejected_is_in_protections_table_as_nobodys_fault() -> None:
    """Issue 10 named `rejected` as the kind a hand-kept table forgot: every level spares it."""
    for level in PROTECTION_LEVELS:
        assert MATRIX[level, ErrorKind.REJECTED, False] == NOTHING


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_the_client_is_told_of_a_timeout_exactly_for_the_stall_kinds(kind: ErrorKind) -> None:
    exc = Stalled("quiet", kind=kind) if has(kind, STALL) else UpstreamError("x", kind=kind)
    error = mid_stream_error(exc, "p/m")
    assert (error.type == "stream_timeout") == has(kind, STALL)
