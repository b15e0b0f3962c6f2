"""Joining a continuation's text to the answer already sent (issue 11): each rule on its cases.

What the client ends up reading is `sent + relayed`, where `relayed` is what `join` says to keep
of the continuation; every case states that text, so a rule that drifts shows what the user
would see.
"""

from __future__ import annotations

import pytest

from tui_gateway.proxy.alignment import UNALIGNED, Join, join

SENT = "The capital of France is Paris. It sits on the Seine and"


def reads(sent: str, new: str) -> str | None:
    """What the client reads after the join, or None when the join is refused."""
    joined = join(sent, new, final=True)
    assert joined is not None, "a final text is always decided"
    if joined is UNALIGNED:
        return None
    return sent + joined.prefix + new[joined.skip :]


@pytest.mark.parametrize(
    ("rule", "new", "client_reads"),
    [
        ("exact continuation: relayed whole", " has about two million people.",
         SENT + " has about two million people."),
        ("restart from the beginning: the repeat is dropped", SENT + " has two million people.",
         SENT + " has two million people."),
        ("restart after a blank: the blank goes with the repeat", "\n" + SENT + " has bridges.",
         SENT + " has bridges."),
        ("repeated last sentence", "It sits on the Seine and has bridges.",
         SENT + " has bridges."),
        ("repeated last sentence after a space", " It sits on the Seine and has bridges.",
         SENT + " has bridges."),
        ("repeated last word", "and has bridges.", SENT + " has bridges."),
        ("diverging restart: refused", "The capital of France is Lyon, which", None),
        ("diverging right after the opening words: refused", "The capital of Spain is Madrid.",
         None),
        ("retelling an earlier part: refused", "It sits on the Seine, and it is old.", None),
    ],
)  # fmt: skip
def test_rules_on_whole_continuations(rule: str, new: str, client_reads: str | None) -> None:
    assert reads(SENT, new) == client_reads, rule


@pytest.mark.parametrize(
    ("new", "client_reads"),
    [
        ("own fox jumps", "The quick brown fox jumps"),  # exact: the rest of the word
        ("brown fox jumps", "The quick brown fox jumps"),  # the cut word written whole
        ("quick brown fox jumps", "The quick brown fox jumps"),  # the last words again
    ],
)
def test_a_cut_in_the_middle_of_a_word(new: str, client_reads: str) -> None:
    assert reads("The quick br", new) == client_reads


def test_a_cut_in_the_middle_of_a_surrogate_pair_sends_only_the_low_half() -> None:
    # An upstream that escapes astral characters sent "\ud83d" and broke before "\ude00".
    sent = "Done \ud83d"
    joined = join(sent, "\U0001f600 all good", final=True)
    assert joined == Join(1, "\ude00")
    # A UTF-16 client (a JavaScript SDK) joins the halves into the emoji.
    text = sent + joined.prefix + "\U0001f600 all good"[joined.skip :]
    assert text.encode("utf-16", "surrogatepass").decode("utf-16") == "Done \U0001f600 all good"


def test_one_shared_letter_is_not_a_repeat() -> None:
    assert reads("The total is 4", "42 in all") == "The total is 442 in all"
    assert reads("I saw a", "an owl") == "I saw aan owl"  # not a word boundary, too short


def test_a_long_overlap_counts_wherever_it_starts() -> None:
    sent = "antidisestablishmentarian"
    assert reads(sent, "establishmentarianism rules") == "antidisestablishmentarianism rules"


def test_a_short_opening_waits_for_more_text_before_deciding() -> None:
    # " the" also occurs in what was sent: it may be the start of a repeat, so wait.
    assert join(SENT, " the") is None
    assert join(SENT, " the river") == Join(0)  # now it is clearly new
    # Looks like the answer's opening: it may be a restart.
    assert join(SENT, "The capital") is None
    assert join(SENT, SENT[:40]) is None  # a restart not yet as long as what was sent


def test_a_restart_that_stops_short_is_refused() -> None:
    assert join(SENT, "The capital of France", final=True) is UNALIGNED


def test_nothing_sent_yet_relays_everything() -> None:
    assert join("", "Hello") == Join(0)
