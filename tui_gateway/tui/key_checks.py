"""What a key check (`K`) tells the user: one notification, the failures named."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from ..domain.keys import KeyCheck

__all__ = ["key_check_summary"]


def key_check_summary(checks: Sequence[KeyCheck]) -> tuple[str, bool]:
    """(`4 keys: 3 ok, 1 invalid — mock#2 …wxyz: 401`, whether any failed)."""
    if not checks:
        return "no API keys to check", False
    counts = Counter(c.status for c in checks)
    parts = [f"{n} {status}" for status, n in sorted(counts.items(), key=lambda kv: kv[0] != "ok")]
    failed = [c for c in checks if c.status != "ok"]
    text = f"{len(checks)} key{'' if len(checks) == 1 else 's'}: {', '.join(parts)}"
    if failed:
        named = (f"{c.key_id} {c.masked}: {c.http_status or c.status}" for c in failed[:4])
        text += " — " + "; ".join(named) + ("; …" if len(failed) > 4 else "")
    return text, bool(failed)
