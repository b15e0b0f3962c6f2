"""The gateway as a snapshot shows it: frozen, typed copies, never the live objects.

`GET /gateway/state` encodes a `Snapshot` as it is (`msgspec.json.encode`), so these field names
are that endpoint's JSON; the screen reads the same structure. msgspec Structs, because they are
frozen and typed like dataclasses, encode to JSON in C, and decode back into the same types (a
screen attached to a gateway elsewhere reads the endpoint into a `Snapshot`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from .quota_windows import QuotaView, WindowView
from .records import AttemptRecord
from .timers import TimerView

__all__ = [
    "Bans",
    "ClusterView",
    "CooldownView",
    "Demo",
    "FlowDetail",
    "FlowView",
    "KeyView",
    "LogView",
    "PoolEntry",
    "PosteriorView",
    "QuotaView",
    "ScoreView",
    "SessionView",
    "Snapshot",
    "StoreView",
    "TimerView",
    "Totals",
    "WindowView",
]


class FlowView(msgspec.Struct, frozen=True):
    """One request in flight or recently finished, as the requests pane shows it."""

    id: str
    session: str
    requested_model: str
    model: str | None
    provider: str | None
    attempt: int
    state: str
    """The flow's phase: waiting, streaming, heartbeat, fallback, hedging, continuing or done."""
    stream: bool
    dialect: str
    started: float
    ttfb_ms: float | None
    chunks: int
    heartbeats: int
    last_chunk_at: float | None
    failures: tuple[str, ...]
    """One line per failed attempt: the model, why, and what routing did about it."""
    finished_at: float | None
    status: int | None
    """None while it runs."""
    error_kind: str | None
    limit_s: float | None = None
    """The silence the attempt under way is allowed now (learned per model, or configured)."""
    usual_s: float | None = None
    """Its model's usual silence at this point; past it the request is `stalling`."""
    racer: str | None = None
    """The model racing the attempt under way to a first byte (`[routing] hedge`), if one is."""
    client: str | None = None
    """The `[[clients]]` name of the key it came with; None for `server.api_key`."""


class FlowDetail(msgspec.Struct, frozen=True):
    """One request up close, for the detail screen: from memory, or from the request log."""

    view: FlowView
    attempts: tuple[AttemptRecord, ...]
    error: str | None
    latency_ms: float | None
    tokens_in: int | None
    tokens_out: int | None
    body: Mapping[str, Any] | None = None
    """The request as sent; None once only the log remembers it (it keeps no bodies)."""
    timeline: tuple[tuple[float, int], ...] | None = None
    """(time, chunks) per relayed read; None from the log."""
    from_log: bool = False
    passed_over: tuple[str, ...] = ()
    """Models left out for their quota before any call was made, one line each (from memory
    only; the log keeps them in the error of a request that found nothing left)."""


class PoolEntry(msgspec.Struct, frozen=True):
    model: str
    provider: str
    id: str
    position: int
    enabled: bool
    banned: bool
    cooling: bool
    """Cooling itself, or all of its keys are: routing skips it while anything else is left."""
    usable: bool
    continuation: str = "none"
    """How it would continue a broken answer now: prefill, instruct or none."""
    prefill_refused: bool = False
    """It answered a prefill with a 400 (remembered across restarts): it is instructed instead."""
    at_quota: bool = False
    """Every key of it is at one of its limits (`limits`): skipped like a cooling model."""


class SessionView(msgspec.Struct, frozen=True):
    key: str
    mode: str
    preview: str
    model: str | None
    api_key_id: str | None
    turns: int
    source: str
    banned: dict[str, float]
    """Provider -> seconds its ban for this conversation has left."""
    expires_in: float


class CooldownView(msgspec.Struct, frozen=True):
    model: str
    provider: str
    key_id: str | None
    reason: str
    started: float
    expires: float
    remaining_s: float
    duration_s: float
    failures: int


class ScoreView(msgspec.Struct, frozen=True):
    """A model's routing score without the draw: `expected_total` puts the mean in its place."""

    sample: None
    speed: float
    latency: float
    intelligence: float
    position: float
    expected_total: float


class PosteriorView(msgspec.Struct, frozen=True):
    model: str
    alpha: float
    beta: float
    mean: float
    interval: tuple[float, float] | None
    """The 90% interval; None in snapshots taken without them (the screen computes its own)."""
    weighted_successes: float
    weighted_failures: float
    successes: int
    failures: int
    ttfb_ms: float | None
    tokens_per_s: float | None
    seen: bool
    pool: str
    position: int
    score: ScoreView


class Bans(msgspec.Struct, frozen=True):
    models: tuple[str, ...]
    providers: tuple[str, ...]


class KeyView(msgspec.Struct, frozen=True):
    id: str
    masked: str
    status: str
    """ok | invalid"""
    reason: str | None
    status_code: int | None
    since: float | None


class Totals(msgspec.Struct, frozen=True):
    finished: int
    failed: int


class Demo(msgspec.Struct, frozen=True):
    paused: bool


class LogView(msgspec.Struct, frozen=True):
    pending: int
    written: int
    repaired: int
    dropped: int
    failing: bool
    last_error: str | None
    failing_since: float | None
    behind: bool


class ClusterView(msgspec.Struct, frozen=True):
    """The link to the state shared with other gateways through Redis (`[cluster]`)."""

    url: str
    """Password masked."""
    connected: bool
    last_error: str | None


class StoreView(msgspec.Struct, frozen=True):
    stored: int
    cap: int
    ttl_s: float


class Snapshot(msgspec.Struct, frozen=True):
    """Everything at one moment, for `GET /gateway/state` and the screen."""

    now: float
    active: tuple[FlowView, ...]
    recent: tuple[FlowView, ...]
    """Finished requests, newest last (the screen lingers on them briefly)."""
    pools: dict[str, tuple[PoolEntry, ...]]
    sticky: tuple[SessionView, ...]
    cooldowns: tuple[CooldownView, ...]
    posteriors: dict[str, PosteriorView]
    bans: Bans
    protection: dict[str, str]
    keys: dict[str, tuple[KeyView, ...]]
    """Provider -> its keys, masked: a secret never leaves the state."""
    strategy: str
    totals: Totals
    demo: Demo
    log: LogView
    responses_store: StoreView
    rejected: dict[str, int]
    """Requests refused before routing, by cause (the 20 most common)."""
    timers: dict[str, TimerView] = {}
    """Model -> its learned first byte and longest gap and the timeouts they give (models with
    history only)."""
    cluster: ClusterView | None = None
    """None without `[cluster]`: this gateway shares nothing."""
    quotas: tuple[QuotaView, ...] = ()
    """Each limited model's quota on each key of its provider (one per key with scope
    `provider`), by key then model; empty when no model has `limits`."""
