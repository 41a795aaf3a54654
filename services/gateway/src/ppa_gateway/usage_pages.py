"""顧客管理 - 日別利用量: a customer's daily generation / sold / usage for one calendar month, as bars and a
table, with month navigation. The customer is looked up within the session's agency (another agency's
number is a 404), the days come from metering's daily usage projection."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ppa_billing.domain.billing_month import END_OF_MONTH, BillingMonth, InvalidBillingMonth, period_of
from ppa_gateway.billing_chart import SERIES, daily_chart
from ppa_contracts.owner import ElectricityPrices
from ppa_gateway.billing_pages import _agency, _billing, _login, _not_found, _page
from ppa_gateway.energy_chart import energy_chart
from ppa_gateway.owner_energy import SERIES as SERIES_LABELS
from ppa_gateway.owner_energy import BadPeriod, day_view, period

router = APIRouter(include_in_schema=False)
JST = timezone(timedelta(hours=9))
# a calendar month, not a 利用月 (a billing month runs from closing day to closing day): named apart so that
# 利用月 means one thing on every page
BAD_MONTH = "表示月はYYYY/MMの形式で入力してください（例: 2024/01、2024-01）。"
IMPORT = (("import_kwh", "買電量", "#c0392b"),)
BATTERY = (("battery_charge_kwh", "蓄電池 充電", "#8e44ad"), ("battery_discharge_kwh", "蓄電池 放電", "#16a085"))


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
        context["battery"] = False
        return _page(request, "agency/billing/customer_usage.html", context, 422)
    calendar_month = period_of(chosen, END_OF_MONTH)  # a calendar month, whatever the agency's closing day
    metering = request.app.state.host.service("metering")
    days = await metering.daily.presented_days(session["principal"], number, calendar_month.start,
                                                calendar_month.end)
    battery = any(d["battery_charge_kwh"] or d["battery_discharge_kwh"] for d in days)
    series = SERIES + IMPORT + (BATTERY if battery else ())
    totals = {key: sum((d[key] for d in days), Decimal("0.00")) for key, _, _ in series}
    context.update({
        "month": str(chosen), "days": days, "calendar_month": calendar_month, "totals": totals, "battery": battery,
        "chart": daily_chart(days, f"{chosen.year}年{chosen.month}月 日別 {'・'.join(s[1] for s in series)}", series),
        "previous": _neighbour(chosen, -1), "next": _neighbour(chosen, 1),
        "has_next": chosen < BillingMonth(today.year, today.month),
        "estimated": any(d["estimated"] for d in days)})
    return _page(request, "agency/billing/customer_usage.html", context)


@router.get("/agency/customers/{number}/usage/day", response_class=HTMLResponse)
async def customer_usage_day(request: Request, number: str, date: str = "") -> Response:
    """One JST day of the customer's device in half hours (metering's half-hour projection; no prices)."""
    if (session := await _agency(request)) is None:
        return _login()
    try:
        customer = await _billing(request).customer(session["principal"], number)
    except LookupError:
        return _not_found(request, session)
    context = {"title": f"顧客管理 - 30分ごとの利用量 ({number})", "session": session, "csrf": session["csrf"],
               "customer": customer, "number": number, "date": date, "errors": {}, "data": None}
    try:
        p = period("day", date or datetime.now(JST).date().isoformat())
    except BadPeriod as exc:
        context["errors"] = {"date": str(exc)}
        return _page(request, "agency/billing/customer_usage_day.html", context, 422)
    doc = await request.app.state.host.service("metering").intervals.day(customer["serial_number"], p.first)
    if doc and (doc.get("agency_id"), doc.get("customer_number")) != (session["principal"], number):
        doc = None  # the serial's earlier or later holder: not this customer's
    data = day_view(p, doc, ElectricityPrices(), battery=False)
    context.update({"data": data, "period": p, "date": p.key, "previous": p.shifted(-1), "next": p.shifted(1),
                    "series": SERIES_LABELS, "chart": energy_chart(data, f"{p.title} 30分ごと")})
    return _page(request, "agency/billing/customer_usage_day.html", context)
