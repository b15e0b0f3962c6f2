"""Turn a client's request into a curl command line that replays it against the gateway."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from typing import Any

__all__ = ["as_curl"]


def as_curl(base_url: str, body: Mapping[str, Any], *, api_key_env: str = "OPENAI_API_KEY") -> str:
    """A copy-pasteable, multi-line POSIX shell command that sends `body` again.

    The bearer key is never embedded: the command reads it from `$api_key_env` when it runs.

    Args:
        base_url: The gateway's OpenAI base URL, e.g. `http://127.0.0.1:8400/v1`.
        body: The JSON body exactly as the client sent it.
        api_key_env: The environment variable that holds the key.

    Returns:
        The command, one option a line, joined with backslash continuations.
    """
    if not api_key_env.isidentifier():
        raise ValueError(f"not a shell variable name: {api_key_env!r}")
    url = base_url.rstrip("/") + "/chat/completions"
    first = ["curl", "-N"]
    if "[" in url:  # an IPv6 host: stop curl from reading the brackets as a URL glob
        first.append("-g")
    lines = [
        " ".join([*first, shlex.quote(url)]),
        f'-H "Authorization: Bearer ${api_key_env}"',
        '-H "Content-Type: application/json"',
        "-d " + shlex.quote(json.dumps(body, ensure_ascii=False)),
    ]
    return " \\\n  ".join(lines)
