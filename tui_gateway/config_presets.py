"""`preset = "groq"` in a `[[providers]]` table: the known provider's kind, URL, key variable and
documented free-tier limits filled in before the file is checked (presets.py, preset_limits.py).
"""

from __future__ import annotations

from typing import Any

from .config_convert import ConfigError, did_you_mean
from .preset_limits import with_preset_limits
from .presets import PRESETS

__all__ = ["with_presets"]


def with_presets(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """`preset = "groq"` fills in kind, base_url, name, key variable and its free-tier limits."""
    providers = raw.get("providers") if isinstance(raw, dict) else None
    if not isinstance(providers, list):
        return raw
    filled = []
    for i, table in enumerate(providers):
        if isinstance(table, dict) and "preset" in table:
            name = table["preset"]
            preset = PRESETS.get(name) if isinstance(name, str) else None
            if preset is None:
                known = ", ".join(sorted(PRESETS))
                close = did_you_mean(name, PRESETS) if isinstance(name, str) else ""
                raise ConfigError(
                    source, f"providers[{i}].preset", f"one of {known}, got {name!r}{close}"
                )
            table = {k: v for k, v in table.items() if k != "preset"}
            table.setdefault("name", name)
            table.setdefault("kind", preset.kind)
            table.setdefault("base_url", preset.base_url)
            # A keyless local server (ollama) still gets a placeholder bearer.
            table.setdefault("api_keys", [f"env:{preset.key_env}"] if preset.key_env else ["none"])
            table = with_preset_limits(table, name)
        filled.append(table)
    return {**raw, "providers": filled}
