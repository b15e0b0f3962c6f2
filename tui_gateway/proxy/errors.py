"""Errors a client should see: `APIError`, OpenAI-shaped unless a dialect reshapes it."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ..domain.text import clean_text


class APIError(Exception):
    """An error the client should see as `{"error": {"message", "type", "param", "code"}}`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        overloaded: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}
        self.overloaded = overloaded
        """Every upstream tried was overloaded (503/529): worth a retry with back-off later."""

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> web.Response:
        return web.json_response(self.body(), status=self.status, headers=self.headers)

    def sse_event(self) -> bytes:
        """The same error as a final stream event, for a stream whose headers are already sent."""
        return b"data: " + json.dumps(self.body()).encode() + b"\n\ndata: [DONE]\n\n"


_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    417: "expectation_failed",
}


def http_exception_error(exc: web.HTTPException, request: web.BaseRequest) -> APIError:
    """aiohttp's own HTTP errors (no route, wrong method, a bad Expect) in our shape."""
    if exc.status == 404:
        message = f"no route for {request.method} {clean_text(request.path)}"
    elif exc.status == 417:
        expect = clean_text(request.headers.get("Expect", ""))
        message = f"unsupported Expect header {expect!r}: only '100-continue' is understood"
    else:
        message = exc.reason
    return APIError(exc.status, message, code=_CODES.get(exc.status))
