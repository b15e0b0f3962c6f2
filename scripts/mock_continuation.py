"""How the mock upstream's models answer a request to continue a broken answer.

Pure functions, used by `mock_upstream.py`: `recognise` tells a continuation request (and its
style) from a fresh one, and `reply_pieces` gives the chunk contents of the reply for one
`continue=` mode. An answer is a list of pieces, one per chunk, each after the first carrying
its leading space: `["lorem", " ipsum", " dolor"]`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "MARKER",
    "MODES",
    "PREFILL_REFUSAL",
    "Continuing",
    "Style",
    "recognise",
    "reply_pieces",
    "spaced",
]

Style = Literal["prefill", "instruct"]
MODES = ("exact", "restart", "repeat-word", "repeat-sentence", "diverge")
"""The values of `continue=`; `exact` is the default."""
MARKER = "cut off"
"""Text in the user turn after the answer so far that marks an instructed continuation."""
PREFILL_REFUSAL = (
    "This model does not support assistant message prefill. "
    "The conversation must end with a user message."
)
_OTHER_WORDS = (
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
    "india", "juliett", "kilo", "lima", "mike", "november", "oscar", "papa",
)  # fmt: skip
_SENTENCE_END = re.compile(r"[.!?]\s+")
_WORD_TAIL = re.compile(r"\S*\Z")


@dataclass(frozen=True, slots=True)
class Continuing:
    """A request that asks to continue an answer."""

    style: Style
    sent: str
    """The answer's text so far: the trailing assistant message's content."""


def recognise(messages: Any) -> Continuing | None:
    """The continuation a request's `messages` ask for, or None for a fresh request.

    Prefill: the last message is the assistant's. Instruct: the last is a user message whose
    string content contains `MARKER`, right after an assistant message.
    """
    if not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    if _role(last) == "assistant":
        return Continuing("prefill", _text(last))
    if len(messages) < 2 or _role(last) != "user" or _role(messages[-2]) != "assistant":
        return None
    content = last.get("content")
    if isinstance(content, str) and MARKER in content:
        return Continuing("instruct", _text(messages[-2]))
    return None


def spaced(words: Sequence[str]) -> list[str]:
    """The pieces of a fresh answer of `words`: each after the first gets its leading space."""
    return [word if i == 0 else " " + word for i, word in enumerate(words)]


def reply_pieces(answer: Sequence[str], sent: str, mode: str, *, same: int = 2) -> list[str]:
    """The pieces a model answering `answer` (its pieces) replies when asked to continue `sent`.

    Args:
        answer: The pieces of the answer the model gives a fresh request.
        sent: The text so far.
        mode: One of `MODES`.
        same: For `diverge`, how many of the answer's first pieces the reply keeps.

    Returns:
        `exact`: the rest of the answer after `sent`; `restart`: the whole answer;
        `repeat-word` and `repeat-sentence`: the rest from the start of `sent`'s last whole word
        or last sentence; `diverge`: the answer's first `same` pieces, then other words. Every
        mode but `diverge` gives the whole answer when it does not start with `sent`.
    """
    text = "".join(answer)
    if mode == "diverge":
        kept = list(answer[: max(same, 0)])
        others = max(len(answer) - len(kept), 1)
        return kept + [" " + _OTHER_WORDS[i % len(_OTHER_WORDS)] for i in range(others)]
    if mode == "restart" or not text.startswith(sent):
        return list(answer)
    if mode == "exact":
        return _rest(answer, len(sent))
    if mode == "repeat-word":
        return _rest(answer, _last_word_start(text, sent))
    if mode == "repeat-sentence":
        return _rest(answer, _last_sentence_start(sent))
    raise ValueError(f"unknown continue mode {mode!r} (one of {', '.join(MODES)})")


def _role(message: Any) -> Any:
    return message.get("role") if isinstance(message, dict) else None


def _text(message: Any) -> str:
    content = message.get("content")
    return content if isinstance(content, str) else ""


def _rest(answer: Sequence[str], at: int) -> list[str]:
    """The pieces of the answer's text from character `at` on, cut where the answer's are."""
    rest: list[str] = []
    start = 0
    for piece in answer:
        end = start + len(piece)
        if end > at:
            rest.append(piece[max(at - start, 0) :])
        start = end
    return rest


def _last_word_start(text: str, sent: str) -> int:
    """Where the last word that `sent` (a prefix of `text`) holds whole begins; 0 if none.

    A word cut in half at the end of `sent` is not whole: `lorem ipsum dol` -> `ipsum`.
    """
    end = len(sent)
    if sent[-1:].strip() and text[end : end + 1].strip():
        end -= _tail_len(sent)
    head = sent[:end].rstrip()
    return len(head) - _tail_len(head)


def _tail_len(text: str) -> int:
    """The length of the run of non-space characters `text` ends with."""
    tail = _WORD_TAIL.search(text)
    return len(tail[0]) if tail else 0


def _last_sentence_start(sent: str) -> int:
    """Where `sent`'s last non-empty sentence begins: after its last `. `, `! ` or `? `."""
    starts = [m.end() for m in _SENTENCE_END.finditer(sent.rstrip())]
    return starts[-1] if starts else 0
