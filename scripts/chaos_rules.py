"""What every answer of a chaos run must be (scripts/chaos_gateway.py makes the load).

Each door's answers end, break and fail in its own shape; `judge` reads one answer against its
door, `check` holds the answers against the request log of the gateway that gave them, and
`diverged` compares what the gateways of a cluster say they share.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Door:
    """One of the gateway's front doors, and how its answers end, break and fail."""

    path: str
    body: dict[str, object]
    ended: bytes
    """What a whole stream's last event holds."""
    broken: bytes
    """What the last event (before chat's `[DONE]`) of a stream that broke after its headers
    holds."""
    id_headers: tuple[str, ...] = ("X-Request-Id",)


HI = [{"role": "user", "content": "hi"}]
DOORS = (
    Door("/v1/chat/completions", {"model": "auto", "messages": HI}, b"data: [DONE]", b'{"error"'),
    Door(
        "/v1/messages",
        {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": HI},
        b"event: message_stop",
        b"event: error",
        ("X-Request-Id", "Request-Id"),
    ),
    Door(
        "/v1/responses",
        {"model": "auto", "input": "hi"},
        b"event: response.completed",
        b"event: response.failed",
    ),
)


@dataclass(slots=True)
class Answer:
    path: str
    status: int
    request_id: str | None
    seconds: float
    problem: str | None = None
    failed: bool = False
    """The request failed: an error status, or a stream whose last event is an error."""
    left: bool = False
    """The client gave up on it (status 0; the id is there if the headers had come)."""
    gateway: int = 0
    """Which of the run's gateways it went to."""
    started: float = 0.0
    """When it was sent (`time.perf_counter()`)."""
    unsent: bool = False
    """No answer because the gateway had stopped: it went out after the SIGTERM."""


WORDS = (
    "lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit",
    "sed", "do", "eiusmod", "tempor", "incididunt", "ut", "labore", "et",
)  # fmt: skip
"""The mock's answer words, in order (scripts/mock_upstream.py); `ok:chunks=N` says N of them."""
WHOLE_LENGTHS = (5, 8, 20)
"""How many words the chaos models' whole answers have (their `chunks`; the faults' are 8)."""
SAFE_WORD, SAFE_LENGTH = "safe", 8
"""`ok:text=safe` answers the word 8 times."""
_WORD = re.compile("|".join((*WORDS, SAFE_WORD)))


def events(data: bytes) -> list[tuple[str, Any]]:
    """A stream's events as (event name, decoded data); comments and pings are not events."""
    found = []
    for block in data.decode(errors="replace").split("\n\n"):
        name, lines = "", []
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                lines.append(line[5:].removeprefix(" "))
        payload = "\n".join(lines)
        if lines and payload != "[DONE]":
            found.append((name, json.loads(payload)))
    return found


def answer_text(door: Door, stream: bool, data: bytes) -> str:
    """The answer's text as the client reads it from the door's stream or body."""
    if stream:
        parts = []
        for name, event in events(data):
            if door.path == "/v1/chat/completions":
                parts += [c["delta"].get("content") or "" for c in event.get("choices", ())]
            elif name == "content_block_delta" and event["delta"]["type"] == "text_delta":
                parts.append(event["delta"]["text"])
            elif name == "response.output_text.delta":
                parts.append(event["delta"])
        return "".join(parts)
    body = json.loads(data)
    if door.path == "/v1/chat/completions":
        return body["choices"][0]["message"]["content"] or ""
    if door.path == "/v1/messages":
        return "".join(b["text"] for b in body["content"] if b["type"] == "text")
    items = [i for i in body["output"] if i["type"] == "message"]
    return "".join(c["text"] for i in items for c in i["content"] if c["type"] == "output_text")


CALL = ("get_weather", {"path": "README.md"})
"""The one call the mock's `tool-call` models make to a request that offers no tools."""


def answer_calls(door: Door, stream: bool, data: bytes) -> list[tuple[str, str]]:
    """The answer's tool calls, (name, arguments as JSON text), as the client reads them."""
    if not stream:
        body = json.loads(data)
        if door.path == "/v1/chat/completions":
            calls = body["choices"][0]["message"].get("tool_calls") or ()
            return [(c["function"]["name"], c["function"]["arguments"]) for c in calls]
        if door.path == "/v1/messages":
            uses = [b for b in body["content"] if b["type"] == "tool_use"]
            return [(b["name"], json.dumps(b["input"])) for b in uses]
        items = [i for i in body["output"] if i["type"] == "function_call"]
        return [(i["name"], i["arguments"]) for i in items]
    names: dict[int, str] = {}
    arguments: dict[int, list[str]] = {}
    for name, event in events(data):
        if door.path == "/v1/chat/completions":
            for choice in event.get("choices", ()):
                for call in choice["delta"].get("tool_calls") or ():
                    function = call.get("function") or {}
                    if "name" in function:
                        names[call["index"]] = function["name"]
                    arguments.setdefault(call["index"], []).append(function.get("arguments", ""))
        elif name == "content_block_start" and event["content_block"]["type"] == "tool_use":
            names[event["index"]] = event["content_block"]["name"]
        elif name == "content_block_delta" and event["delta"]["type"] == "input_json_delta":
            arguments.setdefault(event["index"], []).append(event["delta"]["partial_json"])
        elif name == "response.output_item.done" and event["item"]["type"] == "function_call":
            # What Codex CLI reads a call from: the finished item.
            names[event["output_index"]] = event["item"]["name"]
            arguments[event["output_index"]] = [event["item"]["arguments"]]
    return [(names.get(i, ""), "".join(arguments.get(i, ()))) for i in sorted({*names, *arguments})]


def not_one_call(calls: list[tuple[str, str]]) -> str | None:
    """Why an answer's tool calls are not the one whole call the models make, or None."""
    try:
        decoded = [(name, json.loads(arguments)) for name, arguments in calls]
    except ValueError:
        return f"a tool call whose arguments are not JSON: {calls!r}"
    return None if decoded == [CALL] else f"not the one whole call {CALL!r}: {calls!r}"


def not_whole(text: str) -> str | None:
    """Why a successful answer's text is not whole, or None when it is.

    A rescued answer is the parts its attempts relayed, each joined where the last broke off
    (proxy/alignment.py). With the mock's answers that leaves runs of its words in order from
    the first, and runs of `safe` (its answer does not continue theirs, so it is relayed
    whole); a run of the words must never start again or skip one (text the client already
    had, or text lost), and the answer ends with a whole one: the last run of the words is as
    long as an answer, a last run of `safe` at most as long as its answer.
    """
    words = _WORD.findall(text)
    if "".join(words) != re.sub(r"\s+", "", text):
        return f"words the mock never sends in {text!r}"
    runs: list[list[str]] = []
    for word in words:
        safe = word == SAFE_WORD
        if runs and (runs[-1][0] == SAFE_WORD) == safe:
            runs[-1].append(word)
        else:
            runs.append([word])
    for run in runs:
        if run[0] != SAFE_WORD and run != [WORDS[i % len(WORDS)] for i in range(len(run))]:
            return f"text repeated or lost in {text!r}"
    last = runs[-1] if runs else []
    if last and last[0] == SAFE_WORD and len(last) > SAFE_LENGTH:
        return f"more than one whole answer in {text!r}"
    if not last or last[0] != SAFE_WORD and len(last) not in WHOLE_LENGTHS:
        return f"an answer that is not whole: {text!r}"
    return None


def not_whole_answer(door: Door, stream: bool, data: bytes) -> str | None:
    """Why a successful answer is not whole: its one tool call, else its text (a call may
    follow text relayed before a break, so the text of an answer with a call is not held)."""
    if calls := answer_calls(door, stream, data):
        return not_one_call(calls)
    return not_whole(answer_text(door, stream, data))


def error_message(door: Door, data: bytes) -> str | None:
    """The message of an error body in the door's own shape, None if it is not in that shape."""
    try:
        body = json.loads(data)
        if door.path == "/v1/messages" and body["type"] != "error":
            return None
        message = body["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return None
    return message if isinstance(message, str) else None


def judge(door: Door, stream: bool, status: int, headers: Mapping[str, str], data: bytes) -> Answer:
    """One whole answer as the client read it; `seconds` and `gateway` are the caller's."""
    ids = {headers.get(name) for name in door.id_headers}
    answer = Answer(door.path, status, headers.get("X-Request-Id"), 0.0, failed=status != 200)
    *_, before, last = [b"", *data.rstrip(b"\n").split(b"\n\n")]
    final = before if last == b"data: [DONE]" else last  # chat's error event comes before it
    if len(ids) != 1:
        answer.problem = f"{door.path}: the id headers {door.id_headers} differ: {ids}"
    elif status == 200:
        # A stream that broke after its headers ends in an error event: the attempts ran out.
        answer.failed = stream and door.broken in final
        if stream and not answer.failed and door.ended not in last:
            answer.problem = f"{door.path}: a stream that does not end: ...{data[-160:]!r}"
        elif not answer.failed and (why := not_whole_answer(door, stream, data)):
            answer.problem = f"{door.path} ({'streamed' if stream else 'whole'}): {why}"
    elif status not in (429, 502, 503):
        answer.problem = f"{door.path}: status {status}: {data[:200]!r}"
    elif status == 429 and "Retry-After" not in headers:
        answer.problem = f"{door.path}: a 429 without Retry-After"
    elif error_message(door, data) is None:
        answer.problem = f"{door.path}: a {status} not in the door's shape: {data[:200]!r}"
    return answer


Logged = dict[str, tuple[int, bool]]
"""A log's requests: id -> (status, whether it failed)."""


def read_log(db: Path) -> tuple[Logged, Counter[str]]:
    """Each request's logged status and whether it failed, and how its attempts ended (so
    the faults were met)."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT id, status, error_kind IS NOT NULL FROM requests")
        statuses = {request_id: (status, bool(failed)) for request_id, status, failed in rows}
        kinds = conn.execute("SELECT coalesce(error_kind, 'ok'), count(*) FROM attempts GROUP BY 1")
        return statuses, Counter(dict(kinds))


def check(
    answers: Sequence[Answer], logs: Sequence[Logged], refused: Counter[int], max_latency_s: float
) -> list[str]:
    """Every broken rule, as a line. `refused` counts, per gateway, the user's keys it refused
    (a skip of a request already done): each of those is a row of its log too."""
    problems = [a.problem for a in answers if a.problem]
    for gateway, logged in enumerate(logs):
        ours = [a for a in answers if a.gateway == gateway]
        # A client that gave up before any header came may have left before its request
        # was even sent (while connecting): that one may have no row; every other one must.
        unseen = sum(a.left and a.request_id is None or a.unsent for a in ours)
        sent = len(ours) + refused[gateway]
        if not sent - unseen <= len(logged) <= sent:
            problems.append(f"gateway {gateway}: {len(logged)} log rows for {sent} requests")
    for answer in answers:
        logged = logs[answer.gateway]
        if answer.unsent:
            continue
        if answer.left:
            if answer.request_id and logged.get(answer.request_id, (0,))[0] not in (200, 499):
                found = logged.get(answer.request_id, "no row")
                problems.append(f"{answer.request_id}: left by its client, logged {found}")
            continue
        if answer.status and answer.request_id is None:
            problems.append(f"a {answer.status} without X-Request-Id")
        elif answer.request_id and logged.get(answer.request_id) != (answer.status, answer.failed):
            said = (answer.status, answer.failed)
            found = logged.get(answer.request_id, "no row")
            problems.append(
                f"{answer.request_id}: answered {said}, logged (status, failed) {found}"
            )
        if answer.seconds > max_latency_s:
            problems.append(f"{answer.request_id} took {answer.seconds:.1f} s")
    return problems


def shared(state: Mapping[str, Any]) -> dict[str, Any]:
    """What a cluster's gateways share, from one `GET /gateway/state`: each pool's order,
    which models are banned and which switched off, and each sticky session's model."""
    pools = state["pools"]
    return {
        "sessions": {s["key"]: s["model"] for s in state["sticky"]},
        "order": {pool: [entry["model"] for entry in entries] for pool, entries in pools.items()},
        "banned": sorted(state["bans"]["models"]),
        "off": sorted(
            e["model"] for entries in pools.values() for e in entries if not e["enabled"]
        ),
    }


def diverged(states: Sequence[Mapping[str, Any]]) -> list[str]:
    """A line for each gateway whose shared state differs from the first gateway's."""
    first = shared(states[0])
    return [
        f"gateway {n} differs from gateway 0: {theirs} against {first}"
        for n, theirs in enumerate(map(shared, states))
        if theirs != first
    ]
