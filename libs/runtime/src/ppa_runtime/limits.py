"""The largest request body a process reads: a bigger one is answered 413 problem+json before it is parsed.

A device's batch (up to 10,000 readings, about 1.2 MB of JSON) has a limit of its own; everything else (a customer,
a form, the settings) is far smaller than the general one. The Content-Length is checked first; a body sent without
one (chunked) is counted as it arrives and refused once it passes the limit, before the route sees any of it.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 1024 * 1024
MAX_READINGS_BODY_BYTES = 4 * 1024 * 1024
# a customer import file: 100,000 customers are about 10 MB of CSV (the API and the portal's upload)
MAX_IMPORT_BODY_BYTES = 32 * 1024 * 1024
IMPORT_PATHS = ("/api/v1/customer-imports", "/agency/customers/import")
PROBLEM = "application/problem+json"


def _detail(limit: int) -> str:
    return f"リクエストが大きすぎます（上限 {limit:,} バイト）。"


class BodyTooLarge(HTTPException):
    """The request body passed its limit while it was being read (an HTTPException, so the route's body parsing
    lets it through to the problem handler rather than turning it into a 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _detail(limit))


def limit_for(path: str) -> int:
    """The largest body accepted on `path`."""
    if path in IMPORT_PATHS:
        return MAX_IMPORT_BODY_BYTES
    return MAX_READINGS_BODY_BYTES if path.startswith("/api/v1/devices/") else MAX_BODY_BYTES


class BodyLimitMiddleware:
    """Refuses request bodies over `limit_for(path)` with 413 problem+json."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope["path"])
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _refuse(scope, send, limit)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge:
            if started:
                raise
            await _refuse(scope, send, limit)


async def _refuse(scope: Scope, send: Send, limit: int) -> None:
    body = json.dumps({"type": "about:blank", "title": "Content Too Large", "status": 413,
                       "detail": _detail(limit), "instance": scope["path"]},
                      ensure_ascii=False).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", PROBLEM.encode()), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
