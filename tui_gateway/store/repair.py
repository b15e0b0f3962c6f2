"""Rows SQLite refused, made storable: used only after a write failed, never on the fast path."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from ..domain.records import LoggedRequest
from ..domain.text import clean_text
from .rows import ATTEMPT_COLUMNS, REQUEST_COLUMNS, Column, Row

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True, slots=True)
class Repaired:
    """One request's rows, made storable."""

    request: Row
    attempts: tuple[Row, ...]
    changed: bool
    """Whether any value was replaced (counted as one repaired row)."""


def repair_batch(
    batch: Sequence[LoggedRequest], requests: Sequence[Row], attempts: Sequence[Row]
) -> list[Repaired]:
    """Each request's rows repaired; `attempts` is every request's attempt rows, in order."""
    fixed: list[Repaired] = []
    start = 0
    for record, request in zip(batch, requests, strict=True):
        own = attempts[start : start + len(record.attempts)]
        start += len(own)
        row = repair_row(REQUEST_COLUMNS, request)
        rows = tuple(repair_row(ATTEMPT_COLUMNS, a) for a in own)
        changed = row is not request or any(f is not a for f, a in zip(rows, own, strict=True))
        fixed.append(Repaired(row, rows, changed))
    return fixed


def repair_row(columns: Sequence[Column], row: tuple[object, ...]) -> tuple[object, ...]:
    """`row` with every value its column cannot store replaced; the same object if none was."""
    fixed = tuple(repair_value(column, value) for column, value in zip(columns, row, strict=True))
    if all(new is old for new, old in zip(fixed, row, strict=True)):
        return row
    return fixed


def repair_value(column: Column, value: object) -> object:
    """A value SQLite stores for `column`: `value` itself (same object) when it already is."""
    if value is None:
        if column.nullable:
            return None
        return "" if column.kind == "text" else 0 if column.kind == "int" else 0.0
    if column.kind == "text":
        if isinstance(value, str):
            return clean_text(value)
        if isinstance(value, bytes):
            return clean_text(value.decode("utf-8", "replace"))
        return clean_text(str(value))
    empty = None if column.nullable else 0 if column.kind == "int" else 0.0
    if isinstance(value, int):  # bool included: SQLite stores it as 0 or 1
        if INT64_MIN <= value <= INT64_MAX:
            return value
        if column.kind == "real":
            try:
                return float(value)
            except OverflowError:
                return empty
        # A count past int64 is garbage, not a big count: unknown where allowed, else the bound.
        if column.nullable:
            return None
        return INT64_MAX if value > 0 else INT64_MIN
    if isinstance(value, float):
        return value if math.isfinite(value) else empty
    return empty  # some other type in a number column: nothing sensible to keep


def is_data_error(exc: BaseException) -> bool:
    """Whether a value in a row (not the database) made the write fail, so repair may help.

    Encoding a lone surrogate raises UnicodeEncodeError, an int past int64 OverflowError, NaN in
    a NOT NULL column IntegrityError, an unsupported type ProgrammingError. A closed connection
    also raises ProgrammingError (or ValueError from aiosqlite) but no repair will fix it.
    """
    data = (UnicodeError, OverflowError, TypeError, sqlite3.DataError, sqlite3.IntegrityError,
            sqlite3.InterfaceError, sqlite3.ProgrammingError)  # fmt: skip
    return isinstance(exc, data) and "closed" not in str(exc)
