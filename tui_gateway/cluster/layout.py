"""Where the shared state lives in Redis, and how a change is written as keys and a message.

Every key starts with the configured prefix (`tui-gateway` by default):

    {prefix}:epoch                   who seeded this store; absent: the store is new or lost
                                     its data, and the first gateway to see that seeds it
    {prefix}:{part}:{key}            one change's value as JSON, its TTL the change's `expires`:
        cooldown:{model}|{key_id}       a running cooldown (key id empty: the whole model)
        session:{session}               a sticky session, with its per-conversation bans
        conversation:{history state}    which session a conversation's history belongs to
        controls:all                    the user's pool order, enablement, bans, protection
        prefill:{model}                 why the model refused a prefill (no TTL)
        quota:{key_id}|{model}          a key's limits lowered by a 429 (`|*{provider}`: the
                                        provider's shared quota), no TTL
    {prefix}:quota_use:{quota}|{window}|{time}
                                     a hash of one quota bucket's counts (r requests, t
                                     tokens), summed by HINCRBY, kept as long as its window
    {prefix}:bucket:{start}:{model}  a hash of one hour's posterior counts (s f ttfb ttfb_n tps
                                     tps_n), summed by HINCRBY, kept as long as the window
    {prefix}:changes                 the pub/sub channel: each write batch, tagged with its
                                     gateway's origin id so a gateway skips its own echoes
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..domain.changes import Change
from ..domain.posteriors import BucketRow

__all__ = ["BUCKET_FIELDS", "Layout", "decode_batch", "encode_batch", "mask_url"]

BUCKET_FIELDS = ("s", "f", "ttfb", "ttfb_n", "tps", "tps_n")
"""A bucket hash's fields, in `BucketRow` order after its model and start."""


class Layout:
    """The key names under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.epoch = f"{prefix}:epoch"
        self.channel = f"{prefix}:changes"
        self.pattern = f"{prefix}:*"
        self._bucket = f"{prefix}:bucket:"

    def key(self, part: str, key: str) -> str:
        return f"{self.prefix}:{part}:{key}"

    def bucket(self, row: BucketRow) -> str:
        return f"{self._bucket}{int(row.bucket_start)}:{row.model}"

    def parse(self, name: str) -> tuple[str, str] | None:
        """(part, key) of a value key; None for the epoch, the channel and buckets."""
        rest = name.removeprefix(f"{self.prefix}:")
        part, sep, key = rest.partition(":")
        if not sep or part == "bucket" or rest == name:
            return None
        return part, key

    def parse_bucket(self, name: str) -> tuple[float, str] | None:
        """(bucket start, model) of a bucket key, else None."""
        if not name.startswith(self._bucket):
            return None
        start, sep, model = name.removeprefix(self._bucket).partition(":")
        return (float(start), model) if sep and start.isdigit() else None


def row_of(model: str, start: float, fields: dict[bytes, bytes]) -> BucketRow:
    """A bucket hash read back (HGETALL gives bytes)."""
    got = {k.decode(): float(v) for k, v in fields.items()}
    s, f, ttfb, ttfb_n, tps, tps_n = (got.get(name, 0.0) for name in BUCKET_FIELDS)
    return BucketRow(model, start, int(s), int(f), ttfb, int(ttfb_n), tps, int(tps_n))


def encode_batch(origin: str, changes: list[Change], *, reload: bool = False) -> str:
    """One message for the channel: the batch just written (rows as `outcome` changes)."""
    return json.dumps(
        {"origin": origin, "reload": reload, "changes": [[c.part, c.key, c.value] for c in changes]}
    )


def decode_batch(data: bytes | str) -> tuple[str, bool, list[Change]]:
    """(origin, whether to reload everything, the changes) of a channel message."""
    message: dict[str, Any] = json.loads(data)
    changes = [Change(str(part), str(key), value) for part, key, value in message["changes"]]
    return str(message["origin"]), bool(message.get("reload")), changes


def mask_url(url: str) -> str:
    """The URL with its password replaced by `***`, for the screen and the log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))
