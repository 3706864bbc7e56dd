"""A cap on request bodies (``jobsched server --max-body``, 1 MiB by default): 413 with a JSON error
body beyond it, whether the client declares the length (``Content-Length``) or streams the body
(chunked). Nothing beyond the cap is read, so nothing is parsed or stored."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_MAX_BODY = 1 << 20


def too_large(limit: int) -> str:
    return f"body: request body larger than {limit} bytes (the server's --max-body)"


class BodyLimit:
    """Pure ASGI middleware: 413 when a request body exceeds ``limit`` bytes."""

    def __init__(self, app: ASGIApp, limit: int = DEFAULT_MAX_BODY) -> None:
        if limit < 1:
            raise ValueError(f"max_body: must be at least 1 byte, got {limit}")
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                length = -1
            if length < 0 or length > self.limit:
                detail = too_large(self.limit) if length >= 0 else "body: invalid Content-Length"
                await JSONResponse({"detail": detail}, status_code=413 if length >= 0 else 400)(
                    scope, receive, send)
                return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:  # FastAPI re-raises an HTTPException from reading the body
                    raise HTTPException(413, too_large(self.limit))
            return message

        await self.app(scope, counted, send)
