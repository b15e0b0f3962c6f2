"""The log's tables as Python sees them: columns, records to rows, rows to records, and INSERTs.

One list of columns per table serves the writer (records to rows, `log.py`), the repair of rows
SQLite refused (`repair.py`) and the readers (rows to records, `read.py`), so a column is added
in one place.

Each attempt row also stores its outcome (`attempt_outcome`, posteriors.py): what the live
posteriors learned from it. The startup reload (`stats.py`) sums those, so a restart changes
nothing the routing sees.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import aiosqlite

from ..domain.posteriors import attempt_outcome
from ..domain.records import AttemptRecord, LoggedRequest, RequestRecord

Row = tuple[object, ...]


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: Literal["text", "int", "real"]
    nullable: bool = False


REQUEST_COLUMNS = (
    Column("id", "text"), Column("started", "real"), Column("session", "text"),
    Column("requested_model", "text"), Column("streamed", "int"), Column("status", "int"),
    Column("latency_ms", "real"), Column("provider", "text", True), Column("model", "text", True),
    Column("error_kind", "text", True), Column("error", "text", True),
    Column("ttfb_ms", "real", True), Column("tokens_in", "int", True),
    Column("tokens_out", "int", True), Column("dialect", "text"), Column("client", "text", True),
)  # fmt: skip
"""The `requests` table, in the order of `request_row`; each is a `RequestRecord` field."""
ATTEMPT_RECORD_COLUMNS = (
    Column("attempt", "int"), Column("provider", "text"), Column("model", "text"),
    Column("started", "real"), Column("latency_ms", "real"), Column("status", "int", True),
    Column("error_kind", "text", True), Column("error", "text", True),
    Column("ttfb_ms", "real", True), Column("max_gap_ms", "real", True),
    Column("text_from", "int", True),
)  # fmt: skip
"""The `attempts` columns that are `AttemptRecord` fields, in its field order: a row of them is
`AttemptRecord(*row)` (checked below)."""
OUTCOME_COLUMNS = (
    Column("outcome_success", "int", True), Column("outcome_ttfb_ms", "real", True),
    Column("outcome_tokens_per_s", "real", True),
)  # fmt: skip
"""The attempt's `Outcome`: success 1 or 0 (NULL: it says nothing about the model), the time to
first byte and the speed it counted."""
ATTEMPT_COLUMNS = (Column("request_id", "text"), *ATTEMPT_RECORD_COLUMNS, *OUTCOME_COLUMNS)
"""The `attempts` table, in the order of `attempt_rows`."""

_RECORD_FIELDS = list(AttemptRecord.__struct_fields__)[: len(ATTEMPT_RECORD_COLUMNS)]
if [c.name for c in ATTEMPT_RECORD_COLUMNS] != _RECORD_FIELDS:  # pragma: no cover
    raise RuntimeError("ATTEMPT_RECORD_COLUMNS must follow AttemptRecord's fields, in order")

MAX_PARAMS = 32_000  # SQLite allows 32,766 bound parameters per statement (3.32 and newer)


def names(columns: Sequence[Column], prefix: str = "") -> str:
    return ", ".join(prefix + c.name for c in columns)


def request_row(r: LoggedRequest) -> Row:
    return (r.id, r.started, r.session, r.requested_model, int(r.streamed), r.status,
            r.latency_ms, r.provider, r.model, r.error_kind, r.error, r.ttfb_ms, r.tokens_in,
            r.tokens_out, r.dialect, r.client)  # fmt: skip


def attempt_rows(r: LoggedRequest) -> list[Row]:
    return [attempt_row(r.id, a, streamed=r.streamed, tokens_out=r.tokens_out) for a in r.attempts]


def attempt_row(
    request_id: str, a: AttemptRecord, *, streamed: bool, tokens_out: int | None
) -> Row:
    return (request_id, a.attempt, a.provider, a.model, a.started, a.latency_ms, a.status,
            a.error_kind, a.error, a.ttfb_ms, a.max_gap_ms, a.text_from,
            *outcome_values(a, streamed=streamed, tokens_out=tokens_out))  # fmt: skip


def outcome_values(a: AttemptRecord, *, streamed: bool, tokens_out: int | None) -> Row:
    """The `OUTCOME_COLUMNS` of one attempt: what `attempt_outcome` makes of it."""
    o = attempt_outcome(a, streamed=streamed, tokens_out=tokens_out)
    if o is None:
        return (None, None, None)
    return (int(o.success), o.ttfb_ms, o.tokens_per_s)


def request_record(row: Sequence[Any], attempts: Sequence[AttemptRecord]) -> RequestRecord:
    """A `RequestRecord` from a row of `REQUEST_COLUMNS`, in order."""
    values = dict(zip((c.name for c in REQUEST_COLUMNS), row, strict=True))
    values["streamed"] = bool(values["streamed"])
    return RequestRecord(**values, attempts=tuple(attempts))


def as_record(r: LoggedRequest) -> RequestRecord:
    """A frozen copy of a request still waiting to be written (a `Flow` may change later)."""
    return request_record(request_row(r), list(r.attempts))


def _insert(table: str, columns: Sequence[Column]) -> str:
    return f"INSERT OR REPLACE INTO {table} ({names(columns)}) VALUES "


_INSERT_REQUEST = _insert("requests", REQUEST_COLUMNS)
_INSERT_ATTEMPT = _insert("attempts", ATTEMPT_COLUMNS)


def multi_row(head: str, rows: Sequence[Row]) -> Iterator[tuple[str, list[object]]]:
    """One `INSERT ... VALUES (...), (...), ...` per chunk of rows instead of one step per row.

    `executemany` steps once per row and gives up and takes back the GIL around every step,
    which under load makes the writer thread and the event loop trade the GIL thousands of
    times a second. One statement per chunk trades it once.

    Chunks come in powers of two (a batch of 300 is 256 + 32 + 8 + 4 rows), so a table needs at
    most a dozen statements whatever its batches: each is compiled once and then found in the
    connection's statement cache. A statement per batch size filled that cache with a hundred
    statements of thousands of parameters each, compiled anew almost every batch: the gateway
    grew by about 45 MB in 15,000 requests and spent 5-10% more CPU per request
    (docs/BENCHMARKS.md).
    """
    if not rows:
        return
    width = len(rows[0])
    group = "(" + ", ".join("?" * width) + ")"
    size = 1 << ((MAX_PARAMS // width).bit_length() - 1)  # the largest that fits
    start, left = 0, len(rows)
    while left:
        while size > left:
            size >>= 1
        chunk = rows[start : start + size]
        yield _statement(head, group, size), [v for row in chunk for v in row]
        start, left = start + size, left - size


@functools.cache
def _statement(head: str, group: str, rows: int) -> str:
    return head + ", ".join([group] * rows)


async def insert_rows(db: aiosqlite.Connection, requests: list[Row], attempts: list[Row]) -> None:
    """Write the rows in one transaction and commit; the caller rolls back if this raises."""
    for sql, params in multi_row(_INSERT_REQUEST, requests):
        await db.execute(sql, params)
    for sql, params in multi_row(_INSERT_ATTEMPT, attempts):
        await db.execute(sql, params)
    await db.commit()
