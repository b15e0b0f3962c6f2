"""The small checks every door makes on the fields it reads: each failure a 400 naming the field."""

from __future__ import annotations

from typing import Any

from .errors import APIError

__all__ = ["bad", "is_int", "optional_field"]


def bad(param: str, message: str, code: str = "invalid_value") -> APIError:
    """The 400 for field `param`."""
    return APIError(400, message, param=param, code=code)


def is_int(value: object) -> bool:
    """A whole number, and not a bool (JSON's `true` is a Python int)."""
    return isinstance(value, int) and not isinstance(value, bool)


def optional_field(
    obj: dict[str, Any], name: str, kind: type, expected: str, prefix: str = ""
) -> Any:
    """`obj[name]` if it is absent, null or a `kind`; else a 400 saying it must be `expected`."""
    value = obj.get(name)
    if value is not None and not isinstance(value, kind):
        raise bad(f"{prefix}{name}", f"{prefix}{name} must be {expected}")
    return value
