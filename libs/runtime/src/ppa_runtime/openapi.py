"""The published OpenAPI document: what every operation of /api/v1 really answers.

Routes declare what is theirs (`problems(404, 409)`, a CSV or PDF body, links to the next request); the rest is
true of every operation alike and is added here once, so no route can forget it: a refusal is RFC 9457
problem+json with the `Problem` schema (FastAPI's own `HTTPValidationError` is never sent, so it is dropped),
an operation behind a bearer token can answer 401, one with a body can answer 400 (not JSON), 413 (too large)
and 422, and `servers` names the installation's public URL. tests/contract runs schemathesis against it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

PROBLEM = "application/problem+json"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

# RFC 9457 §3.1 and what the API adds: `errors` names each refused field, some refusals carry more members
PROBLEM_SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details; `detail` is Japanese, for people",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "description": "about:blank unless a more specific type applies"},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "instance": {"type": "string", "description": "the request's path"},
            "errors": {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"}},
        },
        "additionalProperties": True,
    },
    "FieldError": {
        "type": "object",
        "required": ["field", "message"],
        "properties": {"field": {"type": "string"}, "message": {"type": "string"}, "type": {"type": "string"}},
    },
}

DESCRIPTIONS = {
    400: "The body could not be read as JSON text (e.g. not UTF-8)",
    401: "No valid credentials (WWW-Authenticate says which scheme)",
    403: "Not allowed",
    404: "No such resource for this agency",
    409: "Conflicts with the current state (taken, changed meanwhile, wrong status)",
    413: "The body is larger than the operation accepts; nothing was read",
    422: "Invalid input; `errors` names each field; nothing was changed",
    429: "Too many attempts; wait and try again",
    503: "Kafka or MongoDB unreachable: nothing was stored; retry after Retry-After seconds",
}


def problems(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses=` entries: each status answered with problem+json (`descriptions` override, as s404=...)."""
    return {status: {"description": descriptions.get(f"s{status}", DESCRIPTIONS[status]),
                     "content": {PROBLEM: {"schema": PROBLEM_REF}}} for status in statuses}


def body_of(media_type: str, description: str, **schema: Any) -> dict[int | str, dict[str, Any]]:
    """A 200 whose body is a file (CSV, PDF) rather than JSON."""
    return {200: {"description": description,
                  "content": {media_type: {"schema": {"type": "string", **schema}}}}}


def _complete(operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    common = [422] if "parameters" in operation or "requestBody" in operation else []
    if operation.get("security"):
        common.append(401)
    if "requestBody" in operation:
        common += [400, 413, 422]
    for status in common:
        responses.setdefault(str(status), problems(status)[status])
    invalid = responses.get("422")
    if invalid is not None:  # FastAPI's own 422 (HTTPValidationError) is never sent: every refusal is a problem
        invalid["description"] = DESCRIPTIONS[422]
        invalid["content"] = {PROBLEM: {"schema": PROBLEM_REF}}
    for response in responses.values():
        content = response.get("content", {})
        if len(content) > 1 and "application/json" in content and not content["application/json"].get("schema"):
            del content["application/json"]  # FastAPI's default beside a declared CSV or PDF body


def document(app: FastAPI, public_url: str) -> dict[str, Any]:
    """The app's OpenAPI document, completed (see the module's docstring)."""
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes,
                      servers=[{"url": public_url.rstrip("/"), "description": "this installation"}])
    for path, item in doc.get("paths", {}).items():
        if path.startswith("/api/"):
            for operation in item.values():
                _complete(operation)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas.update(PROBLEM_SCHEMAS)
    return doc


def install(app: FastAPI, public_url: str) -> None:
    """Serve the completed document at the app's openapi_url (built once, on the first request)."""
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app, public_url)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
