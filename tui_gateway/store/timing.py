"""Each model's recent stream timings from the attempts log, for `LearnedTimers` at start.

A successful streamed attempt is one whose stored outcome (`attempt_outcome`, written by
`rows.py`) is a success with a time to first byte: the posteriors count a first byte only for a
streamed success, so no join with `requests` is needed. Its `max_gap_ms` (migration 7) is NULL in
rows logged before that column existed: those teach the first-byte timer only.

One query: SQLite numbers each model's streamed successes newest first (a window function, in
aiosqlite's worker thread) and returns the newest `per_model` of each, oldest first, so that
`observe` sees them in the order they happened and the newest stay in the window.

Cost: the window function's sort of every streamed success by model and time, as in `stats.py`'s
GROUP BY. A million attempts (800,000 successes, 50 models) take about 1.2 s on a small VM, in
the worker thread; `since` bounds the rows sorted (the filter's scan is about 0.1 s a million).
The schema keeps no index for it: one would cost every write.
"""

from __future__ import annotations

from typing import Any

import aiosqlite

from ..domain.timers import LearnedTimers
from .schema import OUTCOME_MODELS

_QUERY = f"""{OUTCOME_MODELS}
SELECT a.model, a.outcome_ttfb_ms, a.max_gap_ms
FROM outcome_models JOIN attempts AS a ON a.rowid IN (
    SELECT rowid FROM attempts
    WHERE model = outcome_models.model AND outcome_success = 1
          AND outcome_ttfb_ms IS NOT NULL{{since}}
    ORDER BY started DESC, rowid DESC
    LIMIT ?
)
ORDER BY a.model, a.started, a.rowid
"""
"""Each model's newest, read backwards from the end of its run in `attempts_outcomes`."""


async def load_timer_history(
    db: aiosqlite.Connection,
    timers: LearnedTimers,
    *,
    per_model: int = 50,
    since: float | None = None,
) -> int:
    """Feed `timers` each model's `per_model` most recent successful streamed attempts.

    Args:
        db: The request log (a separate read connection spares the log writer a wait).
        timers: Observed in each model's order, newest last.
        per_model: Attempts read per model; more than the timers' window would be dropped anyway.
        since: Only attempts started at or after this epoch time (None: the whole log), so a
            model not used for weeks does not come back with its old habits.

    Returns:
        The number of attempts observed.
    """
    if per_model < 1:
        raise ValueError(f"per_model must be >= 1, got {per_model}")
    sql = _QUERY.format(since="" if since is None else " AND started >= ?")
    params: tuple[float, ...] = (per_model,) if since is None else (since, per_model)
    async with db.execute(sql, params) as cursor:
        cursor.row_factory = None  # plain tuples, whatever the shared connection uses
        rows: list[Any] = list(await cursor.fetchall())
    for model, ttfb_ms, gap_ms in rows:
        timers.observe(
            model,
            first_byte_s=ttfb_ms / 1000.0,
            max_gap_s=None if gap_ms is None else gap_ms / 1000.0,
        )
    return len(rows)
