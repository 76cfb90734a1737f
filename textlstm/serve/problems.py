"""Every error the server answers is `{"error": {"code": int, "message": str}}`, never a
traceback: FastAPI's own 422 body, Starlette's HTML-less 404/405 and unexpected exceptions
all go through here. Messages name what was wrong and what is allowed, never echo the texts."""
from __future__ import annotations

import json
import logging
from typing import Any, Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import DataError, TextLSTMError
from .batching import QueueFull, ShuttingDown

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error with its HTTP status, raised by the endpoints and turned into the JSON body."""

    def __init__(self, code: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.code, self.message, self.headers = code, message, dict(headers or {})


def error_body(code: int, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(code: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=code, headers=dict(headers or {}))


def error_bytes(code: int, message: str) -> bytes:
    """The same body, for the ASGI middleware that answers before the app runs."""
    return json.dumps(error_body(code, message)).encode()


def validation_message(errors: list[dict[str, Any]]) -> str:
    """'texts.0: Input should be a valid string; colour: Extra inputs are not permitted'."""
    parts = []
    for e in errors[:10]:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
        parts.append(f"{loc}: {e.get('msg', 'invalid')}" if loc else str(e.get("msg", "invalid")))
    more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
    return "; ".join(parts) + more


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.code, exc.message, exc.headers)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
    headers = getattr(exc, "headers", None)
    if exc.status_code == 404:
        message = f"{request.url.path} is not an endpoint of this server (see /docs)."
    elif exc.status_code == 405 and headers and headers.get("Allow"):
        message = f"{request.method} is not allowed on {request.url.path}; use {headers['Allow']}."
    return error_response(exc.status_code, message, headers)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        detail = next(e for e in errors if e.get("type") == "json_invalid")
        reason = (detail.get("ctx") or {}).get("error", "JSON decode error")
        return error_response(400, f"The request body is not valid JSON ({reason}).")
    return error_response(422, "The request does not fit the schema (see /docs): " + validation_message(errors))


async def _queue_full(request: Request, exc: QueueFull) -> JSONResponse:
    return error_response(503, f"The server is busy: {exc}; retry shortly.", {"Retry-After": "1"})


async def _shutting_down(request: Request, exc: ShuttingDown) -> JSONResponse:
    return error_response(503, "The server is shutting down; retry on another instance.", {"Retry-After": "1"})


async def _library_error(request: Request, exc: TextLSTMError) -> JSONResponse:
    if isinstance(exc, DataError):  # e.g. TextInputError: the texts do not fit
        return error_response(422, str(exc))
    log.error("prediction failed: %s", exc)
    return error_response(500, f"The model could not predict: {exc}")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, f"Internal server error ({type(exc).__name__}); the server log has the details.")


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the JSON body."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(QueueFull, _queue_full)
    app.add_exception_handler(ShuttingDown, _shutting_down)
    app.add_exception_handler(TextLSTMError, _library_error)
    app.add_exception_handler(Exception, _unexpected)
