"""Hostile clients for a running gateway: random bodies and headers, and what every answer must be.

The strategies draw what broke the first build (issue 8): random JSON types in every field the
gateway reads, deep nesting, lone surrogate escapes, bytes that are not UTF-8, odd `Expect`,
`Content-Encoding` and `X-Session-Id` headers, bad bearer keys; on each of the three doors (chat,
Claude Code's /v1/messages with every kind of content block, Codex's /v1/responses with every
kind of input item), wild and nearly valid, so that the translation behind the first checks is
reached too. `check_answer` is the rule: a 200, or a 4xx whose body is a JSON error in the
door's shape (Anthropic's on /v1/messages); never a 5xx, never text/plain.

tests/test_fuzz_gateway.py runs a few hundred draws in the suite. For a larger run against a
gateway you started yourself (`tui-gateway --headless --config ...`):

    python scripts/fuzz_gateway.py --url http://127.0.0.1:4141 --key KEY --examples 5000
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

CHAT_PATH = "/v1/chat/completions"
MESSAGES_PATH = "/v1/messages"
RESPONSES_PATH = "/v1/responses"
VALID = {"model": "auto", "messages": [{"role": "user", "content": "hello"}]}


@dataclass(frozen=True, slots=True)
class HostileRequest:
    method: str
    path: str
    headers: tuple[tuple[str, bytes], ...]
    body: bytes
    auth: bytes | None = None
    """The whole Authorization value; None sends the right bearer key."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


# --- what to send ---------------------------------------------------------------------------

# Text with everything in it: controls, NUL, astral characters, and lone surrogates (which
# hypothesis never draws on its own).
any_text = st.lists(
    st.characters(codec=None) | st.sampled_from(["\ud800", "\udfff", "\udc80", "\x00"]),
    max_size=40,
).map("".join)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)
roles = st.sampled_from(["user", "assistant", "system", "tool", "developer", "robot"]) | json_values
parts = st.fixed_dictionaries(
    {}, optional={"type": st.sampled_from(["text", "image_url", "file"]) | json_values,
                  "text": any_text | json_values, "image_url": json_values}
)  # fmt: skip
contents = any_text | st.none() | st.lists(parts | json_values, max_size=3) | json_values
messages = st.fixed_dictionaries(
    {}, optional={"role": roles, "content": contents, "name": json_values,
                  "tool_calls": json_values, "tool_call_id": json_values}
)  # fmt: skip
chat_bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["auto", "auto-fast", "sim/quick", "nope"]) | json_values,
        "messages": st.lists(messages | json_values, max_size=3) | json_values,
        "stream": st.booleans() | json_values,
        "stream_options": st.fixed_dictionaries({"include_usage": json_values}) | json_values,
        "temperature": json_values, "top_p": json_values, "max_tokens": json_values,
        "n": json_values, "stop": json_values, "tools": json_values, "tool_choice": json_values,
        "seed": json_values, "metadata": json_values,
    },
)  # fmt: skip

# The Messages door (Claude Code's): content blocks of every type, tools, a system prompt.
blocks = st.fixed_dictionaries(
    {}, optional={
        "type": st.sampled_from(["text", "image", "tool_use", "tool_result", "thinking",
                                 "redacted_thinking", "document", "server_tool_use"])
        | json_values,
        "text": any_text | json_values, "id": any_text | json_values,
        "name": any_text | json_values, "input": json_values,
        "tool_use_id": any_text | json_values, "content": any_text | json_values,
        "thinking": any_text | json_values, "signature": json_values, "source": json_values,
        "is_error": json_values, "cache_control": json_values,
    },
)  # fmt: skip
anthropic_messages = st.fixed_dictionaries(
    {}, optional={"role": st.sampled_from(["user", "assistant", "system"]) | json_values,
                  "content": any_text | st.lists(blocks | json_values, max_size=3) | json_values}
)  # fmt: skip
tools = st.lists(
    st.fixed_dictionaries({}, optional={"name": any_text | json_values, "type": json_values,
                                        "description": json_values, "input_schema": json_values,
                                        "parameters": json_values, "function": json_values})
    | json_values,
    max_size=2,
) | json_values  # fmt: skip
messages_bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["claude-sonnet-4-5", "auto", "sim/quick"]) | json_values,
        "max_tokens": st.integers(-5, 100_000) | json_values,
        "messages": st.lists(anthropic_messages | json_values, max_size=3) | json_values,
        "system": any_text | st.lists(blocks, max_size=2) | json_values,
        "stream": st.booleans() | json_values, "tools": tools, "tool_choice": json_values,
        "thinking": json_values, "stop_sequences": json_values, "metadata": json_values,
        "temperature": json_values,
    },
)  # fmt: skip
# The Responses door (Codex CLI's): input items of every type, instructions, tools.
input_parts = st.fixed_dictionaries(
    {}, optional={"type": st.sampled_from(["input_text", "output_text", "input_image",
                                           "refusal"]) | json_values,
                  "text": any_text | json_values, "image_url": json_values}
)  # fmt: skip
input_items = st.fixed_dictionaries(
    {}, optional={
        "type": st.sampled_from(["message", "function_call", "function_call_output",
                                 "reasoning", "custom_tool_call"]) | json_values,
        "role": st.sampled_from(["user", "assistant", "system", "developer"]) | json_values,
        "content": any_text | st.lists(input_parts | json_values, max_size=3) | json_values,
        "call_id": any_text | json_values, "name": any_text | json_values,
        "arguments": any_text | json_values, "output": any_text | json_values,
        "id": json_values, "summary": json_values, "encrypted_content": json_values,
    },
)  # fmt: skip
responses_bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["auto", "gpt-5-codex", "sim/quick"]) | json_values,
        "input": any_text | st.lists(input_items | json_values, max_size=3) | json_values,
        "instructions": any_text | json_values, "stream": st.booleans() | json_values,
        "tools": tools, "tool_choice": json_values, "reasoning": json_values,
        "previous_response_id": json_values, "store": json_values, "text": json_values,
        "max_output_tokens": json_values, "parallel_tool_calls": json_values,
        "include": json_values,
    },
)  # fmt: skip
# Nearly valid: what each door requires is there, most blocks and items are well formed and
# their text is any text but a lone surrogate (which the first checks refuse), so they get past
# those checks to the translation behind them.
text = st.text(max_size=40)
word = st.text(min_size=1, max_size=20)
plain_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)  # fmt: skip
good_blocks = (
    st.builds(lambda t: {"type": "text", "text": t}, word)
    | st.builds(lambda i, n, a: {"type": "tool_use", "id": i, "name": n, "input": a},
                word, word, st.dictionaries(text, plain_values, max_size=3))
    | st.builds(lambda i, c: {"type": "tool_result", "tool_use_id": i, "content": c},
                word, text | st.lists(st.builds(lambda t: {"type": "text", "text": t}, word),
                                          max_size=2))
    | st.builds(lambda t, g: {"type": "thinking", "thinking": t, "signature": g}, text, word)
    | st.builds(lambda d: {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                        "data": d}}, text)
)  # fmt: skip
turns = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant"]),
     "content": text | st.lists(good_blocks | good_blocks | blocks, min_size=1, max_size=3)}
)  # fmt: skip
good_parts = st.builds(
    lambda k, t: {"type": k, "text": t}, st.sampled_from(["input_text", "output_text"]), text
)
good_items = (
    st.builds(lambda r, c: {"type": "message", "role": r, "content": c},
              st.sampled_from(["user", "assistant", "developer", "system"]),
              text | st.lists(good_parts, min_size=1, max_size=3))
    | st.builds(lambda i, n, a: {"type": "function_call", "call_id": i, "name": n, "arguments": a},
                word, word, text)
    | st.builds(lambda i, o: {"type": "function_call_output", "call_id": i, "output": o},
                word, text)
    | st.builds(lambda t: {"type": "reasoning", "summary": [{"type": "summary_text", "text": t}]},
                text)
)  # fmt: skip
schemas = st.builds(
    lambda p: {"type": "object", "properties": p}, st.dictionaries(word, plain_values, max_size=3)
)
claude_tools = st.lists(
    st.builds(
        lambda n, d, i: {"name": n, "description": d, "input_schema": i}, word, text, schemas
    ),
    max_size=3,
)
codex_tools = st.lists(
    st.builds(lambda n, d, p: {"type": "function", "name": n, "description": d, "parameters": p},
              word, text, schemas),
    max_size=3,
)  # fmt: skip
nearly_valid_messages = st.fixed_dictionaries(
    {"model": st.just("claude-sonnet-4-5"), "max_tokens": st.integers(1, 64),
     "messages": st.lists(turns, min_size=1, max_size=4)},
    optional={"system": text | st.lists(good_blocks, max_size=2), "tools": claude_tools | tools,
              "stream": st.booleans(), "tool_choice": plain_values, "thinking": plain_values},
)  # fmt: skip
nearly_valid_responses = st.fixed_dictionaries(
    {"model": st.just("auto"),
     "input": text | st.lists(good_items | good_items | input_items, min_size=1, max_size=4)},
    optional={"instructions": text, "tools": codex_tools | tools, "stream": st.booleans(),
              "tool_choice": plain_values, "reasoning": plain_values},
)  # fmt: skip
DOOR_BODIES = {
    CHAT_PATH: chat_bodies,
    MESSAGES_PATH: messages_bodies | nearly_valid_messages,
    RESPONSES_PATH: responses_bodies | nearly_valid_responses,
}


def _encoded(value: Any) -> bytes:
    # ensure_ascii writes a lone surrogate as a `\udfff` escape, as a hostile client would.
    return json.dumps(value, ensure_ascii=True).encode()


nested = st.integers(1, 3000).map(
    lambda n: b'{"model":"auto","messages":' + b"[" * n + b"]" * n + b"}"
)
raw_bodies = (
    st.binary(max_size=200)
    | nested
    | chat_bodies.map(_encoded).map(lambda b: b[: len(b) // 2])  # cut short
    | st.sampled_from([b"NaN", b"[]", b"null", b'"x"', b"{}", b'{"model": NaN}'])
)  # fmt: skip


def bodies(path: str) -> st.SearchStrategy[bytes]:
    """Bodies for `path`: its door's fields drawn wild, any JSON, or bytes that are not JSON."""
    door = DOOR_BODIES.get(path, chat_bodies)
    return door.map(_encoded) | json_values.map(_encoded) | raw_bodies


header_values = st.binary(max_size=30).filter(lambda v: b"\r" not in v and b"\n" not in v)
header_names = st.sampled_from(
    ["X-Session-Id", "Expect", "Content-Encoding", "Content-Type", "Accept", "User-Agent",
     "X-Request-Id", "Accept-Encoding", "Cookie", "X-Odd-Header"]
)  # fmt: skip
headers = st.lists(st.tuples(header_names, header_values), max_size=3).map(tuple)
auths = (
    st.none() | st.none() | st.none() | header_values.map(lambda v: b"Bearer " + v) | header_values
)
# The admin API (the screen's keys over HTTP, and what `attach` reads): `{}` is a model,
# provider, session or request id, a real one or any text, percent-encoded.
ADMIN = [
    ("POST", "/gateway/models/{}/move"), ("POST", "/gateway/models/{}/enabled"),
    ("POST", "/gateway/models/{}/ban"), ("DELETE", "/gateway/models/{}/ban"),
    ("POST", "/gateway/providers/{}/ban"), ("POST", "/gateway/providers/{}/protection"),
    ("DELETE", "/gateway/sessions/{}"), ("DELETE", "/gateway/cooldowns?model={}"),
    ("POST", "/gateway/requests/{}/skip"), ("GET", "/gateway/requests/{}"),
    ("GET", "/gateway/stats?range={}"), ("GET", "/v1/models/{}"),
]  # fmt: skip
targets = st.sampled_from(
    [("POST", CHAT_PATH)] * 4 + [("POST", MESSAGES_PATH)] * 4 + [("POST", RESPONSES_PATH)] * 4
    + [("POST", "/v1/messages/count_tokens"), ("GET", "/v1/models"), ("GET", "/gateway/state"),
       ("POST", "/gateway/demo"), ("POST", "/v1/nowhere"), ("DELETE", CHAT_PATH), *ADMIN]
)  # fmt: skip
segments = st.sampled_from(["sim/quick", "sim", "nope", "a/b/c", ""]) | any_text.map(
    lambda t: quote(t.encode("utf-8", "surrogatepass"), safe="/")
)
admin_fields = st.fixed_dictionaries(
    {}, optional={name: st.integers() | st.sampled_from([2**63, -(2**63), 10**30]) | json_values
                  for name in ("delta", "position")}
    | {name: st.booleans() | json_values for name in ("enabled", "paused")}
    | {"protection": st.sampled_from(["model-skip", "provider-ban", "off"]) | json_values},
)  # fmt: skip


@st.composite
def hostile_requests(draw: st.DrawFn) -> HostileRequest:
    method, path = draw(targets)
    if "{}" in path:
        body = draw(admin_fields.map(_encoded) | json_values.map(_encoded) | raw_bodies)
        return HostileRequest(method, path.replace("{}", draw(segments)), (), body, draw(auths))
    return HostileRequest(method, path, draw(headers), draw(bodies(path)), draw(auths))


# --- sending and judging --------------------------------------------------------------------


def send(base: str, key: str, request: HostileRequest, *, timeout_s: float = 15.0) -> Answer:
    """One request on a fresh connection, headers exactly as drawn (http.client sends bytes)."""
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=timeout_s)
    try:
        conn.putrequest(request.method, request.path, skip_accept_encoding=True)
        conn.putheader("Authorization", request.auth or f"Bearer {key}".encode())
        names = {name.lower() for name, _ in request.headers}
        if "content-type" not in names:
            conn.putheader("Content-Type", "application/json")
        for name, value in request.headers:
            conn.putheader(name, value)
        conn.putheader("Content-Length", str(len(request.body)))
        conn.putheader("Connection", "close")
        conn.endheaders(request.body)
        response = conn.getresponse()
        body = response.read()
        return Answer(
            response.status,
            response.getheader("Content-Type", ""),
            body,
            {k.lower(): v for k, v in response.getheaders()},
        )
    finally:
        conn.close()


def check_answer(answer: Answer, path: str = CHAT_PATH) -> None:
    """A 200, or a 4xx with a JSON error body in the shape of `path`'s door (Anthropic's
    `{"type": "error", "error": {"type", "message"}}` on /v1/messages, OpenAI's elsewhere);
    never a 5xx, never a text page."""
    assert answer.status < 500, f"{answer.status}: {answer.body[:300]!r}"
    if answer.status == 200:
        return
    assert 400 <= answer.status < 500, f"unexpected status {answer.status}"
    assert answer.content_type.startswith("application/json"), (answer.status, answer.body[:200])
    body = json.loads(answer.body)
    error = body.get("error")
    assert isinstance(error, dict) and isinstance(error.get("message"), str), answer.body[:200]
    if path.startswith(MESSAGES_PATH):
        assert body.get("type") == "error" and isinstance(error.get("type"), str), body


def controls_touched(request: HostileRequest) -> bool:
    """Whether `request` may have banned or switched off a model or provider."""
    return request.path.startswith(("/gateway/models/", "/gateway/providers/"))


def undo_controls(base: str, key: str) -> None:
    """Lift every ban and switch every model back on (after a drawn request that may have
    changed them, and before a run), so that a valid request has somewhere to go."""
    state = json.loads(send(base, key, HostileRequest("GET", "/gateway/state", (), b"")).body)
    undo = [("DELETE", f"/gateway/models/{quote(m)}/ban", b"") for m in state["bans"]["models"]]
    undo += [
        ("DELETE", f"/gateway/providers/{quote(p)}/ban", b"") for p in state["bans"]["providers"]
    ]
    undo += [
        ("POST", f"/gateway/models/{quote(entry['model'])}/enabled", b'{"enabled": true}')
        for entries in state["pools"].values()
        for entry in entries
        if not entry["enabled"]
    ]
    for method, path, body in undo:
        assert send(base, key, HostileRequest(method, path, (), body)).status == 200, path


def send_valid(base: str, key: str) -> str:
    """A plain valid request; returns its X-Request-Id (its row must reach the log)."""
    answer = send(base, key, HostileRequest("POST", CHAT_PATH, (), json.dumps(VALID).encode()))
    assert answer.status == 200, (answer.status, answer.body[:300])
    return answer.headers["x-request-id"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", default="http://127.0.0.1:4141", help="the gateway, without /v1")
    parser.add_argument("--key", required=True, help="the gateway's bearer key")
    parser.add_argument("--examples", type=int, default=2000)
    args = parser.parse_args(argv)
    statuses: Counter[int] = Counter()

    @settings(max_examples=args.examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(hostile_requests())
    def one(request: HostileRequest) -> None:
        answer = send(args.url, args.key, request)
        statuses[answer.status] += 1
        check_answer(answer, request.path)
        if controls_touched(request):
            undo_controls(args.url, args.key)
        send_valid(args.url, args.key)

    undo_controls(args.url, args.key)
    one()
    print("statuses:", dict(sorted(statuses.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
