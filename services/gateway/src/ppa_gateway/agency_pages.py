"""Agency portal pages: login, logout and the management home (販売店・業者様向け管理画面)."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ppa_gateway import proxy_login
from ppa_gateway.web import COOKIE, csrf_ok, current_session, identity, render, render_with_csrf, set_cookie
from ppa_runtime.auth import LoginLocked

router = APIRouter(include_in_schema=False)
LOGIN_FAILED = "販売店IDまたはパスワードが正しくありません。"
CSRF_FAILED = "画面の有効期限が切れました。もう一度操作してください。"
LOCKED = "ログインに続けて失敗したため、一時的にログインできません。15分ほど待ってから再度お試しください。"


def safe_next(target: str) -> str:
    """Where to go after login: a path inside the agency portal, never another site (an open redirect)."""
    if (target.startswith(("/agency/", "/agency_admin/")) and "//" not in target and "\\" not in target
            and all(c.isprintable() and not c.isspace() for c in target)):
        return target
    return "/agency/"


async def _login_page(request: Request, error: str | None = None, email: str = "", status: int = 200,
                      next_url: str = "") -> Response:
    return await render_with_csrf(request, "agency/login.html", {
        "title": "ログイン", "error": error, "email": email,
        "next": safe_next(next_url or request.query_params.get("next", ""))}, status)


@router.get("/agency/login", response_class=HTMLResponse)
async def login_form(request: Request) -> Response:
    return await _login_page(request)


@router.get("/store/linkaccounts")
async def seed_address() -> Response:
    """The seed's address for agencies (its manual says: open it, then 「新規会員登録はこちら」): the login page,
    which carries that link to the sign-up."""
    return RedirectResponse("/agency/login", status_code=301)


@router.post("/agency/login")
async def login(request: Request, email: str = Form(""), password: str = Form(""),
                csrf_token: str = Form(""), next: str = Form("")) -> Response:
    session = await current_session(request)
    if not csrf_ok(session, csrf_token):
        return await _login_page(request, CSRF_FAILED, email, status=403, next_url=next)
    try:
        agency = await identity(request).login_agency(email, password,
                                                      request.client.host if request.client else "unknown")
    except LoginLocked:
        return await _login_page(request, LOCKED, email, status=429, next_url=next)
    if agency is None:
        return await _login_page(request, LOGIN_FAILED, email, status=401, next_url=next)
    # a new session id at login, so an id planted before login is worth nothing after it
    await identity(request).sessions.close(request.cookies.get(COOKIE))
    session_id, _ = await identity(request).sessions.open("agency", agency.agency_id, email=agency.email,
                                                         company=agency.profile.company)
    response = RedirectResponse(safe_next(next), status_code=303)
    set_cookie(request, response, session_id)
    return response


@router.post("/agency/logout")
async def logout(request: Request, csrf_token: str = Form("")) -> Response:
    session = await current_session(request)
    if not csrf_ok(session, csrf_token):
        return RedirectResponse("/agency/", status_code=303)
    await identity(request).sessions.close(request.cookies.get(COOKIE))
    response = RedirectResponse("/agency/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    if session is not None and session["kind"] == "agency":
        await proxy_login.end_with_agency_logout(request, session["principal"], response)
    return response


@router.get("/agency/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    session = await current_session(request)
    if session is None or session["kind"] != "agency":
        return RedirectResponse("/agency/login", status_code=303)
    return render(request, "agency/home.html", {"title": "販売店・業者様向け管理画面", "session": session,
                                                "csrf": session["csrf"]})
