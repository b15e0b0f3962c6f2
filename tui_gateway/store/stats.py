"""Per-model, per-time-bucket outcome counts from the attempts log, for `PosteriorBook.load`.

One aggregate query: SQLite does the grouping in aiosqlite's worker thread (the sqlite3 module
releases the GIL while a statement steps), so the event loop only receives one small row per model
and bucket: about 50 models x 168 hourly buckets for a week.

Tokens per second: the log has no column for it (attempts keep no token counts), so every row
carries `tps_sum = 0, tps_n = 0` and loaded posteriors have `tokens_per_s = None` until outcomes
recorded live bring it (the scoring then uses a neutral speed).

Cost: the GROUP BY's temporary B-tree over the window's rows, not the scan. A million attempts
in the window take about 0.9 s on a small VM, and rows older than the window add about 50 ms per
million, so the schema needs no new index (`attempts_model_started(provider, model, started)` is
not used; see docs/BENCHMARKS.md, "Routing (issue 3)").
"""

from __future__ import annotations

import functools
from typing import Any, cast

import aiosqlite

from ..domain.posteriors import NEUTRAL_ERROR_KINDS, BucketRow

_NEUTRAL = tuple(sorted(NEUTRAL_ERROR_KINDS))
_PLACEHOLDERS = ", ".join("?" * len(_NEUTRAL))
_QUERY = f"""
SELECT model,
       CAST(started / ? AS INTEGER) AS bucket,
       SUM(error_kind IS NULL) AS successes,
       SUM(error_kind IS NOT NULL AND error_kind NOT IN ({_PLACEHOLDERS})) AS failures,
       TOTAL(CASE WHEN error_kind IS NULL THEN ttfb_ms END) AS ttfb_sum,
       COUNT(CASE WHEN error_kind IS NULL THEN ttfb_ms END) AS ttfb_n
FROM attempts
WHERE started >= ?
GROUP BY model, bucket
HAVING successes + failures > 0
"""
"""Successes are attempts with no error kind; failures any kind but the neutral ones (the client
left, the gateway stopped, the request was invalid, no candidate was left), which count as neither.
A success's ttfb_ms feeds the latency term; a failure's does not."""


async def load_buckets(
    db: aiosqlite.Connection, *, now: float, window_s: float, bucket_s: float
) -> list[BucketRow]:
    """Outcome counts per model and `bucket_s` bucket, for attempts started in the last `window_s`.

    Runs in aiosqlite's worker thread; on a connection shared with the log writer it waits
    for (and then delays) the writer's batches, so a separate read connection is kinder.
    """
    if bucket_s <= 0:
        raise ValueError(f"bucket_s must be > 0, got {bucket_s}")
    params = (bucket_s, *_NEUTRAL, now - window_s)
    async with db.execute(_QUERY, params) as cursor:
        # A cursor-level factory: the rows are built in aiosqlite's thread, not on the loop, and
        # whatever `row_factory` the shared connection has is left alone.
        cursor.row_factory = functools.partial(_bucket_row, bucket_s)  # type: ignore[assignment]
        rows = await cursor.fetchall()
    return cast(list[BucketRow], rows)


def _bucket_row(bucket_s: float, _cursor: object, row: tuple[Any, ...]) -> BucketRow:
    model, bucket, successes, failures, ttfb_sum, ttfb_n = row
    return BucketRow(model, bucket * bucket_s, successes, failures, ttfb_sum, ttfb_n, 0.0, 0)
