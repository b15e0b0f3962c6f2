"""The pure helpers of scripts/bench_attach.py: reading an attached screen's status line."""

from __future__ import annotations

import math

from scripts.bench import Result
from scripts.bench_attach import merge, ratio, read_status, rises

LINE = (
    "http://127.0.0.1:4141/v1 key bench-key  17795 req/min  err 0%  in flight 27  done 17795"
    "  lag 3ms  attached"
)


def test_reads_done_and_attached_from_the_status_line() -> None:
    status = read_status(f"requests pane\n{LINE}\nmore\n")
    assert status is not None
    assert (status.done, status.attached) == (17795, True)
    assert status.line == LINE


def test_a_disconnected_screen_is_not_attached() -> None:
    status = read_status(LINE.replace("attached", "DISCONNECTED, retrying (see events)"))
    assert status is not None and not status.attached


def test_no_status_line_or_a_count_cut_at_the_edge_reads_as_none() -> None:
    assert read_status("nothing here\n") is None
    assert read_status("x" * 112 + " done 12", columns=120) is None  # 120 wide


def test_rises_counts_the_pairs_that_went_up() -> None:
    assert rises([1, 2, 2, 5, 4, 9]) == 3
    assert rises([7]) == 0


def test_merge_adds_every_measurement() -> None:
    total, one = Result(latencies=[0.1], elapsed_s=1.0, cpu_s=0.5), Result(latencies=[0.2])
    one.note_error("HTTP 502")
    one.mock_cpu_s, one.client_cpu_s = 0.25, 0.125
    merge(total, one)
    merge(total, one)
    assert total.latencies == [0.1, 0.2, 0.2]
    assert (total.errors, total.error_kinds) == (2, {"HTTP 502": 2})
    assert (total.mock_cpu_s, total.client_cpu_s, total.cpu_s) == (0.5, 0.25, 0.5)


def test_ratio_is_nan_without_a_baseline() -> None:
    assert ratio(9.0, 10.0) == 0.9
    assert math.isnan(ratio(1.0, 0.0))
