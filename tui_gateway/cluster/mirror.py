"""The Redis mirror: the shared parts' changes go out, other gateways' come in, off the hot path.

The request path never waits on Redis. The parts report each change to `Mirror.changed`, which
only queues it (pending.py) and wakes the writer; the writer, every `BATCH_S` at most,
pipelines the queue as SET/DEL (with the change's TTL), HINCRBYFLOAT for posterior buckets,
HINCRBY for quota counts (with their window as TTL) and one PUBLISH of the batch. The
subscriber applies the other gateways' batches to the local parts (skipping its own echoes by
origin id, but for a value another gateway's crossed: echoes.py); reads stay local.

Quotas are shared exactly in their totals (every count is an atomic increment), and admission
reads the local copy: two gateways can each admit a key's last requests within the same
`BATCH_S` (plus a round trip) before hearing of the other's, so only a burst that fast, across
gateways, can overshoot a quota (by what the others admitted in it). Why not a Redis round trip per
request: the request path would then wait on Redis (a stalled Redis would stall every limited
request), and a rolling window in Redis means summing up to 1,440 buckets per check.

One supervisor task owns the link. On (re)connecting it subscribes first, so nothing published
meanwhile is missed, then syncs: a store without the epoch key (new, or restarted without its
data) is seeded with all this gateway knows, and the others are told to reload; otherwise what
was queued while Redis was away is written, then everything is loaded (SCAN). When Redis fails
or stalls, the gateway says so once (a state event and the snapshot's `cluster`), goes on with
its local state, keeps queueing, and retries with a backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Coroutine
from dataclasses import asdict
from typing import Any

import redis.asyncio as redis
from redis.asyncio.client import Pipeline, PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ..asyncio_utils import spawn
from ..config_cluster import ClusterSettings
from ..domain.changes import Change
from ..domain.cooldowns import Cooldowns
from ..domain.posteriors import BucketRow, PosteriorBook
from ..domain.quotas import Quotas, UsageRow
from ..domain.replica import Replica, Shared
from ..domain.sticky import StickySessions
from .echoes import Echoes
from .layout import BUCKET_FIELDS, Layout, decode_batch, encode_batch, mask_url, row_of
from .pending import Batch, Pending

log = logging.getLogger("tui_gateway.cluster")

TIMEOUT_S = 1.0
"""Longest wait on one Redis call: past it Redis counts as down (the gateway goes on locally)."""
SYNC_TIMEOUT_S = 5.0
"""Longest a whole (re)sync may take (seeding or loading everything)."""
ENDED_ELSEWHERE = (Cooldowns.PART, StickySessions.PART)
"""The parts whose entries another gateway ends (a cooldown cleared, a session forgotten);
conversations, refusals and controls are only ever added to or replaced whole."""
START_WAIT_S = 2.0
"""How long start-up waits for the first sync before serving on local state."""
BATCH_S = 0.05
"""The writer gathers changes this long before it writes: a burst of requests costs one
pipeline, not one each (Redis round trips cost the gateway CPU), and others still hear of a
change well within a second."""
PING_S = 2.0
"""A quiet link is pinged this often, so a stalled Redis is noticed without traffic."""
BACKOFF_S = (0.1, 2.0)
"""First and longest wait between reconnection attempts."""


class Mirror:
    """Keeps a `GatewayState`'s shared parts in step with Redis and the other gateways."""

    def __init__(self, state: Shared, settings: ClusterSettings) -> None:
        if settings.redis_url is None:
            raise ValueError("a mirror needs [cluster] redis_url")
        self._replica = Replica(state)
        self._layout = Layout(settings.prefix)
        self._bucket_ttl_s = state.book.window_s + state.book.bucket_s
        """A bucket is of no use once its hour has left the recency window."""
        self.origin = secrets.token_hex(8)
        """This gateway's id in the change feed (its own echoes are skipped: see echoes.py)."""
        self._echoes = Echoes()
        self._pending = Pending()
        self._wake = asyncio.Event()
        self._ready = asyncio.Event()
        self._redis = redis.Redis.from_url(
            settings.redis_url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),  # the supervisor reconnects, with its own backoff
        )  # fmt: skip
        self._task: asyncio.Task[None] | None = None
        self._connected = False
        self._links = 0
        """Syncs that succeeded (the backoff restarts after one)."""
        state.cluster.url = mask_url(settings.redis_url)

    # --- lifetime (proxy/app.py's resources) -------------------------------------------------

    async def start(self) -> None:
        """Start mirroring; waits for the first sync, but never long: Redis may be down."""
        self._replica.attach(self.changed)
        self._task = spawn(self._supervise(), name="cluster-mirror")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(START_WAIT_S):
                await self._ready.wait()

    async def close(self) -> None:
        """Stop: write what is still queued (briefly, if Redis is there), then disconnect."""
        self._replica.attach(None)
        connected = self._connected
        if self._task is not None:
            self._task.cancel()
            # Bounded: a redis-py call caught mid-cancel (a pub/sub close waiting on the
            # connection the listener held) must not keep the gateway from stopping.
            await asyncio.wait({self._task}, timeout=2 * TIMEOUT_S)  # its own wait is bounded
            if not self._task.done():
                log.warning("cluster: the link did not stop within %.0f s", 2 * TIMEOUT_S)
        if connected and self._pending:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(TIMEOUT_S):
                    await self._flush()
        closing = spawn(self._redis.aclose(), name="cluster-close")
        await asyncio.wait({closing}, timeout=TIMEOUT_S)

    # --- the hot path's only call ------------------------------------------------------------

    def changed(self, change: Change) -> None:
        """A shared part changed here: queue it for the writer (no I/O, no await)."""
        self._pending.add(change)
        self._wake.set()

    # --- the link ----------------------------------------------------------------------------

    async def _supervise(self) -> None:
        backoff = BACKOFF_S[0]
        while True:
            links = self._links
            try:
                await self._session()
            except Exception as exc:  # Redis down, stalled or refusing: local state carries on
                self._lost(exc)
            self._ready.set()  # start-up does not wait for a Redis that is not there
            # Back off while it stays away; retry at once-ish after a link that worked.
            backoff = BACKOFF_S[0] if self._links != links else min(backoff * 2, BACKOFF_S[1])
            await asyncio.sleep(backoff)

    async def _session(self) -> None:
        """One connection's life: subscribe, sync, then write and listen until something fails."""
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        self._echoes.clear()
        try:
            async with asyncio.timeout(SYNC_TIMEOUT_S):
                await pubsub.subscribe(self._layout.channel)
                await self._sync()
            self._connected = True
            self._links += 1
            self._replica.link_changed(connected=True)
            self._ready.set()
            await _first_to_fail(self._write_loop(), self._listen(pubsub))
        finally:
            self._connected = False
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]  # typed from redis 8.2

    def _lost(self, exc: Exception) -> None:
        reason = _describe(exc)
        if self._replica.link_changed(connected=False, error=reason):
            log.warning("cluster: redis unreachable (%s), running on local state", reason)

    async def _sync(self) -> None:
        if await self._redis.set(self._layout.epoch, self.origin, nx=True):
            await self._seed()  # a store without our picture: give it all of it
        else:
            await self._flush()  # what changed here while it was away, then what it holds
            await self._load(reconcile=True)

    async def _seed(self) -> None:
        """Write the whole shared picture (it holds what was queued); the others reload.

        It only fills in: a value another gateway wrote meanwhile (what it queued while Redis
        was away) is kept, and bucket counts are added to theirs, as their queued outcomes
        are not in this gateway's book.
        """
        self._pending.clear()
        now = time.time()
        pipe = self._redis.pipeline(transaction=False)
        for change in self._replica.changes():
            self._set(pipe, change, now, only_new=True)
        for row in self._replica.buckets():
            self._add_row(pipe, row)
        for use in self._replica.quota_use():
            self._add_use(pipe, use)
        pipe.publish(self._layout.channel, encode_batch(self.origin, [], reload=True))
        await pipe.execute()

    async def _load(self, *, reconcile: bool = False) -> None:
        """Everything the store holds, applied to the local parts (SCAN, then MGET/HGETALL).

        `reconcile` (after this gateway's own changes were flushed): what the store no longer
        holds is gone here too. A cooldown or a session another gateway ended while this one
        was cut off was announced on the feed this one did not hear.
        """
        layout = self._layout
        names = [n.decode() async for n in self._redis.scan_iter(match=layout.pattern, count=500)]
        parsed = [(n, pk) for n in names if (pk := layout.parse(n)) is not None]
        values = [(n, pk) for n, pk in parsed if pk[0] != Quotas.USE_PART]
        uses = [(n, pk[1]) for n, pk in parsed if pk[0] == Quotas.USE_PART]
        buckets = [(n, at) for n in names if (at := layout.parse_bucket(n)) is not None]
        held: set[tuple[str, str]] = set()
        for start in range(0, len(values), 500):
            chunk = values[start : start + 500]
            raw = await self._redis.mget([n for n, _ in chunk])
            for (_, (part, key)), data in zip(chunk, raw, strict=True):
                if data is not None:
                    held.add((part, key))
                    self._apply(part, key, data)
        if reconcile:
            for change in self._replica.changes():
                slot = (change.part, change.key)
                if change.part in ENDED_ELSEWHERE and slot not in held:
                    if not self._pending.holds(*slot):  # changed here since the flush: keep it
                        self._apply(change.part, change.key, None)
        if buckets:
            pipe = self._redis.pipeline(transaction=False)
            for name, _ in buckets:
                pipe.hgetall(name)
            hashes = await pipe.execute()
            self._replica.load_buckets(
                row_of(model, start, fields)
                for (_, (start, model)), fields in zip(buckets, hashes, strict=True)
                if fields
            )
        if uses:
            pipe = self._redis.pipeline(transaction=False)
            for name, _ in uses:
                pipe.hgetall(name)
            hashes = await pipe.execute()
            self._replica.load_quota_use(self._use_rows(uses, hashes))

    def _use_rows(self, uses: list[tuple[str, str]], hashes: list[Any]) -> list[UsageRow]:
        """The store's quota totals, with what is counted here and not written yet on top."""
        rows = []
        for (_, key), fields in zip(uses, hashes, strict=True):
            if not fields:
                continue
            quota, window, at = key.rsplit("|", 2)
            requests, tokens = self._pending.use(key)
            requests += int(fields.get(b"r", 0))
            tokens += int(fields.get(b"t", 0))
            rows.append((quota, window, float(at), requests, tokens))
        return rows

    # --- writing -----------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PING_S):
                    await self._wake.wait()
            self._wake.clear()
            if self._pending:
                await asyncio.sleep(BATCH_S)
                await self._write_batch()  # one: what comes meanwhile waits for the next
            else:
                async with asyncio.timeout(TIMEOUT_S):
                    await _awaited(self._redis.ping())

    async def _flush(self) -> None:
        """Write until nothing is queued (a sync, or the last write before closing)."""
        while self._pending:
            await self._write_batch()

    async def _write_batch(self) -> None:
        batch = self._pending.take()
        try:
            async with asyncio.timeout(TIMEOUT_S):
                await self._write(batch)
        except BaseException:
            self._pending.give_back(batch)  # written again once Redis answers
            raise

    async def _write(self, batch: Batch) -> None:
        now = time.time()
        pipe = self._redis.pipeline(transaction=True)  # stored in the order the feed has them
        for change in batch.changes:
            self._set(pipe, change, now)
        for row in batch.rows:
            self._add_row(pipe, row)
        for use in batch.uses:
            self._add_use(pipe, use)
        outcomes = [Change(PosteriorBook.PART, r.model, asdict(r)) for r in batch.rows]
        message = encode_batch(self.origin, [*batch.changes, *outcomes, *batch.uses])
        pipe.publish(self._layout.channel, message)
        self._echoes.sending(batch.changes)  # first: the echo can be read before the reply
        await pipe.execute()

    def _set(self, pipe: Pipeline, change: Change, now: float, *, only_new: bool = False) -> None:
        key = self._layout.key(change.part, change.key)
        if change.value is None or (change.expires is not None and change.expires <= now):
            if not only_new:
                pipe.delete(key)
            return
        ttl_ms = None if change.expires is None else max(1, int((change.expires - now) * 1000))
        pipe.set(key, json.dumps(change.value), px=ttl_ms, nx=only_new)

    def _add_row(self, pipe: Pipeline, row: BucketRow) -> None:
        key = self._layout.bucket(row)
        for name, count in zip(BUCKET_FIELDS, _counts(row), strict=True):
            if count:
                pipe.hincrbyfloat(key, name, count)
        pipe.expire(key, int(self._bucket_ttl_s))

    def _add_use(self, pipe: Pipeline, use: Change) -> None:
        """Add a quota count to its bucket's hash; the hash lives as long as the window."""
        key = self._layout.key(use.part, use.key)
        value = use.value
        if value["r"]:
            pipe.hincrby(key, "r", value["r"])
        if value["t"]:
            pipe.hincrby(key, "t", value["t"])
        pipe.expire(key, math.ceil(value["ttl"]))

    # --- reading -----------------------------------------------------------------------------

    async def _listen(self, pubsub: PubSub) -> None:
        async for message in pubsub.listen():
            if message.get("type") != "message":
                continue
            try:
                origin, reload, changes = decode_batch(message["data"])
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("cluster: unreadable change message skipped (%s)", exc)
                continue
            if origin == self.origin:  # our own echo: only what crossed another's is taken
                for change in self._echoes.settling(changes):
                    if not self._pending.holds(change.part, change.key):  # newer, unsent yet
                        self._replica.settle(change)
                continue
            if reload:
                async with asyncio.timeout(SYNC_TIMEOUT_S):
                    await self._load()
            for change in changes:
                self._apply(change.part, change.key, change.value)

    def _apply(self, part: str, key: str, value: Any) -> None:
        """Apply one change; a value this version cannot read is skipped, not fatal."""
        try:
            if isinstance(value, bytes):  # as stored, not yet decoded
                value = json.loads(value)
            self._replica.apply(Change(part, key, value))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("cluster: change to %s %s skipped (%s)", part, key, exc)


def _counts(row: BucketRow) -> tuple[float, ...]:
    return (row.successes, row.failures, row.ttfb_sum, row.ttfb_n, row.tps_sum, row.tps_n)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer within the timeout"
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


async def _awaited(result: Awaitable[Any] | Any) -> Any:
    """redis-py types some commands as `Awaitable[T] | T`; on the asyncio client they await."""
    return await result


async def _first_to_fail(*coros: Coroutine[Any, Any, None]) -> None:
    """Run until one of them ends (by raising, as they only do); cancel the others; re-raise."""
    tasks = [spawn(_caught(c), name="cluster-link") for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        # Bounded: redis-py's pub/sub read, cancelled, can wait on its connection's close for
        # ever (seen about once in ten stops); the client's own close ends it later.
        await asyncio.wait(tasks, timeout=TIMEOUT_S)
    for task in done:
        if (exc := task.result()) is not None:
            raise exc


async def _caught(coro: Coroutine[Any, Any, None]) -> Exception | None:
    """The coroutine's failure as a value: a lost link is expected, not a task that crashed."""
    try:
        await coro
    except Exception as exc:
        return exc
    return None
