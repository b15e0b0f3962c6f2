"""Every path a chat body's checks name, with the exact 400 each gives (issue 10).

The checks of messages, content parts, tool calls and tools return what is wrong instead of
spelling out each item's path as they go; these pin that the error a client sees is unchanged.
"""

from __future__ import annotations

from typing import Any

import pytest

from tui_gateway.proxy.errors import APIError
from tui_gateway.proxy.validation import validate_chat

USER = {"role": "user", "content": "hi"}


@pytest.mark.parametrize(
    ("field", "value", "param", "message"),
    [
        ('messages', [{'role': 'user', 'content': {'a': 1}}], 'messages[0].content', 'messages[0].content must be a string, an array of content parts, or null'),
        ('messages', [{'role': 'user', 'content': [{'type': 'image_url', 'image_url': {'u': 1}}]}], 'messages[0].content[0].image_url', "messages[0].content[0].image_url must be an object with a 'url'"),
        ('messages', [{'role': 'user', 'content': [{'type': 'text', 'text': 'ok'}, {'type': 3}]}], 'messages[0].content[1].type', "messages[0].content[1].type must be a string such as 'text'"),
        ('messages', [{'role': 'user', 'content': 'hi', 'name': 5}], 'messages[0].name', 'messages[0].name must be a string'),
        ('messages', [{'role': 'tool', 'content': 'x', 'tool_call_id': 5}], 'messages[0].tool_call_id', 'messages[0].tool_call_id must be a string'),
        ('messages', [{'role': 'assistant', 'content': None, 'tool_calls': [{'id': 1, 'function': {'name': 'f'}}]}], 'messages[0].tool_calls[0].id', 'messages[0].tool_calls[0].id must be a string'),
        ('messages', [{'role': 'assistant', 'content': None, 'tool_calls': [{'function': {'name': 'f'}, 'type': []}]}], 'messages[0].tool_calls[0].type', 'messages[0].tool_calls[0].type must be a string'),
        ('messages', [{'role': 'assistant', 'content': None, 'tool_calls': [{'function': {'name': 'f'}}, 'x']}], 'messages[0].tool_calls[1]', 'messages[0].tool_calls[1] must be an object'),
        ('messages', [{'role': 'assistant', 'content': None, 'tool_calls': [{'function': 'f'}]}], 'messages[0].tool_calls[0].function', "messages[0].tool_calls[0].function must be an object with a 'name'"),
        ('messages', [{'role': 'assistant', 'content': None, 'tool_calls': [{'function': {'name': 'f', 'arguments': {}}}]}], 'messages[0].tool_calls[0].function.arguments', 'messages[0].tool_calls[0].function.arguments must be a string of JSON'),
        ('messages', [{'role': 'user', 'content': 'hi'}, {'role': 'assistant', 'content': [{'type': 'text', 'text': 'ok'}], 'tool_calls': [{'function': {'name': 'f'}}, {'function': {}}]}], 'messages[1].tool_calls[1].function.name', 'messages[1].tool_calls[1].function.name must be a string'),
        ('tools', [5], 'tools[0]', 'tools[0] must be an object'),
        ('tools', [{'type': 1}], 'tools[0].type', 'tools[0].type must be a string'),
        ('tools', [{'type': 'function'}], 'tools[0].function', "tools[0].function must be an object with a 'name'"),
        ('tools', [{'type': 'function', 'function': {'name': 'f', 'description': 1}}], 'tools[0].function.description', 'tools[0].function.description must be a string'),
        ('tools', [{'function': {'name': 'f', 'parameters': []}}], 'tools[0].function.parameters', 'tools[0].function.parameters must be an object (a JSON schema)'),
        ('tools', [{'type': 'other'}, {'function': {'name': 2}}], 'tools[1].function.name', 'tools[1].function.name must be a string'),
    ],
)  # fmt: skip
def test_each_nested_problem_is_a_400_naming_its_path(
    field: str, value: Any, param: str, message: str
) -> None:
    body: dict[str, Any] = {"model": "m", "messages": [USER]}
    body[field] = value
    with pytest.raises(APIError) as caught:
        validate_chat(body)
    assert (caught.value.status, caught.value.param, caught.value.message) == (400, param, message)


def test_a_body_full_of_tool_calls_and_parts_is_accepted() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    parts = [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "u"}}]
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": parts},
        {"role": "assistant", "content": None, "tool_calls": [call, call]},
        {"role": "tool", "content": "r", "tool_call_id": "c1", "name": "f"},
    ]
    tools = [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {}}}]
    call_ = validate_chat({"model": "m", "messages": messages, "tools": tools})
    assert call_.messages is messages
