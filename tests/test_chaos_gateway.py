"""A short soak of real gateway processes: clients, faults and a restless user at once.

scripts/chaos_gateway.py makes the load and scripts/chaos_rules.py holds the rules (every
answer a 200 with its text whole, a 502/503 in shape or a 429 with Retry-After, each with its
log row's id and status, none slow, one log row per request, nothing left in flight, a clean stop, even one
under load, and in a cluster the same shared state on every gateway); here each mode runs for
a few seconds.
Longer: `python scripts/chaos_gateway.py --seconds 60`.
"""

from __future__ import annotations

import shutil

import pytest

from scripts.chaos_gateway import arguments, run
from scripts.chaos_rules import DOORS

MODES = {
    "default": [],
    "hedged": ["--hedge"],
    "at-quota": ["--quota-rpm", "4"],
    "cluster": ["--cluster", "2"],
    "stopped": ["--stop-under-load"],
    "screen": ["--screen"],
}
NEEDS = {"cluster": "redis-server", "screen": "tmux"}


@pytest.mark.parametrize("mode", list(MODES))
async def test_clients_faults_and_the_users_keys_at_once_break_no_rule(mode: str) -> None:
    if (tool := NEEDS.get(mode)) and shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (apt-get install -y {tool})")
    timing = ["--seconds", "4", "--clients", "6", "--request-timeout-s", "2"]
    tally = await run(arguments([*timing, *MODES[mode]]))
    assert not tally.problems, "\n".join(tally.problems[:20])
    assert tally.attempts["ok"] > 5 and tally.actions  # requests were served, keys pressed
    assert {answer.path for answer in tally.answers} == {door.path for door in DOORS}
    # The faults were met, not routed around: the user's skips and the upstreams' own.
    assert tally.attempts["skipped"] > 0
    assert tally.attempts["stall"] + tally.attempts["connection"] + tally.attempts["5xx"] > 0
    if mode == "hedged":
        assert tally.attempts["outrun"] > 0  # a late first byte was raced, and the race won
    if mode == "at-quota":  # models at their quota: passed over, then the client told when
        assert any(answer.status == 429 for answer in tally.answers)
    if mode == "cluster":
        assert {answer.gateway for answer in tally.answers} == {0, 1}
    if mode == "screen":  # the TUI took its keys, kept counting, and quit cleanly on q
        assert sum(tally.keys.values()) > 5
    if mode == "stopped":  # a SIGTERM mid-traffic: those in flight were ended, then refused
        assert any(answer.unsent for answer in tally.answers)
