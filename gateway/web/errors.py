"""The one error model of the HTTP API, and the handlers that turn every failure into it.

Every failure - a refused command, a bad token, a validation error, an unknown
path, an oversized upload, a crash - answers with::

    {"error": {"code": "machine_readable_code", "message": "What to do next."}}

``code`` is stable for programs; ``message`` is written for a member or admin.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.access.errors import AccessError
from gateway.commands import CommandError
from gateway.machine.files import FileRejected

log = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """What every failed request answers."""

    error: ErrorDetail


class ApiError(Exception):
    """A request the API refuses; raised by handlers and dependencies."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


class PayloadTooLarge(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(413, "too_large", message)


#: HTTP status for each CommandError / FileRejected code; anything else is a 409 conflict.
COMMAND_STATUS: dict[str, int] = {
    "bad_args": 400,
    "bad_name": 400,
    "not_found": 404,
    "invalid_gcode": 422,
    "too_large": 413,
    "unknown_command": 409,
    "timeout": 504,
    "not_running": 503,
    "not_maintainer": 403,
}

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorised",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


def from_command(err: CommandError) -> ApiError:
    return ApiError(COMMAND_STATUS.get(err.code, 409), err.code, err.message)


def error_json(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries declaring the error model for ``statuses``."""
    return {
        s: {"model": ErrorBody, "description": _STATUS_CODES.get(s, "error").replace("_", " ")}
        for s in statuses
    }


#: Regular expressions of request fields, in words: nobody should be shown a regex.
PATTERN_RULES: dict[str, str] = {}


def _friendly(e: Any) -> str:
    """One validation error as a person reads it (pydantic's wording is for programmers)."""
    ctx = e.get("ctx") or {}
    match e.get("type"):
        case "string_pattern_mismatch":
            return PATTERN_RULES.get(
                str(ctx.get("pattern")), "contains characters that are not allowed here"
            )
        case "missing":
            return "is required"
        case "string_too_short":
            n = ctx.get("min_length", 1)
            return "must not be empty" if n == 1 else f"needs at least {n} characters"
        case "string_too_long":
            return f"is too long: at most {ctx.get('max_length')} characters"
        case "literal_error" | "enum":
            return f"must be one of {ctx.get('expected')}"
        case "int_parsing" | "int_type" | "int_from_float":
            return "must be a whole number"
        case "greater_than_equal" | "less_than_equal" | "greater_than" | "less_than":
            return str(e.get("msg", "is out of range")).replace("Input should be", "must be")
        case "json_invalid":
            return "the body is not valid JSON"
        case "model_attributes_type" | "dict_type":
            return "must be a JSON object"
        case _:
            return str(e.get("msg", "is not valid"))


def _validation_message(err: RequestValidationError) -> str:
    parts = []
    for e in err.errors()[:5]:
        loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
        text = _friendly(e)
        parts.append(text if text.startswith(("a ", "the ")) else f"{loc} {text}")
    return "; ".join(parts) or "the request is not valid"


def install(app: FastAPI) -> None:
    """Route every kind of failure through the one error model."""

    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_json(exc.status, exc.code, exc.message, exc.headers)

    async def command_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, CommandError)
        e = from_command(exc)
        return error_json(e.status, e.code, e.message)

    async def file_rejected(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, FileRejected)
        return error_json(COMMAND_STATUS.get(exc.code, 400), exc.code, str(exc))

    async def access_error(request: Request, exc: Exception) -> JSONResponse:
        return error_json(503, "access_unavailable", str(exc))

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        message = str(exc.detail) if exc.detail else code.replace("_", " ")
        if exc.status_code == 404:
            message = f"nothing at {request.url.path}; the API is listed at /openapi.json"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        return error_json(exc.status_code, code, message, dict(exc.headers or {}))

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_json(422, "invalid_request", _validation_message(exc))

    async def crash(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error_json(
            500,
            "internal_error",
            "the gateway failed to answer this request; its log has the details",
        )

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(CommandError, command_error)
    app.add_exception_handler(FileRejected, file_rejected)
    app.add_exception_handler(AccessError, access_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, crash)
