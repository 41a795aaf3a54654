"""Page plumbing: the session cookie and CSRF checks every form goes through."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

COOKIE = "ppa_session"


def identity(request: Request):
    """The identity service hosted by this process."""
    return request.app.state.host.service("identity")


async def current_session(request: Request) -> dict | None:
    return await identity(request).sessions.get(request.cookies.get(COOKIE))


def set_cookie(request: Request, response: Response, session_id: str, max_age: int | None = None) -> None:
    """The session cookie; without `max_age` it ends with the browser session."""
    secure = request.app.state.host.runtime.settings.public_url.startswith("https://")
    response.set_cookie(COOKIE, session_id, max_age=max_age, httponly=True, samesite="lax", secure=secure, path="/")


def csrf_ok(session: dict | None, token: str | None) -> bool:
    """The form's token must be the session's own (constant-time compare)."""
    return bool(session and token and hmac.compare_digest(session["csrf"], token))


def render(request: Request, template: str, context: dict, status: int = 200) -> HTMLResponse:
    return request.app.state.templates.TemplateResponse(request, template, context, status_code=status)


async def render_with_csrf(request: Request, template: str, context: dict, status: int = 200,
                           render_with: Callable[..., Response] = render) -> Response:
    """A page with a form for whoever visits: the visitor's session supplies the CSRF token, and someone
    without one gets a new anonymous session (and its cookie) for it."""
    session = await current_session(request)
    fresh = None
    if session is None:
        fresh, session = await identity(request).sessions.open()
    response = render_with(request, template, {"csrf": session["csrf"], **context}, status)
    if fresh:
        set_cookie(request, response, fresh)
    return response
