"""`RemoteState`: the gateway state as an attached screen sees it, over the admin API.

What the screen reads is the last snapshot the feed brought (its `now` moved on by the time
since, so ages keep counting between two snapshots). Each verb is the same admin API call a
script would make, sent without blocking the screen; what the screen is told at once is read
from that last snapshot (is the request in flight, how many sessions would be cleared), and the
next snapshot, a quarter of a second later, shows what the gateway did. A call the gateway
refuses becomes a line in the event log.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

import msgspec

from ..asyncio_utils import spawn
from ..domain.events import Event, Subscriber
from ..domain.views import FlowDetail, Snapshot
from .api import Api, RemoteError

DETAIL_REFRESH_S = 0.25
"""How often a request's detail is fetched again while a detail screen shows it in flight."""
_decode_detail = msgspec.json.Decoder(FlowDetail).decode


class RemoteLine(Event, frozen=True):
    """A line of the gateway's event log, or of the screen's own (a call refused, a drop)."""

    line: str

    @property
    def text(self) -> str:
        return self.line


def empty_snapshot(now: float) -> Snapshot:
    """What the screen shows before the first snapshot arrives: nothing, yet."""
    log = {"pending": 0, "written": 0, "repaired": 0, "dropped": 0, "failing": False,
           "last_error": None, "failing_since": None, "behind": False}  # fmt: skip
    return msgspec.convert(
        {
            "now": now,
            "active": [],
            "recent": [],
            "pools": {},
            "sticky": [],
            "cooldowns": [],
            "posteriors": {},
            "bans": {"models": [], "providers": []},
            "protection": {},
            "keys": {},
            "strategy": "",
            "totals": {"finished": 0, "failed": 0},
            "demo": {"paused": False},
            "log": log,
            "responses_store": {"stored": 0, "cap": 0, "ttl_s": 0.0},
            "rejected": {},
        },  # fmt: skip
        Snapshot,
    )


class RemoteState:
    """Implements `tui/host.py`'s `StateView` from a feed of snapshots and the admin API."""

    def __init__(self, api: Api | None = None) -> None:
        self.api = api
        """Set when the screen starts (a client session needs the running loop)."""
        self._snapshot = empty_snapshot(time.time())
        self._received = time.monotonic()
        self._subscribers: list[Subscriber] = []
        self._details: dict[str, FlowDetail] = {}
        self._fetched: dict[str, float] = {}
        """Request id -> when its detail was last asked for (monotonic)."""

    # --- fed by the feed ------------------------------------------------------------------

    def received(self, snapshot: Snapshot) -> None:
        self._snapshot, self._received = snapshot, time.monotonic()

    def line(self, text: str) -> None:
        for subscriber in list(self._subscribers):
            subscriber(RemoteLine(text))

    # --- what the screen reads ------------------------------------------------------------

    @property
    def demo_paused(self) -> bool:
        return self._snapshot.demo.paused

    @property
    def finished_count(self) -> int:
        return self._snapshot.totals.finished

    def clock(self) -> float:
        """The gateway's time: its last snapshot's, moved on by the time since it came."""
        return self._snapshot.now + (time.monotonic() - self._received)

    def snapshot(self, *, intervals: bool = True) -> Snapshot:
        """The last snapshot, as of now. It comes without the posteriors' intervals: the screen
        computes them for the rows it shows (`intervals` is there for the protocol)."""
        return msgspec.structs.replace(self._snapshot, now=self.clock())

    def find_request(self, request_id: str) -> FlowDetail | None:
        """The request's detail as last fetched (None until the first fetch is back); asks for
        it again now and then while something looks at it."""
        now = time.monotonic()
        if now - self._fetched.get(request_id, 0.0) >= DETAIL_REFRESH_S:
            self._fetched[request_id] = now
            spawn(self._fetch_detail(request_id), name=f"detail-{request_id}")
        return self._details.get(request_id)

    async def request_detail(self, request_id: str) -> FlowDetail | None:
        try:
            found = await self._api().call("GET", f"/gateway/requests/{quote(request_id)}")
        except RemoteError as exc:
            if "HTTP 404" in str(exc):
                return None
            raise
        detail = msgspec.convert(found, FlowDetail)
        self._details[request_id] = detail
        return detail

    async def _fetch_detail(self, request_id: str) -> None:
        try:
            await self.request_detail(request_id)
        except RemoteError:
            pass  # the screen keeps what it has; the feed says when the gateway is gone

    def subscribe(
        self, subscriber: Subscriber, *, kinds: Iterable[type[Event]] | None = None
    ) -> Callable[[], None]:
        """Every line of the gateway's event log (all of them have a line: `kinds` is moot)."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    # --- the verbs behind the keys: the admin API -----------------------------------------

    def skip_request(self, request_id: str) -> bool | None:
        if not any(r.id == request_id for r in self._snapshot.active):
            return None
        self._send("POST", f"/gateway/requests/{quote(request_id)}/skip", what=f"skip {request_id}")
        return True

    def move_in_pool(self, key: str, delta: int) -> int:
        self._send("POST", f"{_model(key)}/move", {"delta": delta}, what=f"move {key}")
        for entries in self._snapshot.pools.values():
            for entry in entries:
                if entry.model == key:
                    return max(0, min(len(entries) - 1, entry.position + delta))
        return 0

    def set_enabled(self, key: str, enabled: bool) -> None:
        body = {"enabled": enabled}
        self._send("POST", f"{_model(key)}/enabled", body, what=f"enable {key}")

    def ban_model(self, key: str) -> None:
        self._send("POST", f"{_model(key)}/ban", what=f"ban {key}")

    def unban_model(self, key: str) -> None:
        self._send("DELETE", f"{_model(key)}/ban", what=f"unban {key}")

    def ban_provider(self, provider: str) -> None:
        self._send("POST", f"/gateway/providers/{quote(provider)}/ban", what=f"ban {provider}")

    def unban_provider(self, provider: str) -> None:
        path = f"/gateway/providers/{quote(provider)}/ban"
        self._send("DELETE", path, what=f"unban {provider}")

    def set_protection(self, provider: str, level: str) -> None:
        path = f"/gateway/providers/{quote(provider)}/protection"
        self._send("POST", path, {"protection": level}, what=f"protection of {provider}")

    def clear_sticky(self, session: str) -> bool:
        if not any(s.key == session for s in self._snapshot.sticky):
            return False
        self._send("DELETE", f"/gateway/sessions/{quote(session)}", what=f"clear {session}")
        return True

    def clear_all_sticky(self) -> int:
        self._send("DELETE", "/gateway/sessions", what="clear sessions")
        return len(self._snapshot.sticky)

    def clear_cooldowns(self, key: str | None = None) -> int:
        path = "/gateway/cooldowns" + ("" if key is None else f"?model={quote(key)}")
        self._send("DELETE", path, what="clear cooldowns")
        return sum(1 for c in self._snapshot.cooldowns if key is None or c.model == key)

    def set_demo_paused(self, paused: bool) -> None:
        self._send("POST", "/gateway/demo", {"paused": paused}, what="pause the demo")

    def _api(self) -> Api:
        if self.api is None:
            raise RemoteError("not connected yet")
        return self.api

    def _send(self, method: str, path: str, body: Any = None, *, what: str) -> None:
        spawn(self._call(method, path, body, what), name=f"admin-{method}-{path}")

    async def _call(self, method: str, path: str, body: Any, what: str) -> None:
        try:
            await self._api().call(method, path, body)
        except RemoteError as exc:
            self.line(f"{what} failed: {exc}")


def _model(key: str) -> str:
    """The admin path of a model: its `provider/id` key, slash and all."""
    return "/gateway/models/" + quote(key, safe="/")
