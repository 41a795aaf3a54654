"""Agency portal pages of the login linkage (seed 000 §3–4): 登録ユーザー一覧, the user/request page
(`/agency_admin/{link_id}`, the address the request e-mail gives), 連携を許可 / 連携を許可しない and
代理ログイン; on the My Page side the proxy banner's way back and the owner's 代理ログイン履歴.

Every page and action is scoped to the session's agency: another agency's link id is a 404, the same
answer as an id that does not exist. Every form carries the session's CSRF token.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ppa_contracts.linking import ProxyEndReason, ProxyRefusal
from ppa_gateway import proxy_login
from ppa_gateway.web import csrf_ok, current_session, render
from ppa_linking.domain.links import AlreadyDecided, LinkNotFound, LinkStatus
from ppa_linking.proxy import ProxyRefused, SessionNotFound

router = APIRouter(include_in_schema=False)

CSRF_FAILED = "画面の有効期限が切れました。もう一度操作してください。"
NOT_FOUND = "指定されたユーザーは見つかりません。"
REVOKED_PAGE = "オーナー様により連携が解除されたため、このユーザーの情報は表示できません。"
DONE = {"approved": "オーナー様情報との連携に成功しました！", "rejected": "オーナー様情報との連携を拒否しました"}
DECIDED = {
    LinkStatus.APPROVED: "この連携申請はすでに「連携を許可」で更新済みです。もう一度操作することはできません。",
    LinkStatus.REJECTED: "この連携申請はすでに「連携を許可しない」で更新済みです。もう一度操作することはできません。",
    LinkStatus.REVOKED: "オーナー様が申請を取り下げたため、この連携申請は操作できません。",
}
REFUSED = {
    ProxyRefusal.NOT_APPROVED: "連携が許可されていないため、代理ログインできません。",
    ProxyRefusal.REVOKED: "オーナー様により連携が解除されたため、代理ログインできません。",
    ProxyRefusal.NESTED: "代理ログイン中は、別の代理ログインを開始できません。先に代理ログインを終了してください。",
}
STATUS = {"pending": "承認待ち", "approved": "連携中"}


def jst(value: Any) -> str:
    """An ISO timestamp as Japan time, YYYY/MM/DD HH:MM:SS (blank when missing)."""
    if not value:
        return ""
    from datetime import datetime, timedelta, timezone

    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return f"{moment.astimezone(timezone(timedelta(hours=9))):%Y/%m/%d %H:%M:%S}"


def _page(request: Request, template: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    request.app.state.templates.env.filters.setdefault("jst", jst)
    return render(request, template, {"messages": [], **context}, status)


async def _agency(request: Request) -> dict | None:
    session = await current_session(request)
    return session if session is not None and session["kind"] == "agency" else None


def _linking(request: Request):
    return request.app.state.host.service("linking")


def _ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _login() -> RedirectResponse:
    return RedirectResponse("/agency/login", status_code=303)


def _missing(request: Request, session: dict, message: str = NOT_FOUND) -> HTMLResponse:
    return _page(request, "agency/users_not_found.html", {"title": "見つかりません", "session": session,
                                                          "csrf": session["csrf"], "message": message}, 404)


@router.get("/agency/users", response_class=HTMLResponse)
async def users(request: Request, q: str = "", page: str = "1") -> Response:
    if (session := await _agency(request)) is None:
        return _login()
    number = int(page) if page.isdigit() and 0 < int(page) <= 100_000 else 1
    result = await _linking(request).user_list(session["principal"], q[:200], number)
    return _page(request, "agency/users.html", {"title": "登録ユーザー一覧", "session": session, "csrf": session["csrf"],
                                                "q": q, "query": urlencode({"q": q}), "result": result,
                                                "status_labels": STATUS})


async def _user_page(request: Request, session: dict, link_id: str, messages: list[dict] | None = None,
                     status: int = 200) -> Response:
    try:
        view = await _linking(request).view(session["principal"], link_id)
    except LinkNotFound:
        return _missing(request, session)
    if view.link.status is LinkStatus.REVOKED:
        return _missing(request, session, REVOKED_PAGE)
    messages = list(messages or [])
    done = request.query_params.get("done")
    if done in DONE and not messages:
        messages.append({"kind": "ok", "text": DONE[done]})
    return _page(request, "agency/users_detail.html", {"title": "ユーザー情報", "session": session,
                                                       "csrf": session["csrf"], "view": view,
                                                       "messages": messages}, status)


@router.get("/agency_admin/{link_id}", response_class=HTMLResponse)
async def user(request: Request, link_id: str) -> Response:
    if (session := await _agency(request)) is None:  # the request e-mail's link: come back here after login
        return RedirectResponse(f"/agency/login?{urlencode({'next': request.url.path})}", status_code=303)
    return await _user_page(request, session, link_id)


async def _decide(request: Request, link_id: str, csrf_token: str, approved: bool) -> Response:
    if (session := await _agency(request)) is None:
        return _login()
    if not csrf_ok(session, csrf_token):
        return await _user_page(request, session, link_id, [{"kind": "error", "text": CSRF_FAILED}], 403)
    try:
        await _linking(request).decide(session["principal"], link_id, approved)
    except LinkNotFound:
        return _missing(request, session)
    except AlreadyDecided as exc:
        if exc.status is LinkStatus.REVOKED:
            return _missing(request, session, DECIDED[exc.status])
        return await _user_page(request, session, link_id, [{"kind": "error", "text": DECIDED[exc.status]}], 409)
    done = "approved" if approved else "rejected"
    return RedirectResponse(f"/agency_admin/{link_id}?done={done}", status_code=303)


@router.post("/agency_admin/{link_id}/approve")
async def approve(request: Request, link_id: str, csrf_token: str = Form("")) -> Response:
    return await _decide(request, link_id, csrf_token, approved=True)


@router.post("/agency_admin/{link_id}/reject")
async def reject(request: Request, link_id: str, csrf_token: str = Form("")) -> Response:
    return await _decide(request, link_id, csrf_token, approved=False)


@router.post("/agency_admin/{link_id}/proxy")
async def start_proxy(request: Request, link_id: str, csrf_token: str = Form("")) -> Response:
    """代理ログイン: a proxy session for an approved link, then the owner's My Page."""
    if (session := await _agency(request)) is None:
        return _login()
    if not csrf_ok(session, csrf_token):
        return await _user_page(request, session, link_id, [{"kind": "error", "text": CSRF_FAILED}], 403)
    inside = await proxy_login.proxy_open_here(request)
    try:
        started = await _linking(request).proxies.start(session["principal"], link_id, _ip(request), inside)
    except ProxyRefused as exc:
        if exc.reason is ProxyRefusal.NOT_FOUND:
            return _missing(request, session)
        if exc.reason is ProxyRefusal.REVOKED:
            return _missing(request, session, REFUSED[exc.reason])
        return await _user_page(request, session, link_id, [{"kind": "error", "text": REFUSED[exc.reason]}],
                                409 if exc.reason is ProxyRefusal.NESTED else 403)
    response = RedirectResponse(proxy_login.MYPAGE, status_code=303)
    proxy_login.set_proxy_cookie(request, response, started.token)
    return response


@router.post("/mypage/proxy/end")
async def end_proxy(request: Request, csrf_token: str = Form("")) -> Response:
    """The banner's way back: end this proxy session and return to the agency's user page."""
    try:
        proxy = await proxy_login.active_proxy(request)
    except proxy_login.ProxySessionEnded as exc:
        return proxy_login.ended_page(request, exc.reason)
    if proxy is None:
        return RedirectResponse("/agency/users", status_code=303)
    if not csrf_ok(proxy, csrf_token):
        return RedirectResponse(proxy_login.MYPAGE, status_code=303)
    await _linking(request).proxies.end(proxy["_id"], ProxyEndReason.LOGOUT, _ip(request))
    response = RedirectResponse(f"/agency_admin/{proxy['link_id']}", status_code=303)
    proxy_login.clear_proxy_cookie(response)
    return response


@router.get("/mypage/proxy-history", response_class=HTMLResponse)
async def proxy_history(request: Request) -> Response:
    """代理ログイン履歴: every proxy session of this owner, and a way to end an active one."""
    owner = await proxy_login.owner_session(request)
    if owner is None:
        return RedirectResponse(proxy_login.MYPAGE_LOGIN, status_code=303)
    sessions = await _linking(request).proxies.history(owner["principal"])
    return _page(request, "mypage/proxy_history.html", {
        "title": "代理ログイン履歴", "session": owner, "csrf": owner["csrf"], "sessions": sessions,
        "reasons": proxy_login.REASONS, "proxy": owner.get("proxy"),
        "messages": [{"kind": "ok", "text": "代理ログインを終了しました。"}]
        if request.query_params.get("done") == "ended" else []})


@router.post("/mypage/proxy-history/{session_id}/end")
async def end_by_owner(request: Request, session_id: str, csrf_token: str = Form("")) -> Response:
    """The owner ends an active proxy session (not possible from inside a proxy session)."""
    owner = await proxy_login.owner_session(request)
    if owner is None:
        return RedirectResponse(proxy_login.MYPAGE_LOGIN, status_code=303)
    if not csrf_ok(owner, csrf_token):
        return _page(request, "mypage/proxy_history.html", {
            "title": "代理ログイン履歴", "session": owner, "csrf": owner["csrf"], "proxy": owner.get("proxy"),
            "sessions": await _linking(request).proxies.history(owner["principal"]), "reasons": proxy_login.REASONS,
            "messages": [{"kind": "error", "text": CSRF_FAILED}]}, 403)
    if owner.get("proxy"):
        return proxy_login.forbidden_in_proxy(request, owner, "代理ログイン中は、代理ログインを終了させる操作はできません。")
    try:
        await _linking(request).proxies.end_by_owner(owner["principal"], session_id, _ip(request))
    except SessionNotFound:
        return _page(request, "mypage/proxy_history.html", {
            "title": "代理ログイン履歴", "session": owner, "csrf": owner["csrf"], "proxy": None,
            "sessions": await _linking(request).proxies.history(owner["principal"]), "reasons": proxy_login.REASONS,
            "messages": [{"kind": "error", "text": "指定された代理ログインは見つかりません。"}]}, 404)
    return RedirectResponse("/mypage/proxy-history?done=ended", status_code=303)
