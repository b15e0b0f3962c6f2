"""The process environment, read in one place.

Config (`env:NAME` values), `init`'s starter config (which presets have a key) and `setup` (what
a client will see) all take an `environ` mapping; this is where the real one comes from, so a
test passes its own and nothing else reaches for `os.environ`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


def process_environment() -> Mapping[str, str]:
    return os.environ
