"""Owners' My Page: registration, login (次回から自動ログイン), logout, password reset and the menu.

`mypage_session` is the one place that says who My Page acts for; every My Page route asks it.
"Keep me logged in" opens a 30-day session with a persistent cookie; otherwise the cookie lasts
for the browser session and the session ends after 30 idle minutes (12 hours at most).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.background import BackgroundTask

from ppa_gateway.owner_homes import proved_homes
from ppa_gateway.web import COOKIE, csrf_ok, current_session, identity, render, render_with_csrf, set_cookie
from ppa_identity.domain.japan import PREFECTURES
from ppa_identity.domain.owner import INFO_OPT_IN_LABEL, PROFILE_FIELDS, InvalidOwnerForm
from ppa_identity.owners import RegistrationLinkRefused, RequestsThrottled, ResetLinkRefused
from ppa_runtime.auth import LoginLocked

router = APIRouter(include_in_schema=False)
log = structlog.get_logger(__name__)

REMEMBER_TTL = timedelta(days=30)
SESSION_TTL = timedelta(hours=12)
IDLE_TTL = timedelta(minutes=30)
LOGIN = "/mypage/login"
CSRF_FAILED = "画面の有効期限が切れました。もう一度操作してください。"
LOGIN_FAILED = "メールアドレスまたはパスワードが正しくありません。"
LOCKED = "ログインに続けて失敗したため、一時的にログインできません。15分ほど待ってから再度お試しください。"
THROTTLED = "短時間に多くのお申込みがありました。15分ほど待ってから再度お試しください。"
FORM_ERRORS = "入力内容に誤りがあります。各項目のメッセージをご確認ください。"
FLASHES = {"registered": "会員登録が完了しました。", "reset": "パスワードを再設定しました。新しいパスワードでログインしてください。"}
REGISTER_FIELDS = (*PROFILE_FIELDS, "info_opt_in")
REGISTRATION_REFUSED = {
    "unknown": "このURLは無効です。メールに記載のURLを、途中で切れていないかご確認のうえ、もう一度お試しください。",
    "expired": "このURLは有効期限が切れています。URLは1時間有効です。お手数ですが、最初からお手続きください。",
    "used": "このURLによる会員登録は完了しています。ログインしてご利用ください。",
    "registered": "このメールアドレスは既に登録されています。ログインしてご利用ください。",
}


async def mypage_session(request: Request) -> dict[str, Any] | None:
    """Who My Page acts for: the owner's own session, or a live proxy session as the owner (`proxy` set)."""
    if any(s.name == "linking" for s in request.app.state.host.services):
        from ppa_gateway import proxy_login

        return await proxy_login.owner_session(request)
    session = await current_session(request)
    return session if session is not None and session.get("kind") == "owner" else None


def to_login() -> RedirectResponse:
    return RedirectResponse(LOGIN, status_code=303)


def ip_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def page(request: Request, template: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    """A My Page page; `session` (when given) supplies the CSRF token and the proxy state."""
    session = context.get("session")
    base = {"messages": [], "errors": {}, "error": None, "csrf": session["csrf"] if session else "",
            "proxy": session.get("proxy") if session else None, "opt_in_label": INFO_OPT_IN_LABEL}
    response = render(request, template, base | context, status)
    response.headers["Cache-Control"] = "no-store"
    return response


async def anonymous_page(request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
    """A page for someone not signed in, with a CSRF token from a (new, if needed) anonymous session."""
    return await render_with_csrf(request, template, context, status, render_with=page)


async def _sign_in(request: Request, owner, remember: bool, target: str) -> Response:
    """A new owner session (a new id, so one planted before login is worth nothing) and its cookie."""
    sessions = identity(request).sessions
    await sessions.close(request.cookies.get(COOKIE))
    if remember:
        session_id, _ = await sessions.open("owner", owner.owner_id, ttl=REMEMBER_TTL, remember=True)
    else:
        session_id, _ = await sessions.open("owner", owner.owner_id, ttl=SESSION_TTL, idle=IDLE_TTL)
    response = RedirectResponse(target, status_code=303)
    set_cookie(request, response, session_id, int(REMEMBER_TTL.total_seconds()) if remember else None)
    return response


# --- login, logout ---------------------------------------------------------------------------------


@router.get("/mypage/login", response_class=HTMLResponse)
async def login_form(request: Request, done: str = "") -> Response:
    messages = [{"kind": "ok", "text": FLASHES[done]}] if done in FLASHES else []
    return await anonymous_page(request, "mypage/login.html", {"title": "ログイン", "email": "", "messages": messages})


@router.post("/mypage/login")
async def login(request: Request, email: str = Form(""), password: str = Form(""), remember: str = Form(""),
                csrf_token: str = Form("")) -> Response:
    context = {"title": "ログイン", "email": email[:254], "remember": bool(remember)}
    if not csrf_ok(await current_session(request), csrf_token):
        return await anonymous_page(request, "mypage/login.html", context | {"error": CSRF_FAILED}, 403)
    try:
        owner = await identity(request).owners.login(email, password, ip_of(request))
    except LoginLocked:
        return await anonymous_page(request, "mypage/login.html", context | {"error": LOCKED}, 429)
    if owner is None:
        return await anonymous_page(request, "mypage/login.html", context | {"error": LOGIN_FAILED}, 401)
    return await _sign_in(request, owner, bool(remember), "/mypage/")


@router.post("/mypage/logout")
async def logout(request: Request, csrf_token: str = Form("")) -> Response:
    session = await mypage_session(request)
    if session is None:
        return to_login()
    if session.get("proxy") or not csrf_ok(session, csrf_token):
        return RedirectResponse("/mypage/", status_code=303)
    await identity(request).sessions.close(request.cookies.get(COOKIE))
    response = to_login()
    response.delete_cookie(COOKIE, path="/")
    return response


# --- registration ----------------------------------------------------------------------------------


def _register_context(values: dict[str, str], errors: dict[str, str] | None = None) -> dict[str, Any]:
    return {"title": "新規会員登録", "values": values, "errors": errors or {}, "prefectures": PREFECTURES,
            "error": FORM_ERRORS if errors else None}


@router.get("/mypage/register", response_class=HTMLResponse)
async def register_form(request: Request) -> Response:
    return await anonymous_page(request, "mypage/register.html", _register_context({}))


@router.post("/mypage/register")
async def register(request: Request) -> Response:
    form = await request.form()
    values = {f: str(form.get(f, ""))[:300] for f in REGISTER_FIELDS}
    if not csrf_ok(await current_session(request), str(form.get("csrf_token", ""))):
        return await anonymous_page(request, "mypage/register.html",
                                    _register_context(values) | {"error": CSRF_FAILED}, 403)
    try:
        await identity(request).owners.request_registration(values, str(form.get("password", "")),
                                                            str(form.get("password_confirm", "")), ip_of(request))
    except InvalidOwnerForm as exc:
        return await anonymous_page(request, "mypage/register.html", _register_context(values, exc.errors), 422)
    except RequestsThrottled:
        return await anonymous_page(request, "mypage/register.html",
                                    _register_context(values) | {"error": THROTTLED}, 429)
    return await anonymous_page(request, "mypage/register_sent.html",
                                {"title": "仮登録メール送信", "email": values["email"].strip()})


async def _registration_refused(request: Request, reason: str) -> Response:
    message = REGISTRATION_REFUSED.get(reason, REGISTRATION_REFUSED["unknown"])
    return no_referrer(await anonymous_page(request, "mypage/register_invalid.html", {
        "title": "新規会員登録", "message": message, "registered": reason in ("used", "registered")}, 410))


@router.get("/mypage/register/{token}", response_class=HTMLResponse)
async def registration_link(request: Request, token: str) -> Response:
    """The mailed link: show who is being registered and a button (a GET never registers: mail scanners fetch links)."""
    try:
        requested = await identity(request).owners.registration_link(token)
    except RegistrationLinkRefused as exc:
        return await _registration_refused(request, exc.reason)
    return no_referrer(await anonymous_page(request, "mypage/register_complete.html",
                                             {"title": "新規会員登録", "token": token, "profile": requested.profile}))


@router.post("/mypage/register/{token}")
async def complete_registration(request: Request, token: str, csrf_token: str = Form("")) -> Response:
    owners = identity(request).owners
    if not csrf_ok(await current_session(request), csrf_token):
        try:
            requested = await owners.registration_link(token)
        except RegistrationLinkRefused as exc:
            return await _registration_refused(request, exc.reason)
        return no_referrer(await anonymous_page(request, "mypage/register_complete.html",
                                                 {"title": "新規会員登録", "token": token, "profile": requested.profile,
                                                  "error": CSRF_FAILED}, 403))
    try:
        owner = await owners.complete_registration(token)
    except RegistrationLinkRefused as exc:
        return await _registration_refused(request, exc.reason)
    return no_referrer(await _sign_in(request, owner, False, "/mypage/?done=registered"))


# --- menu ------------------------------------------------------------------------------------------


@router.get("/mypage/", response_class=HTMLResponse)
async def menu(request: Request, done: str = "") -> Response:
    if (session := await mypage_session(request)) is None:
        return to_login()
    owner = await identity(request).owners.load(session["principal"])
    if owner is None:
        return to_login()
    messages = [{"kind": "ok", "text": FLASHES[done]}] if done in FLASHES else []
    homes = await proved_homes(request, owner)
    return page(request, "mypage/menu.html", {"title": "マイページ", "session": session, "owner": owner,
                                              "homes": homes,
                                              "messages": messages, "watching": any(p.watch_service
                                                                                    for p in owner.products),
                                              "proxy_history": any(s.name == "linking"
                                                                   for s in request.app.state.host.services)})


# --- password reset --------------------------------------------------------------------------------


def no_referrer(response: Response) -> Response:
    response.headers["Referrer-Policy"] = "no-referrer"  # the reset link must not leak to other sites
    return response


async def _mail_reset(owners, address: str) -> None:
    try:
        await owners.mail_reset(address)
    except Exception:  # the page has answered already: log, the owner can ask again
        log.exception("owner_reset_mail_failed")


@router.get("/mypage/password/forgot", response_class=HTMLResponse)
async def forgot_form(request: Request) -> Response:
    return await anonymous_page(request, "mypage/forgot.html", {"title": "パスワードの再設定", "email": ""})


@router.post("/mypage/password/forgot")
async def forgot(request: Request, email: str = Form(""), csrf_token: str = Form("")) -> Response:
    context = {"title": "パスワードの再設定", "email": email[:254]}
    if not csrf_ok(await current_session(request), csrf_token):
        return await anonymous_page(request, "mypage/forgot.html", context | {"error": CSRF_FAILED}, 403)
    try:
        address = await identity(request).owners.accept_reset_request(email, ip_of(request))
    except InvalidOwnerForm as exc:
        return await anonymous_page(request, "mypage/forgot.html", context | {"errors": exc.errors}, 422)
    except RequestsThrottled:
        return await anonymous_page(request, "mypage/forgot.html", context | {"error": THROTTLED}, 429)
    response = await anonymous_page(request, "mypage/forgot_sent.html", {"title": "パスワード再設定メール送信"})
    # whether a mail goes out is decided after the answer, so the answer's timing says nothing about the address
    response.background = BackgroundTask(_mail_reset, identity(request).owners, address)
    return response


@router.get("/mypage/password/reset/{token}", response_class=HTMLResponse)
async def reset_form(request: Request, token: str) -> Response:
    try:
        await identity(request).owners.reset_link(token)
    except ResetLinkRefused:
        return no_referrer(await anonymous_page(request, "mypage/reset_invalid.html", {"title": "パスワードの再設定"},
                                                 410))
    return no_referrer(await anonymous_page(request, "mypage/reset_form.html",
                                             {"title": "パスワードの再設定", "token": token}))


@router.post("/mypage/password/reset/{token}")
async def reset(request: Request, token: str, password: str = Form(""), password_confirm: str = Form(""),
                csrf_token: str = Form("")) -> Response:
    context = {"title": "パスワードの再設定", "token": token}
    if not csrf_ok(await current_session(request), csrf_token):
        return no_referrer(await anonymous_page(request, "mypage/reset_form.html",
                                                 context | {"error": CSRF_FAILED}, 403))
    try:
        await identity(request).owners.reset_password(token, password, password_confirm)
    except ResetLinkRefused:
        return no_referrer(await anonymous_page(request, "mypage/reset_invalid.html", context, 410))
    except InvalidOwnerForm as exc:
        return no_referrer(await anonymous_page(request, "mypage/reset_form.html",
                                                 context | {"errors": exc.errors}, 422))
    response = RedirectResponse("/mypage/login?done=reset", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return no_referrer(response)
