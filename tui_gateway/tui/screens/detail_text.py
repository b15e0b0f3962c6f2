"""What the request detail screen says: pure functions from a request to Rich text."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.text import Text

from ...domain.errors import ErrorKind
from ...domain.records import fallback_trail
from ...domain.views import FlowDetail, FlowView

PREVIEW_CHARS = 100
"""A message preview is its first line, cut to this many characters."""
TIMELINE_ROWS = 80
"""Batches listed (the first and last halves, plus the marked gaps); the strip covers all."""
STRIP_CELLS = 60
TOP_GAPS = 3
APPROACH = 0.5
"""A gap this share of the stall timeout "approached a stall"."""
_BARS = "▁▂▃▄▅▆▇█"
SKIPPED = str(ErrorKind.SKIPPED)
HEDGED = str(ErrorKind.HEDGED)


def _secs(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds:.2f} s"


def _ms(ms: float | None) -> str:
    return _secs(None if ms is None else ms / 1000)


def preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    """The first non-blank line of `text`, cut to `limit` characters ("…" when anything is cut)."""
    stripped = text.lstrip()
    line, _, rest = stripped[: limit * 4].partition("\n")
    cut = len(line) > limit or bool(rest.strip()) or len(stripped) > limit * 4
    return (line[:limit].rstrip() + "…") if cut else line.rstrip()


def _content(message: Any) -> str:
    """A message's text: a string, or its text parts (other parts named); tool calls named."""
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, list):
        content = " ".join(
            p["text"] if isinstance(p.get("text"), str) else f"[{p.get('type', 'part')}]"
            for p in content[:20]
            if isinstance(p, dict)
        )
    calls = message.get("tool_calls")
    if not content and isinstance(calls, list) and calls:
        return f"[{len(calls)} tool call(s)]"
    return content if isinstance(content, str) else ""


def messages_text(body: Mapping[str, Any] | None) -> Text:
    """Count by role, the first user message and the last one: never the whole body."""
    messages = (body or {}).get("messages")
    if not isinstance(messages, list) or not messages:
        return Text("no messages", style="dim")
    roles = Counter(str(m.get("role", "?")) if isinstance(m, dict) else "?" for m in messages)
    text = Text(f"{len(messages)} messages: " + ", ".join(f"{n} {r}" for r, n in roles.items()))
    first = next((m for m in messages if isinstance(m, dict) and m.get("role") == "user"), None)
    if first is not None:
        text.append("\nfirst user  ", style="bold").append(preview(_content(first)))
    last = messages[-1]
    role = last.get("role", "?") if isinstance(last, dict) else "?"
    text.append(f"\nlast ({role})  ", style="bold").append(preview(_content(last)))
    return text


def _trimmed(text: Text, empty: str) -> Text:
    text.rstrip()
    return text if text.plain else Text(empty, style="dim")


def header_text(item: FlowDetail, *, now: float) -> Text:
    """Id, session, whose (a named client key), model routing, status, latency, time to first
    byte, tokens."""
    v = item.view
    started = time.strftime("%H:%M:%S", time.localtime(v.started))
    text = Text.assemble(
        (v.id, "bold"), f"  session {v.session[:8] or '–'}",
        "" if v.client is None else f"  from {v.client}",
        f"  {'stream' if v.stream else 'non-stream'}  started {started}\n",
        (v.requested_model or "?", "bold"), " → ",
        (f"{v.model} via {v.provider}" if v.model else "not routed yet", "bold"),
    )  # fmt: skip
    if v.status is not None:
        ok = v.error_kind is None and v.status < 400
        text.append("\nstatus ").append(str(v.status), "bold green" if ok else "bold red")
        total, ttfb = _ms(item.latency_ms), _ms(v.ttfb_ms)
        tokens_in, tokens_out = (
            ("–" if n is None else n) for n in (item.tokens_in, item.tokens_out)
        )
        tail = f"tokens {tokens_in} in / {tokens_out} out"
    else:
        text.append("\nstatus ").append(f"{v.state} (attempt {v.attempt})", "yellow")
        total = _secs(now - v.started) + " so far"
        ttfb = _ms(v.ttfb_ms)
        tail = f"chunks {v.chunks}"
    return text.append(f"   total {total}   first byte {ttfb}   {tail}")


def attempts_text(item: FlowDetail, *, now: float | None = None) -> Text:
    """One line per upstream attempt; under each failed one, what routing did about it.

    An attempt says where its text starts when it continued an answer another broke off, and
    its longest gap between chunks; one the user moved on (`x`) says so, blaming no one. The
    attempt under way says, with `now`, how long it has been quiet against what is usual for
    its model and the silence it is allowed. Models routing left out for their quota, with no
    call made, come first.
    """
    v = item.view
    decisions = list(v.failures)
    text = Text()
    for note in item.passed_over:
        text.append("skipped for quota  ", "bold yellow").append(f"{note}\n")
    attempts = item.attempts
    failed = [a.attempt for a in attempts if a.error is not None]
    paired = dict(zip(failed, decisions, strict=True)) if len(failed) == len(decisions) else {}
    for a in attempts:
        text.append(f"#{a.attempt}  ", "bold").append(f"{a.model} ({a.provider})  ")
        if a.status is not None:
            status = f"HTTP {a.status}"
        else:  # no status: nothing came, or the stream was cut off after its first byte
            status = "no response" if a.ttfb_ms is None else "cut off"
        skipped = a.error_kind == SKIPPED
        raced = a.error_kind == HEDGED  # lost a race to a first byte: slower, not failing
        bad = a.error_kind is not None or (a.status or 200) >= 400
        text.append(status, "yellow" if skipped or raced else "red" if bad else "green")
        if skipped:
            text.append("  moved on by you", "bold yellow")
        elif raced:
            text.append(f"  hedged: {a.error}", "bold magenta")
        elif a.error_kind is not None:
            text.append(f"  {a.error_kind}", "bold red").append(f": {a.error}" if a.error else "")
        text.append(f"  {_ms(a.latency_ms)}  first byte {_ms(a.ttfb_ms)}")
        if a.max_gap_ms is not None:
            text.append(f"  longest gap {_ms(a.max_gap_ms)}")
        if a.text_from is not None:
            text.append(f"  continues from char {a.text_from}", "cyan")
        text.append("\n")
        if a.attempt in paired:
            text.append(f"    → {paired[a.attempt]}\n", "italic")
    for line in decisions if not paired else []:
        text.append(f"→ {line}\n", "italic")
    running = v.status is None and v.model is not None and v.attempt > len(attempts)
    if running:  # in flight: the attempt under way now (and the one racing it, begun after)
        number = v.attempt - (v.racer is not None)
        text.append(f"#{number}  ", "bold").append(f"{v.model} ({v.provider})  ")
        text.append(v.state, "yellow")
        if now is not None:
            text.append(_quiet_now(v, now))
        if v.racer is not None:
            text.append(f"\n#{v.attempt}  ", "bold").append(f"{v.racer}  ")
            text.append("racing it to the first byte", "magenta")
    current = v.model if running and v.racer is None else None
    if len(attempts) + (current is not None) > 1:  # the trail `X-Fallback-Trail` carries
        text.append("" if text.plain.endswith("\n") else "\n").append("trail  ", "bold")
        text.append(fallback_trail(attempts, current), "dim")
    empty = "no upstream attempt" if v.status is not None else "no upstream tried yet"
    return _trimmed(text, empty)


def _quiet_now(v: FlowView, now: float) -> Text:
    """`  quiet 3.20 s (usual 0.05 s, allowed 2.00 s)` for the attempt under way."""
    last = v.started if v.last_chunk_at is None else v.last_chunk_at
    quiet = now - last
    style = "bold red" if v.usual_s is not None and quiet > v.usual_s else ""
    text = Text(f"  quiet {_secs(quiet)}", style)
    known = [f"usual {_secs(v.usual_s)}"] if v.usual_s is not None else []
    if v.limit_s is not None:
        known.append(f"allowed {_secs(v.limit_s)}")
    if known:
        text.append(f" ({', '.join(known)})", "dim")
    return text


@dataclass(frozen=True, slots=True)
class Batch:
    """One relayed upstream read."""

    at_s: float
    """Since the request started."""
    chunks: int
    gap_s: float
    """Since the previous batch (for the first one: since the request started)."""


def batches(started: float, timeline: Sequence[tuple[float, int]]) -> list[Batch]:
    out, previous = [], started
    for at, chunks in timeline:
        out.append(Batch(at - started, chunks, at - previous))
        previous = at
    return out


def _strip(rows: list[Batch], end_s: float) -> str:
    """Chunks per time slice, one cell each; `·` is a slice where nothing arrived."""
    cells = [0] * STRIP_CELLS
    for b in rows:
        cells[min(STRIP_CELLS - 1, int(b.at_s / max(end_s, 1e-9) * STRIP_CELLS))] += b.chunks
    top = max(cells) or 1
    return "".join(_BARS[(c * len(_BARS) - 1) // top] if c else "·" for c in cells)


def timeline_text(item: FlowDetail, *, now: float, stall_s: float) -> Text:
    """The chunk timeline: a strip, the longest gap against the stall timeout, the batches."""
    v = item.view
    running = v.status is None
    rows = batches(v.started, item.timeline or ())
    if not rows:
        return Text("no chunks relayed" + (" yet" if running else ""), "dim")
    end = max(rows[-1].at_s, now - v.started) if running else rows[-1].at_s
    text = Text(f"{sum(b.chunks for b in rows)} chunks in {len(rows)} batches, first at "
                f"t+{rows[0].at_s:.2f} s, last at t+{rows[-1].at_s:.2f} s\n")  # fmt: skip
    text.append(f"t+0 {_strip(rows, end)} t+{end:.1f} s\n", "cyan")
    gaps = sorted(range(1, len(rows)), key=lambda i: rows[i].gap_s, reverse=True)[:TOP_GAPS]
    floor = 2 * statistics.median(b.gap_s for b in rows[1:]) if len(rows) > 1 else 0.0
    marked = {i for i in gaps if rows[i].gap_s > floor or rows[i].gap_s >= APPROACH * stall_s}
    if gaps:
        worst = rows[gaps[0]]
        share = worst.gap_s / stall_s
        verdict, style = (
            ("stalled", "bold red") if share >= 1 else
            ("approached a stall", "bold yellow") if share >= APPROACH else
            ("well clear of a stall", "green")
        )  # fmt: skip
        text.append(f"longest gap {worst.gap_s:.2f} s before t+{worst.at_s:.2f} s: ")
        text.append(f"{verdict} ({share:.0%} of the {stall_s:g} s stall timeout)\n", style)
    if running and v.last_chunk_at is not None:
        text.append(f"quiet for {now - v.last_chunk_at:.2f} s now\n", "yellow")
    half, shown = TIMELINE_ROWS // 2, list(range(len(rows)))
    if len(rows) > TIMELINE_ROWS:  # the first and last batches, and the marked gaps between
        shown = sorted({*shown[:half], *shown[-half:], *marked})
    previous = -1
    for i in shown:
        if i > previous + 1:
            text.append(f"  … {i - previous - 1} batches …\n", "dim")
        b, previous = rows[i], i
        gap = "first byte" if i == 0 else f"gap {b.gap_s:.2f} s"
        line = f"t+{b.at_s:7.2f} s  +{b.chunks:<4} chunks  ({gap})"
        text.append(line + ("  ◀\n" if i in marked else "\n"), "bold yellow" if i in marked else "")
    return _trimmed(text, "")


def error_text(item: FlowDetail) -> Text | None:
    """The error the client saw, or None (also while the request runs)."""
    v = item.view
    if v.status is None or (v.error_kind is None and v.status < 400):
        return None
    return Text.assemble((f"HTTP {v.status}  {v.error_kind or 'error'}", "bold red"),
                         f": {item.error}" if item.error else "")  # fmt: skip
