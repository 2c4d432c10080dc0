"""Every error leaves the API in the contract's ErrorResponse envelope. Mapped here, once."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from strataflow.errors import StrataflowError

log = logging.getLogger("strataflow.api")

_HTTP_TYPES = {
    400: "BadRequestError",
    401: "UnauthorizedError",
    403: "ForbiddenError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    409: "AlreadyExistsError",
    413: "PayloadTooLargeError",
    415: "UnsupportedMediaTypeError",
    422: "ValidationError",
    429: "TooManyRequestsError",
}


def error_body(status: int, message: str, type_: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"success": False, "status": status, "error": {"message": message, "type": type_, "details": details}}


def error_response(status: int, message: str, type_: str, details: dict[str, Any] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, type_, details), status_code=status)


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


async def _domain(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StrataflowError)
    return error_response(exc.status_code, exc.message, exc.type, exc.details)


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"type": err.get("type"), "location": _location(tuple(err.get("loc", ()))), "message": err.get("msg")}
        for err in exc.errors()
    ]
    first = problems[0] if problems else {"location": "", "message": "invalid request"}
    message = f"Invalid request: {first['location']}: {first['message']}" if first["location"] else first["message"]
    return error_response(422, message, "ValidationError", {"validation_errors": problems})


async def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    message = exc.detail if isinstance(exc.detail, str) else "Request failed"
    response = error_response(status, message, _HTTP_TYPES.get(status, "HTTPError"))
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "Internal server error", "InternalServerError")


def install(app: FastAPI) -> None:
    app.add_exception_handler(StrataflowError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
