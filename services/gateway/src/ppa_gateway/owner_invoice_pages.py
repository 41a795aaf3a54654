"""My Page: the household's PPA invoices for a proved home — the list, a detail with the daily table and chart,
and the PDF of issued ones. Drafts are marked as not final and have no PDF. The invoices are those of the proved
customer only (read from billing within the customer's agency); anything else is a 404.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ppa_gateway.billing_chart import daily_chart
from ppa_gateway.billing_pages import STATUS, kwh, yen, ymd
from ppa_gateway.mypage_pages import page
from ppa_gateway.owner_energy_pages import proved_home_or_page

router = APIRouter(include_in_schema=False)
NOT_FOUND = "指定された請求は見つかりません。"


def _billing(request: Request):
    return request.app.state.host.service("billing").portal


def _filters(request: Request) -> None:
    env = request.app.state.templates.env
    for name, fn in (("yen", yen), ("kwh", kwh), ("ymd", ymd)):
        env.filters.setdefault(name, fn)


def _missing(request: Request, session: dict) -> Response:
    return page(request, "mypage/not_found.html", {"title": "ご請求", "session": session, "message": NOT_FOUND}, 404)


@router.get("/mypage/energy/{product_id}/invoices", response_class=HTMLResponse)
async def invoices(request: Request, product_id: str) -> Response:
    found = await proved_home_or_page(request, product_id)
    if isinstance(found, Response):
        return found
    session, _, home = found
    _filters(request)
    try:
        items = await _billing(request).customer_invoices(home.agency_id, home.customer_number)
    except LookupError:
        items = []
    return page(request, "mypage/invoices.html", {"title": "ご請求", "session": session, "home": home,
                                                  "items": items, "status_labels": STATUS})


async def _invoice(request: Request, product_id: str, number: str):
    found = await proved_home_or_page(request, product_id)
    if isinstance(found, Response):
        return found
    session, _, home = found
    try:
        inv = await _billing(request).invoice(home.agency_id, number)
    except LookupError:
        return _missing(request, session)
    if inv.get("customer_number") != home.customer_number:
        return _missing(request, session)
    return session, home, inv


@router.get("/mypage/energy/{product_id}/invoices/{number}.pdf")
async def invoice_pdf(request: Request, product_id: str, number: str, revision: str = "") -> Response:
    found = await _invoice(request, product_id, number)
    if isinstance(found, Response):
        return found
    session, home, inv = found
    if inv["status"] == "draft":
        return _missing(request, session)
    try:
        data, filename = await _billing(request).invoice_pdf(home.agency_id, number,
                                                             int(revision) if revision.isdigit() else None)
    except LookupError:
        return _missing(request, session)
    return Response(data, media_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})


@router.get("/mypage/energy/{product_id}/invoices/{number}", response_class=HTMLResponse)
async def invoice(request: Request, product_id: str, number: str) -> Response:
    found = await _invoice(request, product_id, number)
    if isinstance(found, Response):
        return found
    session, home, inv = found
    _filters(request)
    return page(request, "mypage/invoice.html", {"title": f"ご請求 ({number})", "session": session, "home": home,
                                                 "inv": inv, "chart": daily_chart(inv["daily"]),
                                                 "status_labels": STATUS})
