"""Schema, created or migrated at start; `PRAGMA user_version` records how far it got."""

from __future__ import annotations

import aiosqlite

MIGRATIONS: tuple[str, ...] = (
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
)


async def migrate(db: aiosqlite.Connection) -> None:
    """Bring the schema up to date, one migration per transaction."""
    await db.execute("PRAGMA journal_mode=WAL")
    await db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at checkpoints, fast
    async with db.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    version = int(row[0]) if row else 0
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        await db.executescript(f"BEGIN; {script} PRAGMA user_version = {number}; COMMIT;")
