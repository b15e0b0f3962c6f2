"""TOML tables -> typed dataclasses: every key and type checked, every mistake a ConfigError.

Generic over the settings dataclasses in `config.py`: field type hints say what is expected,
`metadata={"internal": True}` marks fields the loader fills in (never read from the file), and
an `env:NAME` string reads NAME from the environment.
"""

from __future__ import annotations

import os
import types
import typing
from dataclasses import MISSING, fields
from typing import Any, Literal, get_args, get_origin, get_type_hints


class ConfigError(Exception):
    """A config file (or value) is not what tui-gateway expects."""

    def __init__(self, source: str, key: str, expected: str) -> None:
        self.source = source
        self.key = key
        self.expected = expected
        where = f"{source}: " if source else ""
        super().__init__(f"config error in {where}{key}: {expected}")


def build(cls: type[Any], raw: Any, source: str, where: str) -> Any:
    """Turn a TOML table into the dataclass `cls`, checking every key and type."""
    if not isinstance(raw, dict):
        raise ConfigError(source, where or "(top level)", "a table")
    hints = get_type_hints(cls)
    known = {f.name: f for f in fields(cls) if not f.metadata.get("internal")}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ConfigError(source, key, f"a known key (one of: {', '.join(sorted(known))})")
    values: dict[str, Any] = {}
    for name, f in known.items():
        key = f"{where}.{name}" if where else name
        if name not in raw:
            if f.default is MISSING and f.default_factory is MISSING:
                raise ConfigError(source, key, "a value (this key is required)")
            continue
        values[name] = _convert(hints[name], raw[name], source, key)
    return cls(**values)


def _convert(hint: Any, value: Any, source: str, key: str) -> Any:
    origin = get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        options = [a for a in get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _convert(options[0], value, source, key)
    if origin is Literal:
        choices = get_args(hint)
        if value not in choices:
            raise ConfigError(source, key, f"one of {', '.join(map(repr, choices))}, got {value!r}")
        return value
    if origin is dict:
        _, item = get_args(hint)
        if not isinstance(value, dict):
            raise ConfigError(source, key, f"a table, got {_type_name(value)}")
        return {str(k): _convert(item, v, source, f"{key}.{k}") for k, v in value.items()}
    if origin is tuple:
        (item,) = get_args(hint)[:1]
        if not isinstance(value, list):
            raise ConfigError(source, key, f"a list, got {_type_name(value)}")
        items = (_convert(item, v, source, f"{key}[{i}]") for i, v in enumerate(value))
        # An unset `env:` entry in a key list drops out; the provider is warned about instead.
        return tuple(v for v in items if v is not _UNSET)
    if isinstance(hint, type) and hasattr(hint, "__dataclass_fields__"):
        return build(hint, value, source, key)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(source, key, f"true or false, got {_type_name(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(source, key, f"a whole number, got {_type_name(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(source, key, f"a number, got {_type_name(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(source, key, f"a string, got {_type_name(value)}")
        resolved = _resolve_env(value)
        if resolved is None:
            if key.endswith("api_key") or ".api_keys[" in key:
                return _UNSET if "[" in key.rsplit(".", 1)[-1] else None
            raise ConfigError(source, key, f"environment variable {value[4:]} to be set")
        return resolved
    raise ConfigError(source, key, f"a value of type {hint}")  # pragma: no cover - schema bug


_UNSET = object()


def _resolve_env(value: str) -> str | None:
    """`env:NAME` reads NAME from the environment, so secrets stay out of the file."""
    if not value.startswith("env:"):
        return value
    return os.environ.get(value[4:]) or None


def _type_name(value: Any) -> str:
    names = {str: "a string", bool: "a boolean", int: "a whole number", float: "a number"}
    names |= {list: "a list", dict: "a table"}
    return names.get(type(value), type(value).__name__)
