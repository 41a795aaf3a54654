"""Proxy login (代理ログイン) at the edge: the proxy cookie, and My Page's view of who is acting.

The proxy session has its own cookie (`ppa_proxy`), so the agency's portal session stays as it was
and the banner's way back simply ends the proxy session. While the cookie names a live session, My
Page acts as the owner in proxy mode (`session["proxy"]` set, `request.state.proxy` for the banner);
a cookie of an ended session is refused with a page that says why, and the cookie is dropped.
Every check goes through linking's `ProxySessions.verify` (see there why the event store decides)
after asking identity whether the owner still allows the agency's e-mail.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from ppa_contracts.linking import ProxyEndReason
from ppa_gateway.web import current_session, render
from ppa_linking.proxy import ProxyEnded

PROXY_COOKIE = "ppa_proxy"
MYPAGE = "/mypage/"
MYPAGE_LOGIN = "/mypage/login"
REASONS = {
    ProxyEndReason.LOGOUT.value: "販売店・業者様が終了",
    ProxyEndReason.EXPIRED.value: "有効期限切れ",
    ProxyEndReason.REVOKED.value: "連携解除により終了",
    ProxyEndReason.ENDED_BY_OWNER.value: "お客様が終了",
}
ENDED = {
    ProxyEndReason.LOGOUT: "この代理ログインは終了しています。",
    ProxyEndReason.EXPIRED: "代理ログインの有効期限が切れました。もう一度、管理画面から代理ログインしてください。",
    ProxyEndReason.REVOKED: "オーナー様により連携が解除されたため、代理ログインは終了しました。",
    ProxyEndReason.ENDED_BY_OWNER: "オーナー様が代理ログインを終了しました。",
}


class ProxySessionEnded(Exception):
    """The request's proxy cookie names a session that has ended."""

    def __init__(self, reason: ProxyEndReason) -> None:
        super().__init__(reason.value)
        self.reason = reason


def _linking(request: Request):
    return request.app.state.host.service("linking")


def _ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def set_proxy_cookie(request: Request, response: Response, token: str) -> None:
    secure = request.app.state.host.runtime.settings.public_url.startswith("https://")
    response.set_cookie(PROXY_COOKIE, token, httponly=True, samesite="lax", secure=secure, path="/")


def clear_proxy_cookie(response: Response) -> None:
    response.delete_cookie(PROXY_COOKIE, path="/")


async def end_with_agency_logout(request: Request, agency_id: str, response: Response) -> None:
    """The agency logs out of the portal: the proxy session opened in this browser ends with it."""
    if not any(s.name == "linking" for s in request.app.state.host.services):
        return
    doc = await _linking(request).proxies.lookup(request.cookies.get(PROXY_COOKIE))
    if doc is not None and doc["agency_id"] == agency_id:
        await _linking(request).proxies.end(doc["_id"], ProxyEndReason.LOGOUT, _ip(request))
    if request.cookies.get(PROXY_COOKIE):
        clear_proxy_cookie(response)


async def _still_granted(request: Request, doc: dict[str, Any]) -> bool:
    """Identity's word: does the owner still list the agency's e-mail? (True when identity cannot say.)"""
    identity = request.app.state.host.service("identity")
    grants = getattr(identity, "owner_grants_agency", None)
    if grants is None:
        return True
    return bool(await grants(doc["owner_id"], doc["agency_email"]))


async def active_proxy(request: Request) -> dict[str, Any] | None:
    """The live proxy session of this request, None without a proxy cookie; raises ProxySessionEnded."""
    if "proxy_session" in request.scope.get("state", {}):
        return request.state.proxy_session
    token = request.cookies.get(PROXY_COOKIE)
    proxies = _linking(request).proxies
    doc = await proxies.lookup(token)
    if doc is None:
        request.state.proxy_session = None
        return None
    try:
        live = await proxies.verify(doc, _ip(request), await _still_granted(request, doc))
    except ProxyEnded as exc:
        raise ProxySessionEnded(exc.reason) from None
    request.state.proxy_session = live
    request.state.proxy = {"number": live["link_id"], "agency_company": live.get("agency_company", ""),
                           "agency_email": live["agency_email"], "link_id": live["link_id"], "csrf": live["csrf"],
                           "expires_at": live["expires_at"]}
    return live


async def proxy_open_here(request: Request) -> bool:
    """Whether this browser holds a live proxy session (checked without recording anything)."""
    proxies = _linking(request).proxies
    doc = await proxies.lookup(request.cookies.get(PROXY_COOKIE))
    return doc is not None and await proxies.alive(doc)


async def owner_session(request: Request) -> dict[str, Any] | None:
    """Who My Page acts for: a live proxy session (as the owner, `proxy` set) or the owner's own session."""
    proxy = await active_proxy(request)
    if proxy is not None:
        return {"kind": "owner", "principal": proxy["owner_id"], "csrf": proxy["csrf"], "proxy": request.state.proxy,
                "proxy_session_id": proxy["_id"]}
    session = await current_session(request)
    return session if session is not None and session.get("kind") == "owner" else None


def ended_page(request: Request, reason: ProxyEndReason) -> HTMLResponse:
    """The refusal of a request whose proxy session has ended; drops the cookie."""
    response = render(request, "mypage/proxy_ended.html",
                      {"title": "代理ログイン終了", "message": ENDED[reason], "messages": []}, 403)
    clear_proxy_cookie(response)
    return response


def forbidden_in_proxy(request: Request, session: dict[str, Any], message: str) -> HTMLResponse:
    """An owner-only action tried from inside a proxy session."""
    return render(request, "mypage/proxy_forbidden.html",
                  {"title": "代理ログイン中はご利用いただけません", "session": session, "csrf": session["csrf"],
                   "proxy": session.get("proxy"), "message": message, "messages": []}, 403)


def install(app: FastAPI) -> None:
    """Any page that meets an ended proxy session answers with the refusal page."""

    @app.exception_handler(ProxySessionEnded)
    async def _ended(request: Request, exc: ProxySessionEnded) -> HTMLResponse:
        return ended_page(request, exc.reason)
