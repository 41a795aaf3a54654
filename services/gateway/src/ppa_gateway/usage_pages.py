"""顧客管理 - 日別利用量: a customer's daily generation / sold / usage for one calendar month, as bars and a
table, with month navigation. The customer is looked up within the session's agency (another agency's
number is a 404), the days come from metering's daily usage projection."""

from __future__ import annotations

import calendar
import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ppa_gateway.billing_chart import daily_chart
from ppa_gateway.billing_pages import _agency, _billing, _login, _not_found, _page

router = APIRouter(include_in_schema=False)
JST = timezone(timedelta(hours=9))
MONTH = re.compile(r"(\d{4})[/-](\d{1,2})")
BAD_MONTH = "利用月は YYYY/MM の形式（例: 2026/04）で入力してください。"


def _month(text: str) -> tuple[int, int] | None:
    match = MONTH.fullmatch(text.strip())
    if match is None or not 1 <= int(match[2]) <= 12 or not 2000 <= int(match[1]) <= 2100:
        return None
    return int(match[1]), int(match[2])


def _shift(year: int, month: int, by: int) -> str:
    index = year * 12 + month - 1 + by
    return f"{index // 12:04d}/{index % 12 + 1:02d}"


@router.get("/agency/customers/{number}/usage", response_class=HTMLResponse)
async def customer_usage(request: Request, number: str, month: str = "") -> Response:
    if (session := await _agency(request)) is None:
        return _login()
    try:
        customer = await _billing(request).customer(session["principal"], number)
    except LookupError:
        return _not_found(request, session)
    today = datetime.now(JST).date()
    chosen = _month(month) if month.strip() else (today.year, today.month)
    context = {"title": f"顧客管理 - 日別利用量 ({number})", "session": session, "csrf": session["csrf"],
               "customer": customer, "number": number, "month": month, "days": [], "errors": {}}
    if chosen is None:
        context["errors"] = {"month": BAD_MONTH}
        context["chart"] = daily_chart([])
        return _page(request, "agency/billing/customer_usage.html", context, 422)
    year, mon = chosen
    start, end = date(year, mon, 1), date(year, mon, calendar.monthrange(year, mon)[1])
    metering = request.app.state.host.service("metering")
    days = await metering.daily.presented_days(session["principal"], number, start, end)
    totals = {key: sum((d[key] for d in days), Decimal("0.00")) for key in ("generation_kwh", "sold_kwh", "usage_kwh")}
    context.update({
        "month": f"{year:04d}/{mon:02d}", "days": days, "totals": totals,
        "chart": daily_chart(days, title=f"{year}年{mon}月 日別 発電量・売電量・利用量"),
        "previous": _shift(year, mon, -1), "next": _shift(year, mon, 1),
        "has_next": (year, mon) < (today.year, today.month),
        "estimated": any(d["estimated"] for d in days)})
    return _page(request, "agency/billing/customer_usage.html", context)
