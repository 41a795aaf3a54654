"""My Page: where each agency the owner allows stands (申請中 / 連携中 / 拒否 / 解除), and asking an agency again
after it declined or ended the link. The state is linking's (the pair's current link); the new request is
identity's (a new grant, which linking turns into a request and a mail to the agency)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from ppa_gateway.mypage_pages import mypage_session, to_login
from ppa_gateway.web import csrf_ok, identity
from ppa_identity.owners import RequestsThrottled

router = APIRouter(include_in_schema=False)
LABELS = {"pending": "申請中", "approved": "連携中", "rejected": "拒否", "revoked": "解除"}
NOTES = {"pending": "販売店・業者様の承認をお待ちください。", "approved": "代理ログインが許可されています。",
         "rejected": "販売店・業者様が連携を拒否しました。", "revoked": "連携は解除されています。",
         None: "申請を準備しています。しばらくしてから画面を更新してください。"}
ASK_AGAIN = frozenset({"rejected", "revoked"})
FLASHES = {"asked": "販売店・業者様に、もう一度連携を申請しました。",
           "ask_throttled": "この販売店・業者様には先ほど申請したばかりです。15分ほど待ってから再度お試しください。",
           "ask_refused": "この販売店・業者様には、いま申請し直すことはできません。"}


def _linking(request: Request):
    services = {s.name: s for s in request.app.state.host.services}
    return services.get("linking")


async def agency_states(request: Request, owner) -> list[dict[str, Any]]:
    """Each allowed agency's e-mail with its link state (None while the request is on its way)."""
    linking = _linking(request)
    out = []
    for email in owner.profile.agency_emails:
        status = None
        agency_id = owner.agency_ids.get(email)
        if linking is not None and agency_id:
            current = (await linking.links.load(agency_id, owner.owner_id)).current
            status = current.status.value if current is not None else None
        out.append({"email": email, "status": status, "label": LABELS.get(status or "", "申請中"),
                    "note": NOTES.get(status, ""), "ask_again": status in ASK_AGAIN})
    return out


@router.post("/mypage/agencies/ask-again")
async def ask_again(request: Request, agency_email: str = Form(""), csrf_token: str = Form("")) -> Response:
    """Ask a declining agency once more: the owner's own decision (never in a proxy session), throttled."""
    if (session := await mypage_session(request)) is None or session.get("proxy"):
        return to_login()
    if not csrf_ok(session, csrf_token):
        return RedirectResponse("/mypage/profile?done=ask_refused", status_code=303)
    owners = identity(request).owners
    owner = await owners.load(session["principal"])
    if owner is None:
        return to_login()
    state = next((s for s in await agency_states(request, owner) if s["email"] == agency_email.strip().lower()), None)
    if state is None or not state["ask_again"]:
        return RedirectResponse("/mypage/profile?done=ask_refused", status_code=303)
    try:
        await owners.ask_again(owner.owner_id, state["email"])
    except RequestsThrottled:
        return RedirectResponse("/mypage/profile?done=ask_throttled", status_code=303)
    except LookupError:
        return RedirectResponse("/mypage/profile?done=ask_refused", status_code=303)
    return RedirectResponse("/mypage/profile?done=asked", status_code=303)
