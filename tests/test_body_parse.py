"""The msgspec fast path of `parse_body` decides every body exactly as the stdlib path does.

Issue 10: request bodies are parsed by msgspec first, and only what it refuses goes through the
stdlib parser with the explicit checks. These tests hold the two paths to the same verdict and
the same value (or the same 400) on generated bodies, on bytes flipped in real ones, and on the
hostile shapes the checks exist for.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tui_gateway.proxy.body import _parse_strictly, parse_body
from tui_gateway.proxy.errors import APIError


def _verdict(parse: Any, raw: bytes) -> tuple[str, Any]:
    try:
        return ("ok", parse(raw))
    except APIError as exc:
        return ("400", (exc.status, exc.message, exc.param, exc.code))


def _same(raw: bytes) -> None:
    fast, strict = _verdict(parse_body, raw), _verdict(_parse_strictly, raw)
    assert fast == strict
    if fast[0] == "ok":  # same types too: 1 and 1.0 compare equal
        assert json.dumps(fast[1]) == json.dumps(strict[1])


_text = st.text(st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    ["\U0001f600", "é", "\x00", "\u2028", '"\\', "\\ud83d", "NaN"]
)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(body=st.dictionaries(_text, _values, max_size=5), ascii_only=st.booleans())
def test_generated_bodies_parse_the_same_on_both_paths(
    body: dict[str, Any], ascii_only: bool
) -> None:
    _same(json.dumps(body, ensure_ascii=ascii_only).encode())


@settings(max_examples=300, deadline=None)
@given(at=st.integers(min_value=0), byte=st.integers(min_value=0, max_value=255))
def test_a_flipped_byte_gets_the_same_verdict_on_both_paths(at: int, byte: int) -> None:
    raw = bytearray(
        json.dumps(
            {"model": "auto", "messages": [{"role": "user", "content": "h\u00e9 \U0001f600"}],
             "temperature": 0.5, "n": 1, "stop": ["\\ud83d"]},
            ensure_ascii=False,
        ).encode()
    )  # fmt: skip
    raw[at % len(raw)] = byte
    _same(bytes(raw))


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": NaN}',
        b'{"a": -Infinity}',
        b'{"a": 1e400}',
        b'{"a": "\\udfff"}',
        b'{"\\ud83d": 1}',
        b'{"a": ["\\ud83d\\ude00", "\\ude00\\ud83d"]}',
        b'{"a": "\xed\xa0\x80"}',
        b'{"a": "\xff"}',
        b"\xef\xbb\xbf" + b'{"a": 1}',
        b'{"a": 1, "a": 2}',
        b'{"a": ' + b"1" * 5000 + b"}",
        b'{"a": ' + b"9" * 40 + b"}",
        b"[1, 2]",
        b'"text"',
        b"",
        b'{"a": 1} trailing',
        b'{"a": "tab\there"}',
        b'{"a":' * 65 + b"1" + b"}" * 65,
        b'{"a":' * 64 + b"1" + b"}" * 64,
        b"[" * 3000 + b"]" * 3000,
        b'{"a": ' + b"[" * 70 + b"]" * 70 + b', "b": "\\udfff"}',
    ],
)
def test_hostile_bodies_get_the_same_verdict_on_both_paths(raw: bytes) -> None:
    _same(raw)


def test_an_ordinary_body_never_takes_the_stdlib_path(monkeypatch: pytest.MonkeyPatch) -> None:
    import tui_gateway.proxy.body as body_module

    def refuse(raw: bytes) -> dict[str, Any]:
        raise AssertionError("the stdlib path ran for an ordinary body")

    monkeypatch.setattr(body_module, "_parse_strictly", refuse)
    raw = json.dumps(
        {"model": "auto", "messages": [{"role": "user", "content": "h\u00e9 \U0001f600"}]}
    ).encode()  # ensure_ascii: the emoji is an escaped surrogate pair
    assert parse_body(raw)["messages"][0]["content"] == "h\u00e9 \U0001f600"


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(value=_values.filter(lambda v: isinstance(v, dict | list)), limit=st.integers(1, 6))
def test_the_nesting_walk_agrees_with_a_recursive_depth(value: Any, limit: int) -> None:
    from tui_gateway.proxy.body import _nested_past

    assert _nested_past(value, limit) == (_depth(value) > limit)
