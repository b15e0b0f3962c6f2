"""Per-model, per-time-bucket outcome sums from the attempts log, for `PosteriorBook.load`.

Each attempt row stores its outcome as the live path recorded it (`attempt_outcome`, written by
`rows.py`): success 1 or 0, or NULL when the ending says nothing about the model, and the time to
first byte and speed it counted. The reload only sums those columns, so after a restart every
posterior (counts, means, latency and speed terms) is the one the gateway had before it.

One aggregate query: SQLite does the grouping in aiosqlite's worker thread (the sqlite3 module
releases the GIL while a statement steps), so the event loop only receives one small row per model
and bucket: about 50 models x 168 hourly buckets for a week.

Whole buckets: the query reads from the start of the bucket holding the window's edge, as the live
book holds whole buckets; `PosteriorBook.load` then drops those whose midpoint left the window, as
`refresh` does.

Cost: the GROUP BY's temporary B-tree over the window's rows, not the scan. A million attempts
in the window take about 0.9 s on a small VM, and rows older than the window add about 50 ms per
million, so the schema needs no index for it (see docs/BENCHMARKS.md, "Routing (issue 3)").
"""

from __future__ import annotations

import functools
import math
from typing import Any, cast

import aiosqlite

from ..domain.posteriors import BucketRow
from .schema import OUTCOME_MODELS

_QUERY = f"""{OUTCOME_MODELS}
SELECT a.model,
       CAST(a.started / ? AS INTEGER) AS bucket,
       SUM(a.outcome_success) AS successes,
       COUNT(*) - SUM(a.outcome_success) AS failures,
       TOTAL(a.outcome_ttfb_ms) AS ttfb_sum,
       COUNT(a.outcome_ttfb_ms) AS ttfb_n,
       TOTAL(a.outcome_tokens_per_s) AS tps_sum,
       COUNT(a.outcome_tokens_per_s) AS tps_n
FROM outcome_models JOIN attempts AS a ON a.model = outcome_models.model
WHERE a.started >= ? AND a.outcome_success IS NOT NULL
GROUP BY a.model, bucket
"""
"""Model by model, a seek to the window's start in `attempts_outcomes`: the cost is what is in
the window, not what is in the log."""


async def load_buckets(
    db: aiosqlite.Connection, *, now: float, window_s: float, bucket_s: float
) -> list[BucketRow]:
    """Outcome sums per model and `bucket_s` bucket, for every bucket that reaches into the last
    `window_s` seconds.

    Runs in aiosqlite's worker thread; on a connection shared with the log writer it waits
    for (and then delays) the writer's batches, so a separate read connection is kinder.
    """
    if bucket_s <= 0:
        raise ValueError(f"bucket_s must be > 0, got {bucket_s}")
    since = math.floor((now - window_s) / bucket_s) * bucket_s
    async with db.execute(_QUERY, (bucket_s, since)) as cursor:
        # A cursor-level factory: the rows are built in aiosqlite's thread, not on the loop, and
        # whatever `row_factory` the shared connection has is left alone.
        cursor.row_factory = functools.partial(_bucket_row, bucket_s)  # type: ignore[assignment]
        rows = await cursor.fetchall()
    return cast(list[BucketRow], rows)


def _bucket_row(bucket_s: float, _cursor: object, row: tuple[Any, ...]) -> BucketRow:
    model, bucket, *sums = row
    return BucketRow(model, bucket * bucket_s, *sums)
