"""What a request's row says about its silence (issue 11): `stalling` past its model's usual,
the `quiet` colour against the silence the attempt is allowed, and which request is quietest."""

from __future__ import annotations

from typing import Any

import pytest

from tui_gateway.domain.views import FlowView
from tui_gateway.tui.rescue import ban_message, quietest, silence, skip_message
from tui_gateway.tui.widgets.request_rows import Timeouts, quiet_cell, row_cells, state_cell

NOW = 1_000_000.0
CONFIGURED = Timeouts(first_byte_s=10.0, stall_s=20.0)


def flow(**changes: Any) -> FlowView:
    """A request streaming since 30 s ago, its last chunk `quiet` seconds ago (default 1)."""
    quiet = changes.pop("quiet", 1.0)
    fields: dict[str, Any] = {
        "id": "r1", "session": "s", "requested_model": "auto", "model": "a/1", "provider": "a",
        "attempt": 1, "state": "streaming", "stream": True, "dialect": "chat",
        "started": NOW - 30, "ttfb_ms": 5.0, "chunks": 3, "heartbeats": 0,
        "last_chunk_at": NOW - quiet, "failures": (), "finished_at": None, "status": None,
        "error_kind": None,
    }  # fmt: skip
    return FlowView(**{**fields, **changes})


@pytest.mark.parametrize(
    ("quiet", "state", "colour"),
    [
        (0.04, ("streaming", "cyan"), "dim"),
        (0.06, ("stalling", "bold yellow"), "dim"),  # past its usual longest gap of 0.05 s
        (1.1, ("stalling", "bold yellow"), "yellow"),  # past half of its learned 2 s
        (1.7, ("stalling", "bold red"), "bold red"),  # past 80 % of it
    ],
)
def test_stalling_starts_past_the_models_usual_gap_and_colours_scale_to_its_limit(
    quiet: float, state: tuple[str, str], colour: str
) -> None:
    request = flow(quiet=quiet, limit_s=2.0, usual_s=0.05)
    assert state_cell(request, NOW, CONFIGURED) == state
    assert quiet_cell(request, NOW, CONFIGURED) == (f"{quiet:.1f}s", colour)


@pytest.mark.parametrize(
    ("quiet", "state", "colour"),
    [
        (9.0, ("streaming", "cyan"), "dim"),
        (11.0, ("stalling", "bold yellow"), "yellow"),  # half the configured 20 s
        (17.0, ("stalling", "bold red"), "bold red"),
    ],
)
def test_without_history_stalling_starts_at_half_the_limit(
    quiet: float, state: tuple[str, str], colour: str
) -> None:
    request = flow(quiet=quiet)  # no limit of its own (a snapshot from an older gateway)
    assert state_cell(request, NOW, CONFIGURED) == state
    assert quiet_cell(request, NOW, CONFIGURED)[1] == colour
    with_limit = flow(quiet=quiet, limit_s=20.0)  # the proxy's limit, not learned: the same
    assert state_cell(with_limit, NOW, CONFIGURED) == state


def test_before_the_first_byte_silence_counts_from_the_start_against_its_limit() -> None:
    waiting = flow(state="waiting", last_chunk_at=None, started=NOW - 1.5, ttfb_ms=None)
    assert state_cell(waiting, NOW, CONFIGURED) == ("waiting", "")  # 1.5 s of 10 s
    learned = flow(state="waiting", last_chunk_at=None, started=NOW - 1.5, limit_s=2.4, usual_s=0.8)
    assert state_cell(learned, NOW, CONFIGURED) == ("stalling", "bold yellow")
    assert quiet_cell(learned, NOW, CONFIGURED) == ("1.5s", "yellow")


def test_a_fallback_or_continuation_is_named_not_called_stalling() -> None:
    continuing = flow(state="continuing", quiet=5, usual_s=0.1, limit_s=2)
    assert state_cell(continuing, NOW, CONFIGURED)[0] == "continuing"
    assert state_cell(flow(attempt=2, state="waiting", quiet=5), NOW, CONFIGURED)[0] == "fallback"


def test_the_quietest_request_is_the_one_silent_longest() -> None:
    streaming = flow(id="a", quiet=3.0)
    waiting = flow(id="b", last_chunk_at=None, started=NOW - 4.0)  # no byte yet: since its start
    done = flow(id="c", quiet=60.0, finished_at=NOW - 1, status=200)
    assert silence(waiting, NOW) == 4.0
    assert quietest([streaming, waiting, done], NOW) == waiting
    twin = flow(id="d", quiet=4.0, started=NOW - 50)  # as quiet, and older: it goes first
    assert quietest([waiting, twin], NOW) == twin
    assert quietest([done], NOW) is None


def test_messages_say_what_happened() -> None:
    assert skip_message("r1", True, "a/1") == ("moved r1 on from a/1", False)
    assert skip_message("r1", False, "a/1") == (
        "r1 is between attempts: nothing to cut right now",
        True,
    )
    assert skip_message("r1", None, None) == ("r1 already finished", True)
    assert ban_message("a/1", 0) == "banned a/1"
    assert ban_message("provider a", 2) == "banned provider a: its 2 requests in flight move on"


def test_a_race_is_named_with_both_models_not_called_stalling() -> None:
    racing = flow(state="hedging", racer="b/2", last_chunk_at=None, ttfb_ms=None)
    cells = row_cells(racing, NOW, CONFIGURED)
    assert cells[6] == ("hedging", "bold magenta")  # though 30 s quiet is past half the limit
    assert cells[3] == ("a/1⇄b/2", "")
    done = flow(racer="b/2", finished_at=NOW, status=200)
    assert row_cells(done, NOW, CONFIGURED)[3] == ("a/1", "")
