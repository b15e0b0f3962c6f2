"""OpenAI Responses request -> the internal chat body: the pure translation behind `/v1/responses`.

`instructions` become the first system message; `input` (a string or items) becomes chat
messages: message items keep their role (`developer` as `system`, which every upstream takes),
consecutive `function_call` items one assistant message with several `tool_calls`, and each
`function_call_output` a `tool` message; `reasoning` and hosted-tool items are dropped.
Function tools become chat tools, a namespace's functions are flattened into them, hosted
tools (web search, local shell, freeform `custom`) are dropped. Unknown fields are dropped.
Every field that is read is checked first; a wrong type is a 400 that names it.
"""

from __future__ import annotations

from typing import Any

from ...domain.response_store import Messages
from ..fields import bad, optional_field
from .responses_output import ResponsesContext

__all__ = ["to_chat"]

_MESSAGE_ROLES = {"user": "user", "assistant": "assistant", "system": "system",
                  "developer": "system"}  # fmt: skip
_TEXT_PARTS = frozenset({"input_text", "output_text", "text", "refusal"})
_TOOL_CHOICES = frozenset({"auto", "none", "required"})
_ECHOED = ("max_output_tokens", "parallel_tool_calls", "reasoning", "temperature", "text",
           "tool_choice", "tools", "top_p", "metadata")  # fmt: skip
"""Request fields a response object repeats back to the client."""


def to_chat(
    body: dict[str, Any],
    *,
    history: Messages = (),
    response_id: str = "resp_0",
    created_at: int = 0,
) -> tuple[dict[str, Any], ResponsesContext]:
    """A Responses request body as an OpenAI chat body, and what its reply needs to know.

    Raises APIError (400, naming the field) for a field of the wrong type.
    """
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("model", "you must provide a model (a string such as 'auto')", "missing_model")
    previous = optional_field(body, "previous_response_id", str, "a string")
    instructions = optional_field(body, "instructions", str, "a string")
    tools, namespaced = _tools(body.get("tools"))
    conversation = (*history, *_input(body.get("input"), namespaced))
    if not conversation:
        raise bad("input", "'input' must be a non-empty string or array of input items")
    messages = list(conversation)
    if instructions:
        messages.insert(0, {"role": "system", "content": instructions})
    chat: dict[str, Any] = {"model": model, "messages": messages}
    stream = optional_field(body, "stream", bool, "true or false")
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    limit = body.get("max_output_tokens")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise bad("max_output_tokens", "'max_output_tokens' must be a whole number of at"
                       " least 1")  # fmt: skip
        chat["max_tokens"] = limit
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise bad(name, f"'{name}' must be a number")
            chat[name] = value
    parallel = optional_field(body, "parallel_tool_calls", bool, "true or false")
    choice = _tool_choice(body.get("tool_choice"), namespaced)
    if tools:
        chat["tools"] = tools
        if choice is not None:
            chat["tool_choice"] = choice
        if parallel is not None:
            chat["parallel_tool_calls"] = parallel
    response_format = _response_format(body.get("text"))
    if response_format is not None:
        chat["response_format"] = response_format
    store = optional_field(body, "store", bool, "true or false")
    for name in ("reasoning", "metadata", "client_metadata"):
        optional_field(body, name, dict, "an object")
    optional_field(body, "prompt_cache_key", str, "a string")
    include = body.get("include")
    if include is not None and (
        not isinstance(include, list) or not all(isinstance(i, str) for i in include)
    ):
        raise bad("include", "'include' must be an array of strings")
    ctx = ResponsesContext(
        response_id=response_id,
        model=model,
        created_at=created_at,
        conversation=conversation,
        instructions=instructions,
        store=store is not False,
        previous_response_id=previous,
        echo={name: body[name] for name in _ECHOED if body.get(name) is not None},
        namespaced=namespaced,
    )
    return chat, ctx


# --- input items -------------------------------------------------------------------------


def _input(raw: object, namespaced: dict[str, tuple[str, str]]) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}] if raw else []
    if not isinstance(raw, list):
        raise bad("input", "'input' must be a string or an array of input items")
    flat_names = {pair: flat for flat, pair in namespaced.items()}
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(raw):
        at = f"input[{i}]"
        if not isinstance(item, dict):
            raise bad(at, f"{at} must be an object")
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            message = _message(item, at)
            if message is not None:
                messages.append(message)
        elif kind == "function_call":
            _append_call(messages, _function_call(item, at, flat_names))
        elif kind == "function_call_output":
            messages.append(_function_output(item, at))
        elif not isinstance(kind, str):
            raise bad(f"{at}.type", f"{at}.type must be a string such as 'message'")
        # Anything else (reasoning, hosted tools' calls, item references) the upstream cannot
        # take; reasoning is the model's own and is not replayed to another one.
    return messages


def _message(item: dict[str, Any], at: str) -> dict[str, Any] | None:
    role = item.get("role")
    if not isinstance(role, str) or role not in _MESSAGE_ROLES:
        raise bad(f"{at}.role", f"{at}.role must be one of assistant, developer, system, user")
    role = _MESSAGE_ROLES[role]
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise bad(f"{at}.content", f"{at}.content must be a string or an array of parts")
    parts = [p for n, part in enumerate(content) if (p := _part(part, f"{at}.content[{n}]"))]
    if not parts:
        return None
    texts = [p["text"] for p in parts if p["type"] == "text"]
    if role == "user" and (len(parts) > 1 or len(texts) < len(parts)):
        return {"role": role, "content": parts}  # several parts or an image: keep them apart
    # Otherwise one string: system and assistant content must be text for most upstreams.
    return {"role": role, "content": ("" if role == "assistant" else "\n").join(texts)}


def _part(part: object, at: str) -> dict[str, Any] | None:
    if not isinstance(part, dict):
        raise bad(at, f'{at} must be an object such as {{"type": "input_text", "text": ...}}')
    kind = part.get("type")
    if not isinstance(kind, str):
        raise bad(f"{at}.type", f"{at}.type must be a string such as 'input_text'")
    if kind in _TEXT_PARTS:
        text = part.get("refusal" if kind == "refusal" else "text")
        if not isinstance(text, str):
            raise bad(f"{at}.text", f"{at}.text must be a string")
        return {"type": "text", "text": text}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            raise bad(f"{at}.image_url", f"{at}.image_url must be a URL or a data: URL (file"
                       " ids are not supported by this gateway)")  # fmt: skip
        image: dict[str, Any] = {"url": url}
        detail = part.get("detail")
        if isinstance(detail, str) and detail != "auto":
            image["detail"] = detail
        return {"type": "image_url", "image_url": image}
    return None  # files, audio: no chat upstream here takes them


def _function_call(
    item: dict[str, Any], at: str, flat_names: dict[tuple[str, str], str]
) -> dict[str, Any]:
    call_id = _required(item, "call_id", at)
    name = _required(item, "name", at)
    namespace = optional_field(item, "namespace", str, "a string", f"{at}.")
    if namespace:
        name = flat_names.get((namespace, name), _flat_name(namespace, name))
    arguments = item.get("arguments", "")
    if not isinstance(arguments, str):
        raise bad(f"{at}.arguments", f"{at}.arguments must be a string of JSON")
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _append_call(messages: list[dict[str, Any]], call: dict[str, Any]) -> None:
    """Calls right after an assistant turn join it: one assistant message, several calls."""
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant":
        if isinstance(last.get("content"), str | None):
            # A fresh dict: the last message may be shared with a stored conversation.
            messages[-1] = {**last, "tool_calls": [*last.get("tool_calls", ()), call]}
            return
    messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _function_output(item: dict[str, Any], at: str) -> dict[str, Any]:
    call_id = _required(item, "call_id", at)
    output = item.get("output")
    if isinstance(output, list):
        texts = []
        for n, part in enumerate(output):
            converted = _part(part, f"{at}.output[{n}]")
            if converted is not None and converted["type"] == "text":
                texts.append(converted["text"])
        output = "\n".join(texts)
    elif not isinstance(output, str):
        raise bad(f"{at}.output", f"{at}.output must be a string or an array of parts")
    return {"role": "tool", "tool_call_id": call_id, "content": output}


# --- tools -------------------------------------------------------------------------------


def _tools(raw: object) -> tuple[list[dict[str, Any]], dict[str, tuple[str, str]]]:
    """Chat tools, and flattened name -> (namespace, name) for the namespaced ones."""
    if raw is None:
        return [], {}
    if not isinstance(raw, list):
        raise bad("tools", "'tools' must be an array of tool objects")
    tools: list[dict[str, Any]] = []
    namespaced: dict[str, tuple[str, str]] = {}
    for i, tool in enumerate(raw):
        at = f"tools[{i}]"
        kind = _kind(tool, at)
        if kind == "function":
            tools.append(_function_tool(tool, at))
        elif kind == "namespace":
            namespace = _required(tool, "name", at)
            inner = tool.get("tools")
            if not isinstance(inner, list):
                raise bad(f"{at}.tools", f"{at}.tools must be an array of tool objects")
            for n, sub in enumerate(inner):
                sub_at = f"{at}.tools[{n}]"
                if _kind(sub, sub_at) != "function":
                    continue  # custom (freeform) tools have no chat equivalent
                function = _function_tool(sub, sub_at)
                name = function["function"]["name"]
                flat = function["function"]["name"] = _flat_name(namespace, name)
                namespaced[flat] = (namespace, name)
                tools.append(function)
        # Hosted tools (web_search, local_shell, file_search, ...) and freeform `custom`
        # tools run on OpenAI's side or need its grammar: no upstream here can honour them.
    return tools, namespaced


def _kind(tool: object, at: str) -> str:
    if not isinstance(tool, dict):
        raise bad(at, f"{at} must be an object")
    kind = tool.get("type")
    if not isinstance(kind, str):
        raise bad(f"{at}.type", f"{at}.type must be a string such as 'function'")
    return kind


def _function_tool(tool: dict[str, Any], at: str) -> dict[str, Any]:
    if isinstance(tool.get("function"), dict) and "name" not in tool:
        tool, at = tool["function"], f"{at}.function"  # a chat-style tool sent here: take it
    function: dict[str, Any] = {"name": _required(tool, "name", at)}
    description = optional_field(tool, "description", str, "a string", f"{at}.")
    if description is not None:
        function["description"] = description
    parameters = optional_field(tool, "parameters", dict, "an object (a JSON schema)", f"{at}.")
    function["parameters"] = parameters if parameters is not None else {"type": "object"}
    strict = optional_field(tool, "strict", bool, "true or false", f"{at}.")
    if strict is not None:
        function["strict"] = strict
    return {"type": "function", "function": function}


def _flat_name(namespace: str, name: str) -> str:
    # Codex names a namespace's functions so that namespace + name is the full tool name
    # (`mcp__server__` + `tool`); otherwise keep the two apart.
    if namespace.endswith("_") or name.startswith("_"):
        return namespace + name
    return f"{namespace}__{name}"


def _tool_choice(
    raw: object, namespaced: dict[str, tuple[str, str]]
) -> str | dict[str, Any] | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        if raw not in _TOOL_CHOICES:
            raise bad("tool_choice", "'tool_choice' must be 'auto', 'none', 'required' or an"
                       " object naming a function")  # fmt: skip
        return raw
    if not isinstance(raw, dict):
        raise bad("tool_choice", "'tool_choice' must be a string or an object")
    kind = raw.get("type")
    if kind == "function":
        name = _required(raw, "name", "tool_choice")
        namespace = raw.get("namespace")
        if isinstance(namespace, str) and namespace:
            name = _flat_name(namespace, name)
        return {"type": "function", "function": {"name": name}}
    if kind == "allowed_tools":
        mode = raw.get("mode")
        return mode if mode in ("auto", "required") else "auto"
    return "auto"  # a hosted tool's choice: that tool is not offered upstream


def _response_format(raw: object) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise bad("text", "'text' must be an object")
    fmt = raw.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or not isinstance(fmt.get("type"), str):
        raise bad("text.format", "'text.format' must be an object with a 'type'")
    if fmt["type"] == "json_object":
        return {"type": "json_object"}
    if fmt["type"] == "json_schema":
        schema = fmt.get("schema")
        if not isinstance(schema, dict):
            raise bad("text.format.schema", "'text.format.schema' must be an object")
        spec: dict[str, Any] = {"name": fmt.get("name") or "response", "schema": schema}
        if isinstance(fmt.get("strict"), bool):
            spec["strict"] = fmt["strict"]
        return {"type": "json_schema", "json_schema": spec}
    return None


# --- field checks ------------------------------------------------------------------------


def _required(obj: dict[str, Any], name: str, at: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value:
        raise bad(f"{at}.{name}", f"{at}.{name} must be a non-empty string")
    return value
