"""TOML tables -> the settings dataclasses, by msgspec; its errors become friendly ConfigErrors.

The dataclasses in `config.py` are the schema: type hints say what each key holds and
`Annotated[..., msgspec.Meta(...)]` gives its range or form; `msgspec.convert` checks all of that.
Three things msgspec does not do for dataclasses are done here, once, driven by the same hints:

- unknown keys are refused (with a "did you mean"); fields with `metadata={"internal": True}`
  are filled in by the loader and count as unknown in the file;
- a string `env:NAME` where a string is expected reads NAME from the environment given. Unset
  (or empty), it reads as no value: an optional field is left empty, an entry of a list drops out
  (and is reported back), and anywhere else it is an error naming the variable;
- msgspec's message (`Expected int >= 1 - at $.routing.max_attempts`) becomes ours
  (`routing.max_attempts: a whole number of at least 1, got 0`): the key as the file spells it,
  what was expected in words, and what was found. `Meta(extra={"expected": ..., "why": ...})`
  words a constraint where the type alone would not.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import functools
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar, get_args, get_origin, get_type_hints

import msgspec

T = TypeVar("T")
KeyPath = tuple[str | int, ...]
"""A place in the file: table keys and list indices, as in `("providers", 0, "api_keys", 1)`."""


class ConfigError(Exception):
    """A config file (or value) is not what tui-gateway expects."""

    def __init__(self, source: str, key: str, expected: str) -> None:
        self.source = source
        self.key = key
        self.expected = expected
        where = f"{source}: " if source else ""
        super().__init__(f"config error in {where}{key}: {expected}")


@dataclass(frozen=True, slots=True)
class Converted(Generic[T]):
    """The settings object and what the environment did not provide."""

    value: T
    unset_env: dict[KeyPath, str]
    """Where an `env:NAME` named an unset variable -> NAME (list entries use their file index)."""


def convert(cls: type[T], raw: object, *, source: str, environ: Mapping[str, str]) -> Converted[T]:
    """Check `raw` (a parsed TOML document) against the dataclass `cls` and build it."""
    walk = _Walk(environ, source)
    prepared = walk.prepare(cls, raw, ())
    try:
        value = msgspec.convert(prepared, type=cls)
    except msgspec.ValidationError as exc:
        key, expected = _translate(str(exc), cls, prepared, walk)
        raise ConfigError(source, key, expected) from None
    return Converted(value, walk.unset)


def did_you_mean(word: str, choices: typing.Iterable[str]) -> str:
    """`; did you mean 'port'?` when one choice is close to `word`, else ``."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def display(path: KeyPath) -> str:
    """`providers[0].api_keys[1]`: a path the way the file spells it."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(top level)"


# --- walking the hints -----------------------------------------------------------------------


@functools.cache
def _file_fields(cls: type[Any]) -> dict[str, Any]:
    """The keys a file may give for `cls`, with their (Annotated) type hints."""
    hints = get_type_hints(cls, include_extras=True)
    return {
        f.name: hints[f.name] for f in dataclasses.fields(cls) if not f.metadata.get("internal")
    }


def _unwrap(hint: Any) -> tuple[Any, list[msgspec.Meta]]:
    """`Annotated[int, Meta(ge=1)] | None` -> (int, [Meta(ge=1)])."""
    metas: list[msgspec.Meta] = []
    while True:
        origin = get_origin(hint)
        if origin is typing.Annotated:
            hint, *extras = get_args(hint)
            metas += [m for m in extras if isinstance(m, msgspec.Meta)]
        elif origin in (types.UnionType, typing.Union):
            options = [a for a in get_args(hint) if a is not type(None)]
            hint = options[0]  # our unions are only `X | None`
        else:
            return hint, metas


def _is_dataclass(hint: Any) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


@dataclass(slots=True)
class _Walk:
    environ: Mapping[str, str]
    source: str
    unset: dict[KeyPath, str] = field(default_factory=dict)
    kept: dict[KeyPath, list[int]] = field(default_factory=dict)
    """For a list some unset `env:` entries dropped out of: the file index of each one left."""

    def prepare(self, hint: Any, value: Any, path: KeyPath) -> Any:
        """Refuse unknown keys and resolve `env:` strings; leave type errors to msgspec."""
        base, _ = _unwrap(hint)
        origin = get_origin(base)
        if _is_dataclass(base) and isinstance(value, dict):
            known = _file_fields(base)
            for key in sorted(value, key=str):
                if key not in known:
                    expected = f"a known key (one of: {', '.join(sorted(known))})"
                    expected += did_you_mean(key, known)
                    raise ConfigError(self.source, display(path + (key,)), expected)
            return {k: self.prepare(known[k], v, path + (k,)) for k, v in value.items()}
        if origin is tuple and isinstance(value, list):
            item = get_args(base)[0]
            out, kept = [], []
            for i, v in enumerate(value):
                v = self.prepare(item, v, path + (i,))
                if path + (i,) not in self.unset:  # an unset `env:` entry drops out
                    out.append(v)
                    kept.append(i)
            if len(kept) < len(value):
                self.kept[path] = kept
            return out
        if origin is dict and isinstance(value, dict):
            item = get_args(base)[1]
            return {k: self.prepare(item, v, path + (k,)) for k, v in value.items()}
        if base is str and isinstance(value, str) and value.startswith("env:"):
            resolved = self.environ.get(value[4:]) or None
            if resolved is None:
                self.unset[path] = value[4:]
            return resolved
        return value


# --- msgspec's message -> ours ---------------------------------------------------------------

_PATH_PART = re.compile(r"\.(\w+)|\[(\d+|\.\.\.)\]")
_MISSING = re.compile(r"missing required field `(\w+)`")


def _translate(message: str, cls: type[Any], data: Any, walk: _Walk) -> tuple[str, str]:
    """msgspec's `Expected ... - at $.a[0].b` -> (key as the file spells it, what was expected)."""
    reason, _, where = message.partition(" - at `")
    parts = [name or (int(i) if i != "..." else i) for name, i in _PATH_PART.findall(where)]
    hint: Any = cls
    path: KeyPath = ()
    try:
        for part in parts:
            hint, data, part = _step(hint, data, part)
            path += (part,)
    except (KeyError, IndexError, TypeError, StopIteration):  # a message shape we do not know:
        return where.rstrip("`").removeprefix("$.") or "(top level)", reason  # msgspec's words
    path = _file_path(path, walk)
    missing = _MISSING.search(reason)
    if missing:
        return display(path + (missing[1],)), "a value (this key is required)"
    if path in walk.unset:
        return display(path), f"environment variable {walk.unset[path]} to be set"
    return display(path), _expected(hint, data, reason)


def _step(hint: Any, data: Any, part: str | int) -> tuple[Any, Any, str | int]:
    """One step down the hints and the data; `...` (msgspec's unnamed dict key) is found."""
    base, _ = _unwrap(hint)
    if _is_dataclass(base):
        return _file_fields(base)[str(part)], data[part], part
    if get_origin(base) is tuple:
        return get_args(base)[0], data[part], part
    item = get_args(base)[1]  # a dict
    if part == "...":
        part = next(k for k, v in data.items() if not _converts(v, item))
    return item, data[part], part


def _converts(value: Any, hint: Any) -> bool:
    try:
        msgspec.convert(value, type=hint)
    except msgspec.ValidationError:
        return False
    return True


def _file_path(path: KeyPath, walk: _Walk) -> KeyPath:
    """Put back the list indices that dropped `env:` entries shifted."""
    out: KeyPath = ()
    for part in path:
        if isinstance(part, int) and out in walk.kept:
            part = walk.kept[out][part]
        out += (part,)
    return out


def _expected(hint: Any, value: Any, reason: str) -> str:
    """What the key should hold, in words, and what it holds."""
    base, metas = _unwrap(hint)
    if get_origin(base) is Literal:
        choices = get_args(base)
        close = did_you_mean(value, map(str, choices)) if isinstance(value, str) else ""
        return f"one of {', '.join(map(repr, choices))}, got {value!r}{close}"
    if not _is_a(base, value):
        return f"{_words(base)}, got {_type_name(value)}"
    extra: dict[str, Any] = {}
    for meta in metas:
        extra |= meta.extra or {}
    if base is str:
        words = extra.get("expected") or " ".join(
            f"a string of at least {m.min_length} characters"
            if m.min_length
            else f"a string matching {m.pattern!r}"
            for m in metas
        )
    else:
        words = " ".join(
            filter(None, [extra.get("expected") or _words(base), _bounds(metas, base)])
        )
    if not metas:  # msgspec refused something we have no words for: its own, not a guess
        words = f"{_words(base)} ({reason})"
    why = f" ({extra['why']})" if "why" in extra else ""
    return f"{words}, got {value!r}{why}"


def _bounds(metas: list[msgspec.Meta], base: Any) -> str:
    """`from 1 to 10`, `of at least 1`, `above 0 and below 20`."""
    parts = []
    for m in metas:
        if m.ge is not None and m.le is not None:
            parts.append(f"from {m.ge} to {m.le}")
            continue
        if m.gt is not None:
            parts.append(f"above {m.gt}")
        if m.ge is not None:
            parts.append(f"of at least {m.ge}" if base is int else f"of {m.ge} or more")
        if m.lt is not None:
            parts.append(f"below {m.lt}")
        if m.le is not None:
            parts.append(f"of at most {m.le}")
    return " and ".join(parts)


def _words(base: Any) -> str:
    """`a whole number`: what a value of this type is called in the messages."""
    words = {int: "a whole number", float: "a number", str: "a string", bool: "true or false"}
    return "a list" if get_origin(base) is tuple else words.get(base, "a table")


def _is_a(base: Any, value: Any) -> bool:
    """Whether `value` has the right type for `base`, so msgspec refused a constraint."""
    if base is bool or base is str:
        return isinstance(value, base)
    if base is int or base is float:
        allowed = int if base is int else (int, float)
        return isinstance(value, allowed) and not isinstance(value, bool)
    if get_origin(base) is tuple:
        return isinstance(value, list)
    return isinstance(value, dict)


def _type_name(value: Any) -> str:
    kinds: list[tuple[type | tuple[type, ...], str]] = [
        (bool, "a boolean"),
        (int, "a whole number"),
        (float, "a number"),
        (str, "a string"),
        (list, "a list"),
        (dict, "a table"),
        (datetime.datetime, "a date and time"),
        (datetime.date, "a date"),
        (datetime.time, "a time"),
        (type(None), "nothing"),
    ]
    return next((name for kind, name in kinds if isinstance(value, kind)), type(value).__name__)
