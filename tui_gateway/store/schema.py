"""Schema, created or migrated at start; `PRAGMA user_version` records how far it got.

A migration is an SQL script or, when it needs Python (a backfill), an async function; either way
it runs in one transaction with the version bump, so a failed one leaves the database as it was.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosqlite

from ..domain.records import AttemptRecord
from .connection import connect, stop
from .rows import ATTEMPT_RECORD_COLUMNS, names, outcome_values

BACKFILL_CHUNK = 20_000
"""Attempt rows read per query while backfilling their outcomes."""
_BACKFILL_COLUMNS = ATTEMPT_RECORD_COLUMNS[:9]
"""The attempt columns migration 6 reads: those of the schema it runs on (up to `ttfb_ms`);
columns added by later migrations do not exist yet when it runs."""


async def _backfill_outcomes(db: aiosqlite.Connection) -> None:
    """Each old attempt's outcome, as `attempt_outcome` makes it, for the posteriors' reload.

    Until issue 10 the reload derived outcomes in SQL and differed from the live ones: it counted
    a non-streamed success's time to first byte, and no speed at all. Old rows get the outcome
    the live path would have recorded: a few seconds per million attempts, once. Rows already
    filled are left alone, so running it again changes nothing.
    """
    select = (
        f"SELECT a.rowid, r.streamed, r.tokens_out, {names(_BACKFILL_COLUMNS, 'a.')}"
        " FROM attempts a LEFT JOIN requests r ON r.id = a.request_id"
        " WHERE a.rowid > ? AND a.outcome_success IS NULL ORDER BY a.rowid LIMIT ?"
    )
    update = (
        "UPDATE attempts SET outcome_success = ?, outcome_ttfb_ms = ?, outcome_tokens_per_s = ?"
        " WHERE rowid = ?"
    )
    last = 0
    while True:
        async with db.execute(select, (last, BACKFILL_CHUNK)) as cursor:
            cursor.row_factory = None
            rows: list[Any] = list(await cursor.fetchall())
        if not rows:
            return
        last = rows[-1][0]
        changes = []
        for rowid, streamed, tokens_out, *fields in rows:
            attempt = AttemptRecord(*fields)
            values = outcome_values(attempt, streamed=bool(streamed), tokens_out=tokens_out)
            if values[0] is not None:  # a neutral ending keeps NULLs: it counts for nothing
                changes.append((*values, rowid))
        await db.executemany(update, changes)


Migration = str | Callable[[aiosqlite.Connection], Awaitable[None]]

MIGRATIONS: tuple[Migration, ...] = (
    # 1: the request log
    """
    CREATE TABLE requests (
        id TEXT PRIMARY KEY,
        started REAL NOT NULL,
        session TEXT NOT NULL,
        requested_model TEXT NOT NULL,
        provider TEXT,
        model TEXT,
        status INTEGER NOT NULL,
        error_kind TEXT,
        error TEXT,
        latency_ms REAL NOT NULL,
        ttfb_ms REAL,
        tokens_in INTEGER,
        tokens_out INTEGER,
        streamed INTEGER NOT NULL
    );
    CREATE INDEX requests_started ON requests(started);
    CREATE TABLE attempts (
        request_id TEXT NOT NULL REFERENCES requests(id),
        attempt INTEGER NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        started REAL NOT NULL,
        status INTEGER,
        error_kind TEXT,
        error TEXT,
        latency_ms REAL NOT NULL,
        ttfb_ms REAL,
        PRIMARY KEY (request_id, attempt)
    );
    CREATE INDEX attempts_model_started ON attempts(provider, model, started);
    """,
    # 2: what the user decided at run time (pool order, enablement, bans, protection)
    """
    CREATE TABLE saved_state (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 3: which API the client spoke (chat, messages, responses)
    """
    ALTER TABLE requests ADD COLUMN dialect TEXT NOT NULL DEFAULT 'chat';
    """,
    # 4: no query reads attempts by provider and model (the reload groups a scan by model), and
    # the index cost every write
    """
    DROP INDEX IF EXISTS attempts_model_started;
    """,
    # 5: each attempt's outcome, what the live posteriors learned from it (rows.py): success 1 or
    # 0 (NULL: it says nothing about the model), and the time to first byte and speed it counted
    """
    ALTER TABLE attempts ADD COLUMN outcome_success INTEGER;
    ALTER TABLE attempts ADD COLUMN outcome_ttfb_ms REAL;
    ALTER TABLE attempts ADD COLUMN outcome_tokens_per_s REAL;
    """,
    # 6: the outcomes of the attempts logged before 5
    _backfill_outcomes,
    # 7: each attempt's largest gap between two chunks, for the learned stall timers
    # (domain/timers.py, store/timing.py); NULL in rows logged before, and for no stream.
    # And where a continuation's text starts in the answer (NULL: not a continuation).
    """
    ALTER TABLE attempts ADD COLUMN max_gap_ms REAL;
    ALTER TABLE attempts ADD COLUMN text_from INTEGER;
    """,
    # 8: whose assistant sent the request: the `[[clients]]` name of its key (NULL for
    # `server.api_key`, and for every request logged before)
    """
    ALTER TABLE requests ADD COLUMN client TEXT;
    """,
    # 9: each quota's use (domain/quotas.py), one row per bucket of its windows, upserted every
    # second while it changes (quota_usage.py), so a restart keeps the minute's and the day's
    # counts; pruned once out of its window, so it stays a few thousand rows per key and model
    """
    CREATE TABLE quota_usage (
        slot TEXT NOT NULL,
        window TEXT NOT NULL,
        bucket REAL NOT NULL,
        requests INTEGER NOT NULL,
        tokens INTEGER NOT NULL,
        PRIMARY KEY (slot, window, bucket)
    ) WITHOUT ROWID;
    """,
    # 10: for the analytics (analytics.py; docs/BENCHMARKS.md, "Analytics (issue 14)"): each
    # model's requests in time order with every column its figures read; the few failed requests
    # in time order; the failed attempts by provider and kind, in time order; and the attempts
    # after a first, in time order. Each grows at its end (or at the end of a model's, a
    # provider's and kind's run), which keeps it cheap to write; none is ordered by a value.
    """
    CREATE INDEX requests_by_model ON requests(provider, model, started, error_kind, latency_ms,
        ttfb_ms, streamed, tokens_in, tokens_out);
    CREATE INDEX requests_failed ON requests(started, error_kind) WHERE error_kind IS NOT NULL;
    CREATE INDEX attempts_errors ON attempts(provider, error_kind, started)
        WHERE error_kind IS NOT NULL;
    CREATE INDEX attempts_later ON attempts(started, attempt, text_from) WHERE attempt > 1;
    """,
    # 11: for the start-up reloads (stats.py, timing.py), which scanned every attempt in the log
    # (0.5 and 2.8 s at a million requests, growing with the log's age): each model's outcomes
    # in time order, so each reload seeks to a model's window or its newest, model by model
    # (`OUTCOME_MODELS` finds the models by seeks too). Grows at the end of each model's run.
    """
    CREATE INDEX attempts_outcomes ON attempts(model, started, outcome_success, outcome_ttfb_ms,
        outcome_tokens_per_s, max_gap_ms) WHERE outcome_success IS NOT NULL;
    """,
)
"""In order; the SQL ones alone (`sql_migrations()`) make a complete schema for a new file."""


OUTCOME_MODELS = """
WITH RECURSIVE outcome_models(model) AS (
    SELECT MIN(model) FROM attempts WHERE outcome_success IS NOT NULL
    UNION ALL
    SELECT (SELECT MIN(model) FROM attempts
            WHERE outcome_success IS NOT NULL AND model > outcome_models.model)
    FROM outcome_models WHERE outcome_models.model IS NOT NULL
)
"""
"""The models with an outcome in the log, as a CTE: one seek each into `attempts_outcomes`
(migration 11), where `SELECT DISTINCT` would read every entry. Ends with a NULL row."""


def sql_migrations() -> str:
    """The schema as one script, without the data backfills (which an empty log does not need):
    for tools that build a log with plain sqlite3. It sets the version, so the gateway opens
    such a log as it is."""
    steps = "".join(m for m in MIGRATIONS if isinstance(m, str))
    return f"{steps}PRAGMA user_version = {len(MIGRATIONS)};"


class SchemaError(Exception):
    """The file's schema could not be brought up to date: say, it is not a tui-gateway log."""


async def prepare(path: Path) -> None:
    """Create or migrate the log at `path`, then close it: the command line does it before the
    gateway starts, so a file it cannot use is an error that names it, not a traceback."""
    db = await connect(path)
    try:
        await migrate(db)
    finally:
        await stop(db)


async def migrate(db: aiosqlite.Connection) -> None:
    """Bring the schema up to date, one migration per transaction."""
    async with db.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    version = int(row[0]) if row else 0
    if version < len(MIGRATIONS):
        await _refuse_foreign(db, version)  # before WAL, which rewrites the file's header
    await db.execute("PRAGMA journal_mode=WAL")
    await db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at checkpoints, fast
    for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
        try:
            await _step(db, number, step)
        except sqlite3.Error as exc:
            raise SchemaError(
                f"bringing its schema from version {number - 1} to {number} failed: {exc}"
            ) from exc


async def _refuse_foreign(db: aiosqlite.Connection, version: int) -> None:
    """Raise SchemaError, before any change, for a file that is some other program's database."""
    rows = await db.execute_fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
    tables = {str(name) for (name,) in rows}
    if version == 0 and tables:
        raise SchemaError(
            f"it has tables ({', '.join(sorted(tables))}) but no tui-gateway schema version;"
            " it is not a tui-gateway request log"
        )
    if version > 0 and not {"requests", "attempts"} <= tables:
        raise SchemaError(
            f"its schema version is {version} but it has no requests and attempts tables;"
            " it is not a tui-gateway request log"
        )


async def _step(db: aiosqlite.Connection, number: int, step: Migration) -> None:
    try:
        if isinstance(step, str):
            await db.executescript(f"BEGIN; {step} PRAGMA user_version = {number}; COMMIT;")
        else:
            await db.execute("BEGIN")
            await step(db)
            await db.execute(f"PRAGMA user_version = {number}")
            await db.commit()
    except BaseException:
        # A script stops at its error mid-transaction; the step's error is the one to see.
        with contextlib.suppress(Exception):
            await db.rollback()
        raise
