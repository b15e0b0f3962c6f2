"""Anthropic Messages tools -> OpenAI chat tools: a `/v1/messages` request's `tools`, `tool_choice`.

Custom tools (no `type`, or `custom`) become chat functions, their `input_schema` the function's
`parameters`. Server tools (web search, code execution, ...) run on Anthropic's side, so nobody
here can honour them: they are dropped, and a `tool_choice` that names one lets the model choose.
Every field that is read is checked first, and a wrong type is a 400 that names it.

The `tool_use` and `tool_result` blocks of a conversation are `messages_content.py`.
"""

from __future__ import annotations

from typing import Any

from ..fields import bad

__all__ = ["chat_tools", "tool_choice_fields"]


def chat_tools(raw: object) -> list[dict[str, Any]] | None:
    """The request's `tools` as chat tools (None if it sent none), server tools left out."""
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise bad("tools", "tools: must be an array of tool definitions")
    tools = []
    for n, tool in enumerate(raw):
        at = f"tools[{n}]"
        if not isinstance(tool, dict):
            raise bad(at, f"{at}: must be an object")
        kind = tool.get("type")
        if kind is not None and not isinstance(kind, str):
            raise bad(f"{at}.type", f"{at}.type: must be a string")
        if kind not in (None, "custom"):
            continue  # a server tool (web_search_..., code_execution_...): nobody here runs it
        name, description = tool.get("name"), tool.get("description")
        if not isinstance(name, str) or not name:
            raise bad(f"{at}.name", f"{at}.name: must be a non-empty string")
        if description is not None and not isinstance(description, str):
            raise bad(f"{at}.description", f"{at}.description: must be a string")
        schema = tool.get("input_schema", {"type": "object", "properties": {}})
        if not isinstance(schema, dict):
            raise bad(f"{at}.input_schema", f"{at}.input_schema: must be an object")
        function: dict[str, Any] = {"name": name}
        if description:
            function["description"] = description
        function["parameters"] = schema
        tools.append({"type": "function", "function": function})
    return tools


def tool_choice_fields(choice: object, names: set[str]) -> dict[str, Any]:
    """The OpenAI fields for a Messages `tool_choice` (none if no tool is left to choose).

    Args:
        choice: the request's `tool_choice`, checked even when no tool is left.
        names: the names of the tools that go upstream.
    """
    if choice is None:
        return {}
    if not isinstance(choice, dict):
        raise bad("tool_choice", 'tool_choice: must be an object such as {"type": "auto"}')
    kind = choice.get("type")
    out: dict[str, Any]
    if kind == "auto":
        out = {"tool_choice": "auto"}
    elif kind == "any":
        out = {"tool_choice": "required"}
    elif kind == "none":
        out = {"tool_choice": "none"}
    elif kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str):
            raise bad("tool_choice.name", "tool_choice.name: must be a string")
        out = {"tool_choice": {"type": "function", "function": {"name": name}}}
        if name not in names:
            out = {}  # the tool was a server tool, dropped: let the model choose
    else:
        raise bad("tool_choice.type", "tool_choice.type: must be 'auto', 'any', 'tool' or 'none'")
    parallel = choice.get("disable_parallel_tool_use")
    if parallel is not None and not isinstance(parallel, bool):
        raise bad(
            "tool_choice.disable_parallel_tool_use",
            "tool_choice.disable_parallel_tool_use: must be true or false",
        )
    if not names:
        return {}
    if parallel and kind != "none":
        out["parallel_tool_calls"] = False
    return out
