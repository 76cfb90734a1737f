"""The ASGI layer in front of the app: bearer-token authentication, the request-body limit,
and for every request its metrics and one access-log line (method, path, status, latency —
never a text). Plain ASGI rather than Starlette's BaseHTTPMiddleware, so that the body can be
counted as it streams in and nothing is buffered."""
from __future__ import annotations

import hmac
import logging
import time
from typing import Any, Awaitable, Callable

from starlette.exceptions import HTTPException

from .metrics import ServeMetrics
from .problems import error_bytes

access_log = logging.getLogger("textlstm.serve.access")

# Liveness and readiness probes carry no token; nor does a browser opening the page, which is
# static, holds no data, and asks for the token itself when the API answers 401.
OPEN_PATHS = frozenset({"/health", "/ready", "/"})
Scope = dict[str, Any]
Message = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


class Gate:
    """Wraps the FastAPI app: `Gate(app, metrics=..., max_body=..., token=...)`."""

    def __init__(self, app: ASGIApp, *, metrics: ServeMetrics, max_body: int, token: str | None = None):
        self.app, self.metrics, self.max_body = app, metrics, max_body
        self._token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]  # what an exception that escapes the app ends as

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            refusal = self._refusal(scope)
            if refusal is not None:
                await _answer(send_and_note, *refusal)
            else:
                await self.app(scope, self._limited(receive), send_and_note)
        finally:
            seconds = time.perf_counter() - start
            self.metrics.observe_request(scope["path"], scope["method"], status[0], seconds)
            client = scope.get("client")
            access_log.info('%s "%s %s" %d %.1f ms', client[0] if client else "-", scope["method"],
                            scope["path"], status[0], seconds * 1000)

    def _refusal(self, scope: Scope) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        """(status, message, headers) when the request is refused before it reaches the app."""
        headers = dict(scope["headers"])  # header names arrive lowercased
        if self._token is not None and scope["path"] not in OPEN_PATHS:
            given = headers.get(b"authorization", b"")
            scheme, _, credentials = given.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(credentials.strip(), self._token):
                why = "is missing" if not given else "is not valid"
                return 401, f"The bearer token {why}: send 'Authorization: Bearer TOKEN'.", [
                    (b"www-authenticate", b'Bearer realm="textlstm"')]
        length = headers.get(b"content-length")
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                return 400, f"Content-Length {length.decode('latin-1')!r} is not a number of bytes.", []
            if size > self.max_body:
                return 413, self._too_large(size), []
        return None

    def _too_large(self, size: int | None = None) -> str:
        got = f"{size:,} bytes" if size is not None else f"more than {self.max_body:,} bytes"
        return f"The request body has {got}; the limit is {self.max_body:,} bytes (--max-body)."

    def _limited(self, receive):
        """`receive`, counting body bytes: past the limit the request fails with 413 (for a
        body sent without Content-Length, or with a false one)."""
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise HTTPException(413, self._too_large())
            return message
        return counted


async def _answer(send, code: int, message: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = error_bytes(code, message)
    await send({"type": "http.response.start", "status": code,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})
