"""Logged requests read back as `RequestRecord`s: one query for the requests, one for all their
attempts (per chunk of `MAX_PARAMS` ids), whatever the number of requests.

Rows are read as plain tuples in the order of `rows.py`'s columns: a cursor-level factory, so
whatever `row_factory` the shared connection has is neither relied on nor changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import aiosqlite

from ..domain.records import AttemptRecord, RequestRecord
from .rows import ATTEMPT_RECORD_COLUMNS, MAX_PARAMS, REQUEST_COLUMNS, names, request_record

_REQUESTS = f"SELECT {names(REQUEST_COLUMNS)} FROM requests "
_ATTEMPTS = f"SELECT request_id, {names(ATTEMPT_RECORD_COLUMNS)} FROM attempts WHERE request_id IN "


async def read_requests(
    db: aiosqlite.Connection, clause: str, params: Sequence[object] = ()
) -> list[RequestRecord]:
    """The requests `SELECT ... FROM requests <clause>` finds, in its order, with their attempts.

    Args:
        clause: What follows `FROM requests`, e.g. `"WHERE id = ?"` or
            `"ORDER BY started DESC LIMIT ?"`, with `?` for each of `params`.
    """
    rows = await _fetch(db, _REQUESTS + clause, params)
    attempts = await read_attempts(db, [row[0] for row in rows])
    return [request_record(row, attempts.get(row[0], ())) for row in rows]


async def read_attempts(
    db: aiosqlite.Connection, request_ids: Sequence[str]
) -> dict[str, list[AttemptRecord]]:
    """Each request's attempts in order, for every id in `request_ids` that has any."""
    found: dict[str, list[AttemptRecord]] = {}
    unique = list(dict.fromkeys(request_ids))
    for start in range(0, len(unique), MAX_PARAMS):
        chunk = unique[start : start + MAX_PARAMS]
        sql = f"{_ATTEMPTS}({', '.join('?' * len(chunk))}) ORDER BY request_id, attempt"
        for request_id, *fields in await _fetch(db, sql, chunk):
            found.setdefault(request_id, []).append(AttemptRecord(*fields))
    return found


async def _fetch(db: aiosqlite.Connection, sql: str, params: Sequence[object]) -> list[Any]:
    async with db.execute(sql, params) as cursor:
        cursor.row_factory = None  # plain tuples, whatever the connection's factory
        return cast(list[tuple[Any, ...]], list(await cursor.fetchall()))
