"""The signed-in agency's own account pages: 販売店・業者様情報, its edit, and the password change."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ppa_gateway.web import csrf_ok, current_session, identity, render
from ppa_identity.domain.agency import PROFILE_FIELDS, InvalidAgencyForm
from ppa_identity.domain.japan import PREFECTURES
from ppa_runtime.auth import LoginLocked

router = APIRouter(include_in_schema=False)
CSRF_FAILED = "画面の有効期限が切れました。もう一度操作してください。"
LOCKED = "パスワードの確認に続けて失敗したため、一時的に変更できません。15分ほど待ってから再度お試しください。"
FLASHES = {"profile": "登録情報を変更しました。", "password": "パスワードを変更しました。"}
LABELS = [(f, label) for f, (label, _) in PROFILE_FIELDS.items()]


async def _agency_session(request: Request) -> dict | None:
    session = await current_session(request)
    return session if session is not None and session["kind"] == "agency" else None


def _login() -> RedirectResponse:
    return RedirectResponse("/agency/login", status_code=303)


async def _own(request: Request, session: dict):
    try:
        return await identity(request).agencies.load_own(session["principal"], session["email"])
    except LookupError:
        return None


def _edit_page(request: Request, session: dict, values: dict, errors: dict | None = None,
               error: str | None = None, status: int = 200) -> Response:
    return render(request, "agency/profile_form.html",
                  {"title": "販売店・業者様情報変更", "session": session, "csrf": session["csrf"],
                   "email": session["email"], "values": values, "errors": errors or {}, "error": error,
                   "prefectures": PREFECTURES}, status)


def _password_page(request: Request, session: dict, errors: dict | None = None, error: str | None = None,
                   status: int = 200) -> Response:
    return render(request, "agency/password.html", {"title": "パスワード変更", "session": session,
                                                    "csrf": session["csrf"], "errors": errors or {},
                                                    "error": error}, status)


@router.get("/agency/profile", response_class=HTMLResponse)
async def profile(request: Request, done: str = "") -> Response:
    if (session := await _agency_session(request)) is None:
        return _login()
    if (agency := await _own(request, session)) is None:
        return _login()
    messages = [{"kind": "ok", "text": FLASHES[done]}] if done in FLASHES else []
    return render(request, "agency/profile.html", {"title": "販売店・業者様情報", "session": session,
                                                   "csrf": session["csrf"], "agency": agency, "labels": LABELS,
                                                   "messages": messages})


@router.get("/agency/profile/edit", response_class=HTMLResponse)
async def edit_form(request: Request) -> Response:
    if (session := await _agency_session(request)) is None:
        return _login()
    if (agency := await _own(request, session)) is None:
        return _login()
    return _edit_page(request, session, agency.profile.model_dump())


@router.post("/agency/profile/edit")
async def edit(request: Request) -> Response:
    if (session := await _agency_session(request)) is None:
        return _login()
    form = await request.form()
    values = {f: str(form.get(f, ""))[:200] for f in PROFILE_FIELDS}
    if not csrf_ok(session, str(form.get("csrf_token", ""))):
        return _edit_page(request, session, values, error=CSRF_FAILED, status=403)
    agencies = identity(request).agencies
    try:
        agency = await agencies.change_profile(session["principal"], session["email"], values)
    except InvalidAgencyForm as exc:
        return _edit_page(request, session, values, exc.errors, status=422)
    except LookupError:
        return _login()
    await agencies.remember_company(session["_id"], agency.profile.company)
    return RedirectResponse("/agency/profile?done=profile", status_code=303)


@router.get("/agency/password", response_class=HTMLResponse)
async def password_form(request: Request) -> Response:
    if (session := await _agency_session(request)) is None:
        return _login()
    return _password_page(request, session)


@router.post("/agency/password")
async def change_password(request: Request) -> Response:
    if (session := await _agency_session(request)) is None:
        return _login()
    form = await request.form()
    if not csrf_ok(session, str(form.get("csrf_token", ""))):
        return _password_page(request, session, error=CSRF_FAILED, status=403)
    agencies = identity(request).agencies
    try:
        await agencies.change_password(session["principal"], session["email"], str(form.get("current_password", "")),
                                       str(form.get("password", "")), str(form.get("password_confirm", "")),
                                       request.client.host if request.client else "unknown")
    except InvalidAgencyForm as exc:
        return _password_page(request, session, exc.errors, status=422)
    except LoginLocked:
        return _password_page(request, session, error=LOCKED, status=429)
    except LookupError:
        return _login()
    await agencies.end_other_sessions(session["principal"], session["_id"])
    return RedirectResponse("/agency/profile?done=password", status_code=303)
