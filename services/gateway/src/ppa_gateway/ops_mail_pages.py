"""/ops/mail: notify's delivery log for operators — each mail's template, recipient, status, attempts and
last error, filtered by recipient and status, linked to its events by correlation id. The log holds no
template context, so no one-time link is shown here."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ppa_gateway.ops_web import OperatorPage, page

router = APIRouter(include_in_schema=False)
STATUSES = {"sending": "送信中", "sent": "送信済", "failed": "失敗"}
LIMIT = 200


@router.get("/ops/mail", response_class=HTMLResponse)
async def mail_log(request: Request, session: OperatorPage, recipient: str = "", status: str = "") -> Response:
    recipient = recipient.strip()[:254]
    context = {"title": "メール送信履歴", "active": "mail", "recipient": recipient, "status": status,
               "statuses": STATUSES, "deliveries": [], "limit": LIMIT, "error": None}
    notify = next((s for s in request.app.state.host.services if s.name == "notify"), None)
    if notify is None:
        context["error"] = "このプロセスでは通知サービスが動いていないため、送信履歴を表示できません。"
        return page(request, "ops/mail.html", session, context, 503)
    if status and status not in STATUSES:
        context["error"] = "状態は「送信中」「送信済」「失敗」から選んでください。"
        return page(request, "ops/mail.html", session, context, 422)
    context["deliveries"] = await notify.deliveries(recipient or None, status or None, LIMIT)
    return page(request, "ops/mail.html", session, context)
