"""Agency sign-up pages (新規販売店・業者様情報登録): e-mail entry → link → form → 確認 → 登録 → 完了."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ppa_gateway.web import csrf_ok, current_session, identity, render, render_with_csrf
from ppa_identity.agencies import NoSignupDraft, SignupLinkRefused, SignupThrottled
from ppa_identity.domain.agency import PROFILE_FIELDS, InvalidAgencyForm, SignupRefusal
from ppa_identity.domain.japan import PREFECTURES

router = APIRouter(include_in_schema=False)
CSRF_FAILED = "画面の有効期限が切れました。もう一度操作してください。"
THROTTLED = "短時間に多くのお申込みがありました。15分ほど待ってから再度お試しください。"
NO_DRAFT = "入力内容の確認からやり直してください（画面の有効期限が切れた可能性があります）。"
REFUSALS: dict[SignupRefusal, tuple[int, str]] = {
    SignupRefusal.UNKNOWN: (404, "このURLは無効です。メールに記載されたURLを正しく開いたかご確認いただくか、"
                                 "最初からお手続きください。"),
    SignupRefusal.EXPIRED: (410, "このURLは有効期限（1時間）が切れています。お手数ですが、最初からお手続きください。"),
    SignupRefusal.USED: (410, "このURLは既に使用されています（登録は完了しています）。"
                              "販売店IDとパスワードでログインしてください。"),
    SignupRefusal.REGISTERED: (409, "このメールアドレスは既に販売店として登録されています。ログインしてください。"),
}
TEXT_FIELDS = tuple(PROFILE_FIELDS)
# the token sits in the address: never send it on as a Referer, never keep the page in a cache
PRIVATE = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


async def _page(request: Request, template: str, context: dict, status: int = 200) -> Response:
    """Render with the visitor's session, opening an anonymous one (for the CSRF token) when needed."""
    response = await render_with_csrf(request, template, context, status)
    response.headers.update(PRIVATE)
    return response


def _mail_from(request: Request) -> str:
    notify = next((s for s in request.app.state.host.services if s.name == "notify"), None)
    return notify.mail.mail_from if notify is not None else "当サイトの送信元アドレス"


def _refused(request: Request, exc: SignupLinkRefused) -> Response:
    status, message = REFUSALS[exc.reason]
    response = render(request, "agency/signup_invalid.html", {"title": "新規会員登録", "message": message}, status)
    response.headers.update(PRIVATE)
    return response


def _form_context(token: str, email: str, values: dict, errors: dict | None = None, error: str | None = None) -> dict:
    return {"title": "新規販売店・業者様情報登録", "token": token, "email": email, "values": values,
            "errors": errors or {}, "error": error, "prefectures": PREFECTURES}


@router.get("/agency/signup", response_class=HTMLResponse)
async def email_form(request: Request) -> Response:
    return await _page(request, "agency/signup_email.html", {"title": "新規会員登録", "email": "",
                                                             "mail_from": _mail_from(request)})


@router.post("/agency/signup")
async def request_link(request: Request) -> Response:
    form = await request.form()
    email = str(form.get("email", ""))[:300]
    session = await current_session(request)
    context = {"title": "新規会員登録", "email": email, "mail_from": _mail_from(request)}
    if not csrf_ok(session, str(form.get("csrf_token", ""))):
        return await _page(request, "agency/signup_email.html", {**context, "error": CSRF_FAILED}, 403)
    client = request.client.host if request.client else "unknown"
    try:
        await identity(request).agencies.request_signup(email, client)
    except InvalidAgencyForm as exc:
        return await _page(request, "agency/signup_email.html", {**context, "error": exc.errors["email"]}, 422)
    except SignupThrottled:
        return await _page(request, "agency/signup_email.html", {**context, "error": THROTTLED}, 429)
    return await _page(request, "agency/signup_sent.html", {"title": "新規会員登録"})


@router.get("/agency/signup/done", response_class=HTMLResponse)
async def done(request: Request) -> Response:
    return await _page(request, "agency/signup_done.html", {"title": "新規販売店登録完了"})


@router.get("/agency/signup/{token}", response_class=HTMLResponse)
async def signup_form(request: Request, token: str) -> Response:
    agencies = identity(request).agencies
    try:
        link = await agencies.signup_link(token)
    except SignupLinkRefused as exc:
        return _refused(request, exc)
    session = await current_session(request)
    draft = await agencies.signup_draft(token, session["_id"]) if session else None
    values = dict(draft["profile"]) if draft else {}
    return await _page(request, "agency/signup_form.html", _form_context(token, link.email, values))


@router.post("/agency/signup/{token}")
async def confirm(request: Request, token: str) -> Response:
    form = await request.form()
    values = {f: str(form.get(f, ""))[:200] for f in TEXT_FIELDS}
    agencies = identity(request).agencies
    try:
        link = await agencies.signup_link(token)
    except SignupLinkRefused as exc:
        return _refused(request, exc)
    session = await current_session(request)
    if not csrf_ok(session, str(form.get("csrf_token", ""))):
        return await _page(request, "agency/signup_form.html",
                           _form_context(token, link.email, values, error=CSRF_FAILED), 403)
    try:
        draft = await agencies.prepare_signup(token, session["_id"], values, str(form.get("password", "")),
                                              str(form.get("password_confirm", "")))
    except SignupLinkRefused as exc:
        return _refused(request, exc)
    except InvalidAgencyForm as exc:
        return await _page(request, "agency/signup_form.html",
                           _form_context(token, link.email, values, exc.errors), 422)
    labels = [(f, PROFILE_FIELDS[f][0]) for f in TEXT_FIELDS]
    return await _page(request, "agency/signup_confirm.html",
                       {"title": "新規販売店・業者様情報登録 - 確認", "token": token, "email": draft["email"],
                        "profile": draft["profile"], "labels": labels})


@router.post("/agency/signup/{token}/register")
async def register(request: Request, token: str) -> Response:
    form = await request.form()
    agencies = identity(request).agencies
    session = await current_session(request)
    try:
        link = await agencies.signup_link(token)
        if not csrf_ok(session, str(form.get("csrf_token", ""))):
            return await _page(request, "agency/signup_form.html",
                               _form_context(token, link.email, {}, error=CSRF_FAILED), 403)
        await agencies.complete_signup(token, session["_id"])
    except SignupLinkRefused as exc:
        return _refused(request, exc)
    except NoSignupDraft:
        return await _page(request, "agency/signup_form.html", _form_context(token, link.email, {}, error=NO_DRAFT),
                           409)
    response = RedirectResponse("/agency/signup/done", status_code=303)
    response.headers.update(PRIVATE)
    return response

