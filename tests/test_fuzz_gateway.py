"""Random hostile requests to a real gateway process (issue 8's property).

After each drawn request: its answer is a 200 or a 4xx with a JSON error body, never a 5xx, and a
valid request right after it is answered. At the end the process stops on one SIGTERM and every
one of those valid requests has its row in the request log, so no drawn request stopped the
log writer. scripts/fuzz_gateway.py runs the same strategies for longer.
"""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

from hypothesis import HealthCheck, given, settings

from scripts.fuzz_gateway import (
    HostileRequest,
    check_answer,
    controls_touched,
    hostile_requests,
    send,
    send_valid,
    undo_controls,
)
from tests.factories import gateway_stderr, headless_gateway

KEY = "cli-key"


def test_random_requests_get_no_5xx_never_stop_the_log_and_one_sigterm_stops_it(
    tmp_path: Path,
) -> None:
    with headless_gateway(tmp_path) as (proc, url, db):
        base = url.removesuffix("/v1")
        logged: list[str] = []

        @settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
        @given(hostile_requests())
        def answered_in_shape(request: HostileRequest) -> None:
            check_answer(send(base, KEY, request), request.path)
            if controls_touched(request):
                undo_controls(base, KEY)
            logged.append(send_valid(base, KEY))

        answered_in_shape()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert "Traceback" not in gateway_stderr(tmp_path)
    with sqlite3.connect(db) as conn:
        found = {row[0] for row in conn.execute("SELECT id FROM requests WHERE status = 200")}
    missing = [request_id for request_id in logged if request_id not in found]
    assert not missing, f"{len(missing)} of {len(logged)} valid requests have no log row"
