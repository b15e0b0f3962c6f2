"""Several gateways, one shared state: the Redis mirror of the state's shared parts.

Imported only when the config has `[cluster] redis_url` (proxy/app.py), so a gateway without
it never loads `redis`. The domain's side of the seam is `domain/changes.py` (what a part
reports) and `domain/replica.py` (where a change from elsewhere goes); this package does the
I/O: the key layout (layout.py), the write queue (pending.py), which of its own echoes a
gateway takes again when another gateway's change crossed it (echoes.py), and the link
(mirror.py).
"""

from __future__ import annotations

from .mirror import Mirror

__all__ = ["Mirror"]
