"""顧客管理 - 日別利用量: a customer's daily generation / sold / usage for one calendar month, as bars and a
table, with month navigation. The customer is looked up within the session's agency (another agency's
number is a 404), the days come from metering's daily usage projection."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ppa_billing.domain.billing_month import END_OF_MONTH, BillingMonth, InvalidBillingMonth, period_of
from ppa_gateway.billing_chart import daily_chart
from ppa_gateway.billing_pages import _agency, _billing, _login, _not_found, _page

router = APIRouter(include_in_schema=False)
JST = timezone(timedelta(hours=9))
BAD_MONTH = "利用月は YYYY/MM の形式（例: 2026/04）で入力してください。"


def _neighbour(month: BillingMonth, by: int) -> str | None:
    try:
        return str(month.shift(by))
    except InvalidBillingMonth:  # before 2000/01 or after 2099/12
        return None


@router.get("/agency/customers/{number}/usage", response_class=HTMLResponse)
async def customer_usage(request: Request, number: str, month: str = "") -> Response:
    if (session := await _agency(request)) is None:
        return _login()
    try:
        customer = await _billing(request).customer(session["principal"], number)
    except LookupError:
        return _not_found(request, session)
    today = datetime.now(JST).date()
    context = {"title": f"顧客管理 - 日別利用量 ({number})", "session": session, "csrf": session["csrf"],
               "customer": customer, "number": number, "month": month, "days": [], "errors": {}}
    try:
        chosen = BillingMonth.parse(month) if month.strip() else BillingMonth(today.year, today.month)
    except InvalidBillingMonth:
        context["errors"] = {"month": BAD_MONTH}
        context["chart"] = daily_chart([])
        return _page(request, "agency/billing/customer_usage.html", context, 422)
    calendar_month = period_of(chosen, END_OF_MONTH)  # a calendar month, whatever the agency's closing day
    metering = request.app.state.host.service("metering")
    days = await metering.daily.presented_days(session["principal"], number, calendar_month.start,
                                                calendar_month.end)
    totals = {key: sum((d[key] for d in days), Decimal("0.00")) for key in ("generation_kwh", "sold_kwh", "usage_kwh")}
    context.update({
        "month": str(chosen), "days": days, "totals": totals,
        "chart": daily_chart(days, title=f"{chosen.year}年{chosen.month}月 日別 発電量・売電量・利用量"),
        "previous": _neighbour(chosen, -1), "next": _neighbour(chosen, 1),
        "has_next": chosen < BillingMonth(today.year, today.month),
        "estimated": any(d["estimated"] for d in days)})
    return _page(request, "agency/billing/customer_usage.html", context)
