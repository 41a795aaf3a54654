"""HTTP plumbing shared by every API: RFC 9457 problems, request ids, latency metrics."""

from __future__ import annotations

import time
import uuid
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ppa_runtime import metrics
from ppa_runtime.context import correlated
from ppa_runtime.readiness import RETRY_AFTER_SECONDS, Unavailable

log = structlog.get_logger(__name__)
PROBLEM = "application/problem+json"


class Problem(Exception):
    """A domain refusal to report as problem+json."""

    def __init__(self, status: int, title: str, detail: str, errors: list[dict[str, Any]] | None = None,
                 type_: str = "about:blank") -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors
        self.type = type_


def problem_response(status: int, title: str, detail: str, request: Request | None = None,
                     errors: list[dict[str, Any]] | None = None, type_: str = "about:blank",
                     headers: dict[str, str] | None = None, extensions: dict[str, Any] | None = None) -> JSONResponse:
    """A problem+json response; `extensions` are further members of the body (RFC 9457 §3.2)."""
    body: dict[str, Any] = {"type": type_, "title": title, "status": status, "detail": detail}
    if request is not None:
        body["instance"] = request.url.path
    if errors:
        body["errors"] = errors
    if extensions:
        body.update(extensions)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


# what pydantic adds to an error's location for each member of a union (`closing_day.int`): not part of the field
_UNION_TAGS = frozenset({"int", "str", "bool", "float", "none", "decimal", "date", "datetime", "list", "dict"})


def _field_of(loc: tuple | list) -> str:
    """The field an error location names: `closing_day` for ('body', 'closing_day', 'int')."""
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(p for i, p in enumerate(parts) if i == 0 or not (p in _UNION_TAGS or "[" in p))


def install_problem_handlers(app: FastAPI) -> None:
    """Map every error to problem+json for API paths."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.title, exc.detail, request, exc.errors, exc.type)

    @app.exception_handler(Unavailable)
    async def _unavailable(request: Request, exc: Unavailable) -> JSONResponse:
        log.warning("dependency_unavailable", dependency=exc.dependency, path=request.url.path, error=str(exc))
        detail = f"{exc.dependency} に接続できないため受け付けられませんでした。しばらくしてから再送してください。"
        return problem_response(503, "Service Unavailable", detail, request,
                                headers={"Retry-After": str(RETRY_AFTER_SECONDS)}, extensions={"dependency": exc.dependency})

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors: list[dict[str, Any]] = []
        for e in exc.errors():
            field = _field_of(e.get("loc", ()))
            if all(known["field"] != field for known in errors):  # one entry per field, not per union member
                errors.append({"field": field, "message": e.get("msg", ""), "type": e.get("type", "")})
        return problem_response(422, "Unprocessable Content", "入力内容に誤りがあります。", request, errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                  405: "Method Not Allowed", 409: "Conflict", 413: "Content Too Large", 429: "Too Many Requests"}
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:  # Starlette names the methods of the first route of the path, not of them all
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
        return problem_response(exc.status_code, titles.get(exc.status_code, "Error"), detail, request,
                                headers=headers)


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app answers on the request's path (routers included in routers too)."""
    routes = request.app.router.routes
    return [method for method in METHODS
            if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)]


class RequestContextMiddleware:
    """Takes or makes an X-Request-ID, makes it the correlation id, and times the request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        raw = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = raw if raw and len(raw) <= 64 and raw.replace("-", "").isalnum() else uuid.uuid4().hex
        status = {"code": 500}
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        with correlated(request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                route = scope.get("route")
                path = getattr(route, "path", None) or "unmatched"
                metrics.HTTP_LATENCY.labels(scope["method"], path, str(status["code"])).observe(
                    time.perf_counter() - started
                )
