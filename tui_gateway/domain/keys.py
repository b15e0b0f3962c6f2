"""Every provider's API keys: their stable names, whose turn it is, and which the upstream rejected.

A key is named `provider#n` (1-based, config order), a name safe to show and log; the secret is
only handed to the relay that sends it. A provider without keys (simulated, or a keyless local
server) still has one name, `provider#1`, with an empty secret, so every attempt has a key id.

Keys take turns per provider. A key the upstream refused (401/403) is invalid for the rest of
the run: it is never picked again, and a provider whose keys are all invalid has nothing to send,
so routing leaves its models out. Nothing is persisted: a restart (with a fixed config) tries
every key again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..config import ProviderSettings

__all__ = ["KeyRejection", "KeyRing", "mask_secret"]


@dataclass(frozen=True, slots=True)
class KeyRejection:
    """Why and since when a key is invalid."""

    reason: str
    """The upstream's message, as it gave it."""
    status: int | None
    """The HTTP status that rejected it (401, 403), when there was one."""
    since: float


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
            secrets = list(provider.api_keys) or [""]
            ids = [f"{provider.name}#{n}" for n in range(1, len(secrets) + 1)]
            self._ids[provider.name] = ids
            for key_id, secret in zip(ids, secrets, strict=True):
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

    def invalidate(self, key_id: str, *, reason: str, status: int | None, now: float) -> bool:
        """The upstream rejected this key: never pick it again in this run.

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
