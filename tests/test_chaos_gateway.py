"""A short soak of a real gateway process: clients, faults and a restless user at once.

scripts/chaos_gateway.py holds the run and its rules (every answer a 200, a 502/503 in shape
or a 429 with Retry-After, each with its log row's id and status, none slow, nothing left in
flight, a clean stop); here it runs for a few seconds, with the default routing, with hedging,
and with every model at a small quota. Longer: `python scripts/chaos_gateway.py --seconds 60`.
"""

from __future__ import annotations

import pytest

from scripts.chaos_gateway import DOORS, arguments, run


@pytest.mark.parametrize(
    "routing", [[], ["--hedge"], ["--quota-rpm", "4"]], ids=["default", "hedged", "at-quota"]
)
async def test_clients_faults_and_the_users_keys_at_once_break_no_rule(routing: list[str]) -> None:
    timing = ["--seconds", "5", "--clients", "6", "--request-timeout-s", "2"]
    tally = await run(arguments([*timing, *routing]))
    assert not tally.problems, "\n".join(tally.problems[:20])
    assert tally.attempts["ok"] > 5 and tally.actions  # requests were served, keys pressed
    assert {answer.path for answer in tally.answers} == {door.path for door in DOORS}
    # The faults were met, not routed around: the user's skips and the upstreams' own.
    assert tally.attempts["skipped"] > 0
    assert tally.attempts["stall"] + tally.attempts["connection"] + tally.attempts["5xx"] > 0
    if "--hedge" in routing:
        assert tally.attempts["outrun"] > 0  # a late first byte was raced, and the race won
    if "--quota-rpm" in routing:  # models at their quota: passed over, then the client told when
        assert any(answer.status == 429 for answer in tally.answers)
