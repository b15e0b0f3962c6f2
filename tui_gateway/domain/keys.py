"""Every provider's API keys: their stable names, whose turn it is, and which the upstream rejected.

A key is named `provider#n` (1-based, config order), a name safe to show and log; the secret is
only handed to the relay that sends it. A provider without keys (simulated, or a keyless local
server) still has one name, `provider#1`, with an empty secret, so every attempt has a key id.

Keys take turns per provider. A key the upstream refused (401/403) is invalid: it is never picked
again, and a provider whose keys are all invalid has nothing to send, so routing leaves its
models out. A key check that passes (`KeyCheck`, providers/key_check.py) reinstates it.

The invalid keys survive a restart (`saved_invalid`, `restore_invalid`): each is saved with a hash
of its secret, never the secret, and comes back invalid only while the config still holds that
secret for the provider. A key whose secret changed, or that is gone, starts valid again.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..config import ProviderSettings

__all__ = [
    "KeyCheck",
    "KeyRejection",
    "KeyRing",
    "KeyStatus",
    "RestoredKeys",
    "mask_secret",
    "named_keys",
    "secret_hash",
]

KeyStatus = Literal["ok", "invalid", "error", "timeout"]
"""What a key check found: `ok` the upstream took the key, `invalid` it refused it (401/403, or
Google's 400 API_KEY_INVALID), `error` any other answer or no connection, `timeout` no answer in
time. Only `ok` and `invalid` say anything about the key."""


@dataclass(frozen=True, slots=True)
class KeyRejection:
    """Why and since when a key is invalid."""

    reason: str
    """The upstream's message, as it gave it."""
    status: int | None
    """The HTTP status that rejected it (401, 403), when there was one."""
    since: float


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """The result of checking one key with its provider's cheapest call (providers/key_check.py)."""

    provider: str
    key_id: str
    masked: str
    """The key as `mask_secret` shows it; the secret itself is never part of a result."""
    status: KeyStatus
    http_status: int | None
    """The upstream's HTTP status, None when there was no answer (or no call: simulated)."""
    latency_ms: int
    detail: str
    """What the upstream said, or what went wrong (the key masked if the upstream echoed it)."""


@dataclass(frozen=True, slots=True)
class RestoredKeys:
    """What `KeyRing.restore_invalid` did with the keys a previous run saved as invalid."""

    invalid: tuple[str, ...] = ()
    """Still invalid: the config holds the same secret for the provider."""
    changed: tuple[str, ...] = ()
    """Saved invalid, but the config now holds another secret under that name: valid again,
    worth a check."""
    dropped: int = 0
    """Saved entries not restored (changed, no longer configured, or unreadable)."""


def named_keys(provider: ProviderSettings) -> list[tuple[str, str]]:
    """The provider's keys as (id, secret), `provider#1..n` in config order (one empty secret
    for a provider without keys): the names `KeyRing` gives them."""
    secrets = list(provider.api_keys) or [""]
    return [(f"{provider.name}#{n}", secret) for n, secret in enumerate(secrets, 1)]


def secret_hash(secret: str) -> str:
    """A short fingerprint of a secret, to tell on restart whether a saved key is the same one
    (64 bits of SHA-256: enough to notice a change, too little to be worth attacking)."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:16]


def mask_secret(secret: str) -> str:
    """A recognisable fragment of a key that never shows all of it: `sk-abc…wxyz`.

    At most a quarter of the key shows at each end (six characters in front, four behind), so a
    short key shows little or nothing but the ellipsis.
    """
    if not secret:
        return "(no key)"
    quarter = len(secret) // 4
    head, tail = min(6, quarter), min(4, quarter)
    return f"{secret[:head]}…{secret[len(secret) - tail :]}"


class KeyRing:
    """The keys of every provider, and which of them still work.

    Args:
        providers: The configured providers; their `api_keys` in order become `name#1..n`.
    """

    def __init__(self, providers: Iterable[ProviderSettings]) -> None:
        self._ids: dict[str, list[str]] = {}
        self._secrets: dict[str, str] = {}
        self._provider: dict[str, str] = {}
        for provider in providers:
            named = named_keys(provider)
            self._ids[provider.name] = [key_id for key_id, _ in named]
            for key_id, secret in named:
                self._secrets[key_id] = secret
                self._provider[key_id] = provider.name
        self._valid: dict[str, list[str]] = {p: list(ids) for p, ids in self._ids.items()}
        """Provider -> its keys not rejected, in config order (kept, not derived: pick is hot)."""
        self._turn: Counter[str] = Counter()
        self._invalid: dict[str, KeyRejection] = {}

    def ids(self, provider: str) -> list[str]:
        """All of the provider's key names, valid or not, in config order (do not mutate)."""
        return self._ids[provider]

    def valid_ids(self, provider: str) -> list[str]:
        """The provider's keys the upstream has not rejected, in config order (do not mutate)."""
        return self._valid[provider]

    def provider_of(self, key_id: str) -> str:
        return self._provider[key_id]

    def masked(self, key_id: str) -> str:
        return mask_secret(self._secrets[key_id])

    def rejection(self, key_id: str) -> KeyRejection | None:
        """Why the key is invalid, or None while it is valid."""
        return self._invalid.get(key_id)

    def all_invalid(self, provider: str) -> bool:
        """Every key of the provider was rejected: it has nothing left to send."""
        return not self._valid[provider]

    def pick(self, provider: str, usable: Sequence[str] | None = None) -> tuple[str, str]:
        """The next key in turn: (id, secret).

        Args:
            provider: Whose key.
            usable: The valid keys worth sending now (say, those not rate-limited for the model),
                in config order; when it holds none, every valid key takes its turn.

        Returns:
            A valid key, the turns going round the choices. Only when none is valid (a request
            planned before the last one was rejected) the first key, so the attempt still ends.
        """
        valid = self._valid[provider]
        if len(valid) <= 1:
            key_id = valid[0] if valid else self._ids[provider][0]
            return key_id, self._secrets[key_id]
        choices = [k for k in usable if k not in self._invalid] if usable is not None else valid
        choices = choices or valid
        turn = self._turn[provider]
        self._turn[provider] += 1
        key_id = choices[turn % len(choices)]
        return key_id, self._secrets[key_id]

    def invalid_ids(self) -> list[str]:
        """Every invalid key, in the order they were rejected."""
        return list(self._invalid)

    def invalidate(self, key_id: str, *, reason: str, status: int | None, now: float) -> bool:
        """The upstream rejected this key: never pick it again until a check reinstates it.

        Returns:
            True when this marked it; False when it already was (another request sent it too).
        """
        if key_id in self._invalid:
            return False
        secret = self._secrets[key_id]
        if secret:  # an upstream that echoes the key must not put it on the screen
            reason = reason.replace(secret, mask_secret(secret))
        self._invalid[key_id] = KeyRejection(reason, status, now)
        provider = self._provider[key_id]
        self._valid[provider] = [k for k in self._valid[provider] if k != key_id]
        return True

    def reinstate(self, key_id: str) -> bool:
        """A check found the key accepted again: pick it again, in its config-order place.

        Returns:
            True when this brought it back; False when it was valid already.
        """
        if self._invalid.pop(key_id, None) is None:
            return False
        provider = self._provider[key_id]
        self._valid[provider] = [k for k in self._ids[provider] if k not in self._invalid]
        return True

    def saved_invalid(self) -> dict[str, Any]:
        """The invalid keys as `saved_state` keeps them: id -> provider, hash of the secret
        (never the secret), reason, status and since."""
        return {
            key_id: {
                "provider": self._provider[key_id],
                "hash": secret_hash(self._secrets[key_id]),
                "reason": rejection.reason,
                "status": rejection.status,
                "since": rejection.since,
            }
            for key_id, rejection in self._invalid.items()
        }

    def restore_invalid(self, saved: Mapping[str, Any]) -> RestoredKeys:
        """Mark invalid again the keys a previous run saved (`saved_invalid`), each only while
        the provider still has a key with that secret (found by its hash, so a key moved to
        another place in the list stays invalid). A key whose secret changed starts valid."""
        by_hash: dict[tuple[str, str], list[str]] = {}
        for key_id, secret in self._secrets.items():
            by_hash.setdefault((self._provider[key_id], secret_hash(secret)), []).append(key_id)
        invalid: list[str] = []
        changed: list[str] = []
        dropped = 0
        for saved_id, entry in saved.items():
            parsed = _saved_entry(entry)
            if parsed is None:
                dropped += 1
                continue
            provider, fingerprint, rejection = parsed
            same = by_hash.get((provider, fingerprint))
            if same is None:
                dropped += 1
                if self._provider.get(saved_id) == provider:
                    changed.append(saved_id)
                continue
            for key_id in same:  # a secret listed twice is invalid under both names
                if key_id not in self._invalid:
                    self._invalid[key_id] = rejection
                    invalid.append(key_id)
        for provider, ids in self._ids.items():
            self._valid[provider] = [k for k in ids if k not in self._invalid]
        return RestoredKeys(tuple(invalid), tuple(changed), dropped)

    def describe_rejection(self, provider: str) -> str | None:
        """`all 2 API keys were rejected (401)` once the provider has no valid key, else None."""
        if self._valid[provider]:
            return None
        ids = self._ids[provider]
        statuses = sorted({r.status for k in ids if (r := self._invalid[k]).status is not None})
        codes = f" ({', '.join(map(str, statuses))})" if statuses else ""
        if not any(self._secrets[k] for k in ids):
            return f"it has no API key and the upstream refused the request{codes}"
        if len(ids) == 1:
            return f"its only API key was rejected{codes}"
        return f"all {len(ids)} API keys were rejected{codes}"

    def as_json(self) -> dict[str, list[dict[str, Any]]]:
        """Provider -> its keys, masked, with their status: for `GET /gateway/state` and the TUI."""
        out: dict[str, list[dict[str, Any]]] = {}
        for provider, ids in self._ids.items():
            rows = []
            for key_id in ids:
                rejected = self._invalid.get(key_id)
                rows.append(
                    {
                        "id": key_id,
                        "masked": self.masked(key_id),
                        "status": "ok" if rejected is None else "invalid",
                        "reason": None if rejected is None else rejected.reason,
                        "status_code": None if rejected is None else rejected.status,
                        "since": None if rejected is None else rejected.since,
                    }
                )
            out[provider] = rows
        return out


def _saved_entry(entry: Any) -> tuple[str, str, KeyRejection] | None:
    """(provider, hash, rejection) from one saved entry, or None if it is not one (a file from
    another version, or edited by hand: skipped, not fatal)."""
    if not isinstance(entry, dict):
        return None
    provider, fingerprint = entry.get("provider"), entry.get("hash")
    reason, status, since = entry.get("reason", ""), entry.get("status"), entry.get("since")
    if not (isinstance(provider, str) and isinstance(fingerprint, str)):
        return None
    if not isinstance(since, int | float) or isinstance(since, bool) or not math.isfinite(since):
        return None
    if status is not None and (not isinstance(status, int) or isinstance(status, bool)):
        return None
    return provider, fingerprint, KeyRejection(str(reason), status, float(since))
